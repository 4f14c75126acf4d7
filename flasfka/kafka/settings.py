"""Every librdkafka setting flasfka uses, in one place, and the profile for a Tansu broker."""

from __future__ import annotations

from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Producer

from flasfka.kafka.errors import describe


class KafkaConfig(Protocol):
    """The config keys these settings are built from (flasfka.app.config.Config has them)."""

    @property
    def HOSTS(self) -> list[str]: ...  # noqa: N802 (config keys are UPPER_CASE)
    @property
    def KAFKA_CONFIG(self) -> dict[str, Any]: ...  # noqa: N802
    @property
    def PRODUCER_CONFIG(self) -> dict[str, Any]: ...  # noqa: N802
    @property
    def CONSUMER_CONFIG(self) -> dict[str, Any]: ...  # noqa: N802


#: librdkafka settings that KafkaProducer.send's acknowledgement relies on. Idempotence: within
#: one producer epoch the broker takes a batch only right after the one before it. Gapless: an
#: error that would make librdkafka start a new epoch past failed messages is fatal instead.
ACKNOWLEDGEMENT_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "enable.gapless.guarantee": True,
}

#: Producer settings flasfka sets itself (the acknowledgement settings, the message timeout
#: from PRODUCE_TIMEOUT, and the delivery reports a POST waits for), with their aliases.
FIXED_PRODUCER_SETTINGS = frozenset(
    {
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "delivery.report.only.error",
    }
)

#: Consumer settings for a Tansu broker (tests, benchmark, embedded mode): librdkafka's first
#: group join on Tansu waits about session.timeout.ms / 2, 23 s at the default of 45 s. Tansu
#: answers every fetch only after fetch.wait.max.ms, data or not, so a message posted to a
#: waiting long poll waits up to that long to be fetched (Kafka answers once data arrives).
TANSU_CONSUMER_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 10,
}

#: librdkafka's default message.max.bytes, used when the config does not set it.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000


def client_settings(config: KafkaConfig) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """librdkafka settings for (producer, consumer, admin) built from the config."""
    common: dict[str, Any] = {
        "bootstrap.servers": ",".join(config.HOSTS),
        "client.id": "flasfka",
        **config.KAFKA_CONFIG,
    }
    producer = {
        **common,
        # Short enough that a single-message POST does not wait for a batch to fill, long
        # enough that concurrent 100-message POSTs still share batches (README, Performance).
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
        # librdkafka waits this long to fetch again once its queue was full (default 1 s), so
        # a consumer that drains fast would sit idle most of the time.
        "fetch.queue.backoff.ms": 10,
        **config.CONSUMER_CONFIG,
    }
    return producer, consumer, common


def message_max_bytes(producer_settings: dict[str, Any]) -> int:
    """The largest message (value and key) the producer sends."""
    return int(producer_settings.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))


def check_client_settings(producer: dict[str, Any], consumer: dict[str, Any]) -> None:
    """Raise ValueError if librdkafka rejects a setting (done once at startup, no network)."""
    for role, settings in (("producer", producer), ("consumer", consumer)):
        offline = {**settings, "group.id": "flasfka-check", "log_level": 0}
        offline.pop("bootstrap.servers", None)
        offline.pop("logger", None)
        if role == "producer":
            offline.pop("group.id")
        try:
            client = Producer(offline) if role == "producer" else Consumer(offline)
        except (KafkaException, TypeError, ValueError) as e:
            raise ValueError(f"librdkafka {role} setting rejected: {describe(e)}") from None
        if role == "consumer":
            client.close()
