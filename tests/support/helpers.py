"""HTTP and direct-Kafka helpers for the tests."""

from __future__ import annotations

import json
import time
from typing import Any

import treq
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from twisted.internet import task, threads


async def post(base: str, path: str, body: Any, **kwargs: Any) -> Any:
    """POST body (JSON-encoded unless bytes) to base + path; the treq response."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await treq.post(base + path, data=data, **kwargs)


async def post_messages(base: str, path: str, messages: list[str], per_post: int = 0) -> None:
    """POST messages (in POSTs of per_post messages, if given) and assert each 204."""
    size = per_post or len(messages)
    for start in range(0, len(messages) or 1, size or 1):  # an empty list is one POST too
        response = await post(base, path, {"messages": messages[start : start + size]})
        text = await response.text()
        assert response.code == 204, (response.code, text)


async def get(base: str, path: str) -> tuple[int, Any, Any]:
    """GET base + path; (status, parsed JSON or text, response)."""
    response = await treq.get(base + path)
    body = await response.content()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    return response.code, parsed, response


async def sleep(seconds: float) -> None:
    """Wait without blocking the reactor."""
    from twisted.internet import reactor

    await task.deferLater(reactor, seconds, lambda: None)


async def collect(
    base: str, path: str, expected: int, timeout: float = 30.0, limit: int | None = None
) -> list[Any]:
    """GET path repeatedly until expected messages arrived or timeout; all messages seen."""
    query = f"?limit={limit}" if limit else ""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(seen) < expected and time.monotonic() < deadline:
        status, body, _ = await get(base, path + query)
        assert status == 200, (status, body)
        if limit:
            assert len(body["messages"]) <= limit
        seen.extend(body["messages"])
    return seen


def _read_all(address: str, topic: str, timeout: float, headers: bool) -> list[tuple[Any, ...]]:
    consumer = Consumer(
        {
            "bootstrap.servers": address,
            "group.id": "direct-reader",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = list(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        done: set[int] = set()
        records: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + timeout
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                error = message.error()
                if error is None:
                    record = (message.key(), message.value())
                    records.append((*record, message.headers()) if headers else record)
                elif error.code() == KafkaError._PARTITION_EOF:
                    done.add(message.partition())
        return records
    finally:
        consumer.close()


async def read_topic(
    address: str, topic: str, timeout: float = 15.0, headers: bool = False
) -> list[tuple[Any, ...]]:
    """Every (key, value) in topic, or (key, value, headers) with headers, read with a plain
    confluent-kafka consumer (a thread)."""
    return await threads.deferToThread(_read_all, address, topic, timeout, headers)


def _produce(address: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": address, "acks": "all"})
    for key, value in records:
        producer.produce(topic, value, key)
    assert producer.flush(15) == 0


async def produce_direct(address: str, topic: str, records: list[tuple[Any, Any]]) -> None:
    """Write (key, value) records with a plain confluent-kafka producer (a thread)."""
    await threads.deferToThread(_produce, address, topic, records)
