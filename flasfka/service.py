"""The Kafka side as a Twisted service: its thread pool, the gateway, idle-consumer expiry."""

from __future__ import annotations

from functools import partial

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from flasfka.config import Config
from flasfka.gateway import Gateway
from flasfka.metrics import GatewayMetrics

log = Logger(namespace="flasfka.service")

#: Threads for commits, admin requests and the final flush (consumers poll on their own).
_POOL_THREADS = 8


class KafkaService(Service):
    """Starts the Kafka clients after the reactor runs and stops them cleanly on shutdown.

    Add it to the MultiService before the HTTP listener: services stop in reverse order,
    so the port closes before consumers are closed and the producer is flushed.
    """

    name = "kafka"

    def __init__(self, reactor, config: Config, metrics: GatewayMetrics | None = None) -> None:
        self._reactor = reactor
        self._config = config
        self._pool = ThreadPool(minthreads=0, maxthreads=_POOL_THREADS, name="flasfka-kafka")
        self.gateway = Gateway(
            reactor, config, partial(deferToThreadPool, reactor, self._pool), metrics
        )
        self._expiry = LoopingCall(self.gateway.consumers.expire_idle)
        self._expiry.clock = reactor

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        """Start the pool, the producer and the idle-consumer check."""
        super().startService()
        self._pool.start()
        self.gateway.start()
        interval = min(self._config.CONSUMER_IDLE_TIMEOUT / 4, 10.0)
        self._expiry.start(interval, now=False)
        kafka = self._config.KAFKA_CONFIG
        log.info(
            "Kafka brokers: {hosts} (security.protocol={protocol}, sasl.mechanism={mechanism})",
            hosts=",".join(self._config.HOSTS),
            protocol=kafka.get("security.protocol", "plaintext"),
            mechanism=kafka.get("sasl.mechanism", kafka.get("sasl.mechanisms", "-")),
        )

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        """Close consumers (leaving their groups), flush the producer, stop the pool."""
        super().stopService()
        if self._expiry.running:
            self._expiry.stop()
        d = ensureDeferred(self.gateway.stop(self._config.SHUTDOWN_GRACE))
        d.addBoth(self._stop_pool)
        return d

    def _stop_pool(self, result: object) -> object:
        self._pool.stop()
        return result
