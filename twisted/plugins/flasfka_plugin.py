"""twistd plugin: `twistd -n flasfka [options]`."""

from twisted.application.service import ServiceMaker

flasfka = ServiceMaker("flasfka", "flasfka.app.tap", "HTTP gateway for Kafka", "flasfka")
