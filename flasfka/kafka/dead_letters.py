"""The dead-letter writer: messages delivered too often without an ack, to another topic.

Dead letters are rare, so they do not share the POST path's producer (whose batching and
acknowledgement rules serve throughput): a producer of their own, created on first use,
writes each batch and flushes it on a pool thread, and the Deferred fires once the broker
has every message of the batch (acks=all), or fails with Unavailable.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from twisted.internet.defer import Deferred

from flasfka.errors import Unavailable
from flasfka.kafka.errors import describe
from flasfka.reactor import RunBlocking
from flasfka.records import Record

#: The headers a dead letter carries (after the original's own), naming its origin.
ORIGIN_HEADERS = (
    "flasfka-origin-topic",
    "flasfka-origin-partition",
    "flasfka-origin-offset",
    "flasfka-deliveries",
)


def dead_letter_headers(record: Record, deliveries: int) -> list[tuple[str, str | bytes | None]]:
    """The original headers, then the origin of record and its delivery count."""
    origin = (record.topic, str(record.partition), str(record.offset), str(deliveries))
    return [
        *(record.headers or ()),
        *((name, value.encode()) for name, value in zip(ORIGIN_HEADERS, origin, strict=True)),
    ]


class DeadLetterWriter:
    """Writes dead letters with a producer of its own, off the reactor thread."""

    def __init__(self, settings: dict[str, Any], run_blocking: RunBlocking, timeout: float) -> None:
        self._settings = {**settings, "acks": "all", "enable.idempotence": True}
        self._settings.pop("logger", None)
        self._run_blocking = run_blocking
        self._timeout = timeout
        self._producer: Producer | None = None

    def write(self, topic: str, batch: list[tuple[Record, int]]) -> Deferred[None]:
        """Write each (record, deliveries) of batch to topic, key and value unchanged."""
        return self._run_blocking(self._write_blocking, topic, batch)

    def _write_blocking(self, topic: str, batch: list[tuple[Record, int]]) -> None:
        if self._producer is None:
            self._producer = Producer(self._settings)
        producer = self._producer
        errors: list[str] = []

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(describe(error))

        for record, deliveries in batch:
            producer.produce(
                topic,
                record.value,
                record.key,
                headers=dead_letter_headers(record, deliveries),
                on_delivery=report,
            )
        left = producer.flush(self._timeout)
        if left or errors:
            why = errors[0] if errors else f"{left} not acknowledged in {self._timeout} s"
            raise Unavailable(f"dead-letter write to {topic!r} failed: {why}")

    def close(self) -> Deferred[None] | None:
        """Flush what is left (blocking, on the pool)."""
        if self._producer is None:
            return None
        producer, self._producer = self._producer, None
        return self._run_blocking(producer.flush, self._timeout)
