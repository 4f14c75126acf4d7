"""Whole records read back with a plain confluent-kafka consumer: every field, in order."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition
from twisted.internet import threads


@dataclass(frozen=True)
class Stored:
    """One record as Kafka holds it."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None


def _read(address: str, topic: str, timeout: float, fetch_bytes: int) -> list[Stored]:
    consumer = Consumer(
        {
            "bootstrap.servers": address,
            "group.id": "direct-record-reader",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.max.bytes": fetch_bytes,
            "max.partition.fetch.bytes": fetch_bytes,
            "receive.message.max.bytes": fetch_bytes + 1_000_000,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = list(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        done: set[int] = set()
        stored: list[Stored] = []
        deadline = time.monotonic() + timeout
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(10000, 0.2):
                error = message.error()
                if error is None:
                    stored.append(
                        Stored(
                            message.partition(),
                            message.offset(),
                            message.timestamp()[1],
                            message.key(),
                            message.value(),
                            message.headers(),
                        )
                    )
                elif error.code() == KafkaError._PARTITION_EOF:
                    done.add(message.partition())
        assert len(done) == len(partitions), (
            f"read {topic} for {timeout} s without reaching its end"
        )
        return stored
    finally:
        consumer.close()


async def read_records(
    address: str, topic: str, timeout: float = 20.0, fetch_bytes: int = 8 * 1024 * 1024
) -> list[Stored]:
    """Every record of topic, partition by partition in offset order (a thread)."""
    stored = await threads.deferToThread(_read, address, topic, timeout, fetch_bytes)
    return sorted(stored, key=lambda s: (s.partition, s.offset))
