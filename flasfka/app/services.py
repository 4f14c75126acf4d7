"""The Kafka side as Twisted services: the thread pool and the gateway, idle-member expiry."""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

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
        self._started: Deferred[None] = succeed(None)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        """Start the pool, then the Kafka clients once the broker is ready."""
        super().startService()
        self._pool.start()
        if self._broker_ready is None:
            self._start_clients()
        else:
            self._started = self._broker_ready.addCallback(lambda _: self._start_clients())

    def _start_clients(self) -> None:
        if not self.running:
            return
        self.gateway.start()
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
