"""What the HTTP routes ask of Kafka: produce a POST's messages, fetch a GET's messages."""

from __future__ import annotations

import random
from typing import Any

from twisted.logger import Logger

from flasfka.config import Config
from flasfka.consumers import ConsumerRegistry
from flasfka.errors import GatewayError, PayloadTooLarge, Unavailable
from flasfka.kafka import (
    ACKNOWLEDGEMENT_SETTINGS,
    GroupConsumer,
    KafkaProducer,
    Message,
    ReactorLike,
    RunBlocking,
    TopicAdmin,
)
from flasfka.logs import RdkafkaLogBridge
from flasfka.metrics import GatewayMetrics

log = Logger(namespace="flasfka.gateway")

#: librdkafka's default message.max.bytes, used when the config does not set it.
_DEFAULT_MESSAGE_MAX_BYTES = 1_000_000


def client_settings(config: Config) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """librdkafka settings for (producer, consumer, admin) built from the config."""
    common: dict[str, Any] = {
        "bootstrap.servers": ",".join(config.HOSTS),
        "client.id": "flasfka",
        **config.KAFKA_CONFIG,
    }
    producer = {
        **common,
        # Measured with make bench (16 connections): 5 ms made 1-message POSTs wait ~5 ms
        # (~2,200 req/s), 0 sent small batches (100-message POSTs -25 %); 0.5 is best of both.
        "linger.ms": 0.5,
        # The Java client's key hashing: a key lands on the same partition from any client.
        "partitioner": "murmur2_random",
        **config.PRODUCER_CONFIG,
        **ACKNOWLEDGEMENT_SETTINGS,
    }
    consumer = {
        **common,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10000,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 8192,
        # librdkafka waits this long to fetch again once its queue was full (default 1 s):
        # consumers that drain fast then sat idle (~200 k msg/s instead of ~1.5 M on Tansu).
        "fetch.queue.backoff.ms": 10,
        **config.CONSUMER_CONFIG,
    }
    return producer, consumer, common


class Gateway:
    """Produces and consumes for the web layer; owns the producer, admin and consumers."""

    def __init__(
        self,
        reactor: ReactorLike,
        config: Config,
        run_blocking: RunBlocking,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._run_blocking = run_blocking
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._producer_settings, self._consumer_settings, self._admin_settings = client_settings(
            config
        )
        # librdkafka's log lines go through twisted.logger, not raw to stderr.
        rdkafka_log = RdkafkaLogBridge(reactor.callFromThread)
        for settings in (self._producer_settings, self._consumer_settings, self._admin_settings):
            settings.setdefault("logger", rdkafka_log)
        self._message_max_bytes = int(
            self._producer_settings.get("message.max.bytes", _DEFAULT_MESSAGE_MAX_BYTES)
        )
        self.producer: KafkaProducer | None = None
        self.admin: TopicAdmin | None = None
        self.consumers = ConsumerRegistry(
            reactor, self._new_consumer, config.MAX_CONSUMERS, config.CONSUMER_IDLE_TIMEOUT
        )
        self.stopping = False
        #: Why the last POST failed although the producer was connected (None after a success).
        self.produce_stalled: str | None = None
        self.produce_stalled_at = 0.0
        self.metrics.watch(
            consumers_open=lambda: len(self.consumers),
            broker_connected=lambda: int(self.producer is not None and self.producer.connected),
        )

    def start(self) -> None:
        """Create the Kafka clients (after twistd forked: librdkafka threads do not survive it)."""
        config = self._config
        self.admin = TopicAdmin(
            self._admin_settings,
            self._run_blocking,
            auto_create=config.AUTO_CREATE_TOPICS,
            partitions=config.TOPIC_PARTITIONS,
            replication_factor=config.TOPIC_REPLICATION_FACTOR,
            timeout=config.PRODUCE_TIMEOUT,
        )
        self.producer = KafkaProducer(
            self._reactor, self._producer_settings, config.PRODUCE_TIMEOUT
        )
        self.producer.start()

    def _new_consumer(self, topic: str, group: str) -> GroupConsumer:
        return GroupConsumer(
            self._reactor,
            self._consumer_settings,
            topic,
            group,
            buffer_messages=self._config.CONSUMER_BUFFER_MESSAGES,
            buffer_bytes=self._config.CONSUMER_BUFFER_BYTES,
        )

    def _check_running(self) -> None:
        if self.stopping or self.producer is None or self.admin is None:
            raise Unavailable("flasfka is shutting down", retry_after=1)

    async def produce(self, topic: str, values: list[bytes], key: bytes | None) -> None:
        """Send values to topic in order; return once the broker acknowledged all of them."""
        self._check_running()
        assert self.producer is not None and self.admin is not None
        key_size = len(key) if key else 0
        for index, value in enumerate(values):
            if len(value) + key_size > self._message_max_bytes:
                raise PayloadTooLarge(
                    f"message {index} is {len(value) + key_size} bytes with its key; the "
                    f"limit is {self._message_max_bytes} (message.max.bytes); nothing was sent"
                )
        if not values:
            return
        started = self._reactor.seconds()
        try:
            ensuring = self.admin.ensure(topic)
            if ensuring is not None:
                await ensuring
            # A POST without a key goes to one partition, so its messages are read in order.
            partition = -1 if key is not None else random.randrange(self.admin.partitions(topic))
            await self.producer.send(topic, values, key, partition)
        except GatewayError as e:
            self.metrics.produce_failed(topic, e.status)
            if isinstance(e, Unavailable) and self.producer.connected:
                self.produce_stalled = e.message
                self.produce_stalled_at = self._reactor.seconds()
            raise
        self.produce_stalled = None
        self.metrics.produced(topic, len(values), self._reactor.seconds() - started)

    async def fetch(self, topic: str, group: str, limit: int) -> list[Message]:
        """Up to limit messages of topic for group, committed before they are returned."""
        self._check_running()
        assert self.admin is not None
        ensuring = self.admin.ensure(topic)
        if ensuring is not None:
            await ensuring
        consumer = self.consumers.get(topic, group)
        config = self._config
        await consumer.wait_for(limit, config.CONSUMER_TIMEOUT, config.CONSUMER_JOIN_TIMEOUT)
        records = await consumer.consume(limit)
        self.metrics.consumed(topic, len(records))
        return records

    async def stop(self, timeout: float) -> None:
        """Refuse new work, close every consumer, then flush and stop the producer."""
        self.stopping = True
        await self.consumers.close_all()
        if self.admin is not None:
            self.admin.close()
        if self.producer is not None:
            left = await self.producer.stop(timeout)
            if left:
                log.error("{left} messages were not delivered before shutdown", left=left)
