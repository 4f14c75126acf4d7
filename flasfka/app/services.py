"""The Kafka side as Twisted services: the thread pool and the gateway, idle-member expiry."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from flasfka.app.config import Config
from flasfka.gateway import Gateway

log = Logger(namespace="flasfka.app")

#: Threads for commits, admin requests and the final flush (consumers poll on their own).
_POOL_THREADS = 8


class KafkaService(Service):
    """Starts the Kafka clients once the broker can be reached and stops them cleanly.

    Add it to the MultiService before the HTTP listener: services stop in reverse order,
    so the port closes before consumers are closed and the producer is flushed. With an
    embedded broker, ``broker_ready`` fires once it listens: the clients start then, so
    they never log a refused connection.
    """

    name = "kafka"

    def __init__(
        self,
        reactor: Any,
        config: Config,
        gateway: Gateway,
        pool: ThreadPool,
        broker_ready: Deferred[None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._pool = pool
        self.gateway = gateway
        self._broker_ready = broker_ready
        self._started: list[Deferred[None]] = []
        self._clients_started = False

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        """Start the pool, then the Kafka clients once the broker is ready."""
        super().startService()
        self._pool.start()
        if self._broker_ready is None:
            self._start_clients(None)
        else:
            self._broker_ready.addCallback(self._start_clients)

    def clients_started(self) -> Deferred[None]:
        """A Deferred that fires once the Kafka clients exist (at once if they do)."""
        if self._clients_started:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._started.append(d)
        return d

    def _start_clients(self, _: object) -> None:
        if not self.running:
            return
        self.gateway.start()
        self._clients_started = True
        waiting, self._started = self._started, []
        for d in waiting:
            if not d.called:  # a listener stopped before it listened cancels its wait
                d.callback(None)
        kafka = self._config.KAFKA_CONFIG
        log.info(
            "Kafka brokers: {hosts} (security.protocol={protocol}, sasl.mechanism={mechanism})",
            hosts=",".join(self._config.HOSTS),
            protocol=kafka.get("security.protocol", "plaintext"),
            mechanism=kafka.get("sasl.mechanism", kafka.get("sasl.mechanisms", "-")),
        )
        log.info(
            "delivery: a POST answers 2xx once the broker acknowledged every message "
            "(acks=all, idempotent and gapless producer); a plain GET commits before it "
            "answers (at-most-once)"
        )

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        """Close consumers (leaving their groups), flush the producer, stop the pool."""
        super().stopService()
        d = ensureDeferred(self.gateway.stop(self._config.SHUTDOWN_GRACE))
        d.addBoth(self._stop_pool)
        return d

    def _stop_pool(self, result: object) -> object:
        self._pool.stop()
        return result


@implementer(IStreamServerEndpoint)
class ListenWhenReady:
    """An endpoint that listens once ready() fires: no request arrives before the Kafka
    clients exist (with an embedded broker, they start once it listens)."""

    def __init__(self, endpoint: IStreamServerEndpoint, ready: Callable[[], Deferred[None]]):
        self._endpoint = endpoint
        self._ready = ready

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        """Listen on the wrapped endpoint once ready; cancelling stops waiting."""
        d = self._ready()
        return d.addCallback(lambda _: self._endpoint.listen(factory))


def new_pool() -> ThreadPool:
    """The pool for blocking Kafka calls (not the reactor's: that one also resolves DNS)."""
    return ThreadPool(minthreads=0, maxthreads=_POOL_THREADS, name="flasfka-kafka")


def run_blocking_on(reactor: Any, pool: ThreadPool) -> Any:
    """A RunBlocking that runs calls on pool and fires in reactor."""
    return partial(deferToThreadPool, reactor, pool)


def idle_expiry(gateway: Gateway, config: Config, reactor: Any) -> TimerService:
    """A timer that closes the group members idle for CONSUMER_IDLE_TIMEOUT."""
    timer = TimerService(min(config.CONSUMER_IDLE_TIMEOUT / 4, 10.0), gateway.consumers.expire_idle)
    timer.clock = reactor
    timer.name = "idle-expiry"
    return timer
