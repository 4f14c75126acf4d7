"""flasfka: push and pull Kafka messages over HTTP."""

__version__ = "0.2.0"
