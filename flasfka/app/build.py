"""build(config, reactor, endpoint): the whole of flasfka, wired top-down.

makeService (twistd and the .tac), flasfka-serve and the tests all build flasfka here, so
what one of them runs is what the others run. Each layer is built and handed to the one
above it: [embedded broker] -> gateway -> Kafka service -> handlers -> root resource -> site
-> listener.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import TimerService
from twisted.internet import endpoints, threads
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger

from flasfka import __version__
from flasfka.app.broker import EmbeddedBroker, free_port, tansu_binary
from flasfka.app.collector import pace_collector
from flasfka.app.config import Config
from flasfka.app.logs import stdout_observer
from flasfka.app.services import (
    KafkaService,
    ListenWhenReady,
    idle_expiry,
    new_pool,
    run_blocking_on,
)
from flasfka.app.sharing import WORKER_HEADER, WorkerIdentity, ready_to_serve, scheme_of
from flasfka.app.shutdown import GracefulListener, OrderedMultiService
from flasfka.app.tls import require_client_certificates
from flasfka.gateway import Gateway
from flasfka.http.auth import Guard
from flasfka.http.cors import Cors
from flasfka.http.ops import OpsRoutes
from flasfka.http.resource import GatewayRoot
from flasfka.http.site import Draining, ObservedSite, make_site
from flasfka.http.streaming import Streams, StreamsService
from flasfka.http.topics import TopicRoutes
from flasfka.idempotency import IdempotencyStore
from flasfka.kafka import check_client_settings, client_settings
from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS
from flasfka.metrics import GatewayMetrics

log = Logger(namespace="flasfka")


class BuildError(Exception):
    """flasfka cannot be built from these settings; the message says why in one line."""


class Flasfka(OrderedMultiService):
    """flasfka's top service; under twistd it also picks the log format (text or json)."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.log_format = log_format
        pace_collector()  # whichever way the process runs (twistd, flasfka-serve, workers)
        self.gateway: Gateway
        self.site: ObservedSite
        self.listener: GracefulListener
        #: The handler objects the route table names ("topics", "ops").
        self.handlers: dict[str, object]

    def setServiceParent(self, parent: Any) -> None:  # noqa: N802 (Twisted's name)
        """Join parent; if it is twistd's application, give it the JSON log observer.

        twistd starts logging after makeService, with the application's ILogObserver
        component if it has one (``twistd --logger`` still wins).
        """
        if self.log_format == "json" and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, stdout_observer("json"))
        super().setServiceParent(parent)


def embedded_config(config: Config, broker_address: str) -> Config:
    """config pointed at the embedded broker, with the Tansu consumer settings."""
    return config.replace(
        HOSTS=[broker_address],
        CONSUMER_CONFIG={**TANSU_CONSUMER_SETTINGS, **config.CONSUMER_CONFIG},
    )


def setup_kafka(
    top: Flasfka, config: Config, reactor: Any, embedded_broker: bool, config_source: str
) -> tuple[Config, EmbeddedBroker | None]:
    """What every build does first: the embedded broker if asked (a child of top, started
    first, stopped last) and the config pointed at it; then librdkafka's check of the
    settings (BuildError naming config_source if it refuses them)."""
    broker = None
    if embedded_broker:
        try:
            broker = EmbeddedBroker(reactor, free_port(), tansu_binary())
        except RuntimeError as e:
            raise BuildError(str(e)) from None
        config = embedded_config(config, broker.address)
        broker.setServiceParent(top)
    try:
        check_client_settings(*client_settings(config)[:2])
    except ValueError as e:
        raise BuildError(f"config error: {config_source}: {e}") from None
    return config, broker


def parse_endpoint(reactor: Any, endpoint: str) -> IStreamServerEndpoint:
    """The server endpoint of a --port string, or BuildError saying what is wrong with it."""
    try:
        return endpoints.serverFromString(reactor, endpoint)
    except (ValueError, TypeError) as e:
        raise BuildError(f"bad --port {endpoint!r}: {e}") from None


def build(
    config: Config,
    reactor: Any,
    endpoint: str | IStreamServerEndpoint,
    embedded_broker: bool = False,
    log_format: str | None = None,
    config_source: str = "defaults",
    worker: WorkerIdentity | None = None,
    listen_reactor: Any = None,
) -> Flasfka:
    """flasfka listening on endpoint (a Twisted endpoint string or object).

    worker: this process is one of the workers of an instance (flasfka.app.worker); its
    metrics are reported with the other workers', its responses name it. listen_reactor
    (default: reactor) is what an endpoint string listens with: a worker's AdoptingReactor
    adopts the socket its parent bound.
    """
    top = Flasfka(log_format or config.LOG_FORMAT)
    config, broker = setup_kafka(top, config, reactor, embedded_broker, config_source)
    broker_ready = None if broker is None else broker.ready

    metrics = GatewayMetrics(worker.metrics_dir if worker is not None else None)
    pool = new_pool()
    gateway = Gateway(reactor, config, run_blocking_on(reactor, pool), metrics)
    kafka = KafkaService(reactor, config, gateway, pool, broker_ready)
    kafka.setServiceParent(top)
    idle_expiry(gateway, config, reactor).setServiceParent(top)
    if worker is not None:
        gauges = TimerService(1.0, metrics.refresh)
        gauges.clock = reactor
        gauges.setServiceParent(top)

    draining = Draining()
    streams = Streams(
        gateway,
        reactor,
        config.MAX_STREAMS,
        config.STREAM_HEARTBEAT,
        config.CONSUMER_JOIN_TIMEOUT,
    )
    is_draining: Any = draining
    if worker is not None:  # a worker being replaced drains, the instance stays ready
        is_draining = lambda: draining() and not worker.retiring  # noqa: E731
    handlers = {
        "topics": TopicRoutes(
            gateway,
            config.DEFAULT_GROUP,
            config.CONSUMER_LIMIT,
            config.CONSUMER_MAX_LIMIT,
            max_timeout=config.CONSUMER_MAX_TIMEOUT,
            streams=streams,
            idempotency=IdempotencyStore(
                reactor,
                config.IDEMPOTENCY_TTL,
                config.IDEMPOTENCY_MAX_KEYS,
                config.IDEMPOTENCY_MAX_BYTES,
            ),
        ),
        "ops": OpsRoutes(
            gateway,
            metrics,
            is_draining=is_draining,
            clock=reactor,
            stall_window=max(60.0, 3 * config.PRODUCE_TIMEOUT),
            max_limit=config.CONSUMER_MAX_LIMIT,
            max_timeout=config.CONSUMER_MAX_TIMEOUT,
        ),
    }
    guard = None
    if config.auth_enabled:
        guard = Guard(
            config,
            reactor,
            lambda f, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args),
        )
    cors = Cors(config.CORS_ORIGINS) if config.CORS_ORIGINS else None
    site = make_site(
        GatewayRoot(handlers, guard, cors),
        config.MAX_BODY_SIZE,
        config.HTTP_IDLE_TIMEOUT,
        clock=reactor,
        metrics=metrics,
        draining=draining,
        worker_header=None if worker is None else (WORKER_HEADER, [str(worker.id).encode()]),
    )
    if isinstance(endpoint, str):
        listening = parse_endpoint(listen_reactor or reactor, endpoint)
        scheme = scheme_of(endpoint)
        if config.TLS_CLIENT_CA:
            try:
                listening = require_client_certificates(listening, config.TLS_CLIENT_CA)
            except ValueError as e:
                raise BuildError(f"config error: {config_source}: TLS_CLIENT_CA: {e}") from None
        if not config.auth_enabled and not _loopback_only(endpoint):
            log.warn(
                "listening on {endpoint} beyond loopback with no USERS, TOKENS or "
                "TLS_CLIENT_CA: anyone who reaches it may produce and consume every topic",
                endpoint=endpoint,
            )
    else:
        listening, scheme = endpoint, "http"
        if config.TLS_CLIENT_CA:
            raise BuildError(
                f"config error: {config_source}: TLS_CLIENT_CA needs an ssl: listener string"
            )
    ready = kafka.clients_started
    if worker is not None:  # the other workers serve meanwhile
        ready = ready_to_serve(
            kafka.clients_started,
            lambda: gateway.producer is not None and gateway.producer.connected,
            reactor,
        )
    listener = GracefulListener(
        ListenWhenReady(listening, ready), site, config.SHUTDOWN_GRACE, scheme, gateway.drain
    )
    listener.setServiceParent(top)
    # Added last, so stopped first: open streams end (what they wrote is committed) before
    # the listener drains and the consumers close.
    StreamsService(streams, config.SHUTDOWN_GRACE).setServiceParent(top)

    top.gateway, top.site, top.listener, top.handlers = gateway, site, listener, handlers
    log.info("flasfka {version} starting", version=__version__)
    return top


def _loopback_only(description: str) -> bool:
    """Whether an endpoint string listens on a loopback interface or a UNIX socket only."""
    if description.startswith("unix:"):
        return True
    for part in description.split(":"):
        if part.startswith("interface="):
            host = part[len("interface=") :].strip("[]")
            return host in ("localhost", "::1") or host.startswith("127.")
    return False


__all__ = ["BuildError", "Flasfka", "build", "parse_endpoint", "setup_kafka"]
