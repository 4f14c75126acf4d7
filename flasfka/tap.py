"""twistd wiring: command-line options and makeService."""

from __future__ import annotations

from typing import Any

from twisted.internet import endpoints
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

from flasfka import __version__
from flasfka.broker import EmbeddedBroker, free_port, tansu_binary
from flasfka.config import ConfigError, load_config
from flasfka.gateway import client_settings
from flasfka.health import OpsAndTopics, OpsWeb
from flasfka.kafka import check_client_settings
from flasfka.logs import LOG_FORMATS, stdout_observer
from flasfka.metrics import GatewayMetrics
from flasfka.service import KafkaService
from flasfka.shutdown import GracefulListener, OrderedMultiService
from flasfka.site import ObservedSite
from flasfka.web import FlasfkaWeb, make_site

log = Logger(namespace="flasfka")

#: librdkafka settings the embedded mode uses unless the config sets them (see FINDINGS: a
#: Tansu group join waits about session.timeout.ms / 2).
EMBEDDED_CONSUMER_CONFIG = {"session.timeout.ms": 6000}


class Options(usage.Options):
    """flasfka's options, shared by twistd, flasfka-serve and the .tac."""

    synopsis = "[options]"
    longdesc = "HTTP gateway to Kafka: POST /{topic}/ to produce, GET /{topic}/ to consume."
    optParameters = [  # noqa: N815 (Twisted's name)
        ["port", "p", "5000", "Port number, or a Twisted endpoint string (e.g. tcp:5000, ssl:...)"],
        ["interface", "i", "127.0.0.1", "Interface a plain port number listens on"],
        ["config", "c", None, "Config file (a Python file); default: $FLASFKA_CONFIG"],
        ["log-format", None, None, "Log output: text or json (default: LOG_FORMAT of the config)"],
    ]
    optFlags = [  # noqa: N815 (Twisted's name)
        ["embedded-broker", "e", "Start a memory-only Tansu broker on loopback and use it"],
    ]

    def postOptions(self) -> None:  # noqa: N802 (Twisted's name)
        """Turn a bare port number into an endpoint string."""
        if self["log-format"] not in (None, *LOG_FORMATS):
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        port = self["port"]
        if port.isdigit():
            self["endpoint"] = f"tcp:{int(port)}:interface={self['interface']}"
        else:
            self["endpoint"] = port


class FlasfkaService(OrderedMultiService):
    """flasfka's top service; under twistd it also picks the log format (text or json)."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.log_format = log_format

    def setServiceParent(self, parent: Any) -> None:  # noqa: N802 (Twisted's name)
        """Join parent; if it is twistd's application, give it the JSON log observer.

        twistd starts logging after makeService, with the application's ILogObserver
        component if it has one (``twistd --logger`` still wins).
        """
        if self.log_format == "json" and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, stdout_observer("json"))
        super().setServiceParent(parent)


def makeService(options: Options, reactor=None) -> FlasfkaService:  # noqa: N802
    """Build flasfka: [embedded broker], the Kafka service, then the HTTP listener."""
    if reactor is None:
        from twisted.internet import reactor  # twistd's reactor, installed by now
    try:
        config = load_config(options["config"])
    except ConfigError as e:
        raise usage.UsageError(f"config error: {e}") from None
    top = FlasfkaService(options["log-format"] or config.LOG_FORMAT)
    if options["embedded-broker"]:
        try:
            broker = EmbeddedBroker(reactor, free_port(), tansu_binary())
        except RuntimeError as e:
            raise usage.UsageError(str(e)) from None
        config = config.replace(
            HOSTS=[broker.address],
            CONSUMER_CONFIG={**EMBEDDED_CONSUMER_CONFIG, **config.CONSUMER_CONFIG},
        )
        broker.setServiceParent(top)
    try:
        check_client_settings(*client_settings(config)[:2])
    except ValueError as e:
        raise usage.UsageError(f"config error: {options['config'] or 'defaults'}: {e}") from None
    metrics = GatewayMetrics()
    kafka = KafkaService(reactor, config, metrics=metrics)
    kafka.setServiceParent(top)
    web = FlasfkaWeb(
        kafka.gateway, config.DEFAULT_GROUP, config.CONSUMER_LIMIT, config.CONSUMER_MAX_LIMIT
    )
    site: Any = None
    ops = OpsWeb(
        kafka.gateway,
        metrics,
        is_draining=lambda: site.draining,
        clock=reactor,
        stall_window=max(60.0, 3 * config.PRODUCE_TIMEOUT),
    )
    site = make_site(
        OpsAndTopics(web.resource(), ops.resource()),
        config.MAX_BODY_SIZE,
        config.HTTP_IDLE_TIMEOUT,
        site_class=ObservedSite,
        clock=reactor,
        metrics=metrics,
    )
    try:
        endpoint = endpoints.serverFromString(reactor, options["endpoint"])
    except (ValueError, TypeError) as e:
        raise usage.UsageError(f"bad --port {options['endpoint']!r}: {e}") from None
    scheme = "https" if options["endpoint"].startswith(("ssl:", "tls:")) else "http"
    listener = GracefulListener(endpoint, site, config.SHUTDOWN_GRACE, scheme)
    listener.setServiceParent(top)
    log.info("flasfka {version} starting", version=__version__)
    return top
