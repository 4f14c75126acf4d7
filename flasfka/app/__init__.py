"""Running flasfka: config, build(), the twistd plugin's tap, flasfka-serve, the embedded
broker, services and shutdown."""
