"""?format=records: each message with its partition, offset, timestamp, key and headers."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest_twisted
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from twisted.internet import threads

from tests.support.helpers import get, post_messages
from tests.support.servers import unique

#: (key, value, headers) written by a direct producer: text, binary and null keys and values,
#: repeated header keys (in order), a null header value and a binary one.
WRITTEN: list[tuple[Any, Any, Any]] = [
    (b"k1", b"plain text", [("h", b"1"), ("h", b"2"), ("other", b"x"), ("h", b"3")]),
    (None, b"\xff\xfe binary", [("null", None), ("bin", b"\x00\xff")]),
    (b"\xc3\x28", None, None),  # a binary key, a null value (tombstone), no headers
    (b"", b"", [("", b"")]),
    ("ключ".encode(), "значение".encode(), [("заголовок", "текст".encode())]),
]


def _produce(address: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": address, "acks": "all"})
    for key, value, headers in WRITTEN:
        producer.produce(topic, value, key, partition=0, headers=headers)
    assert producer.flush(15) == 0


def _render(raw: bytes | None) -> Any:
    """What the contract says a key or value looks like in JSON."""
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def _read_direct(address: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """The records of topic as a plain confluent-kafka consumer reads them, rendered."""
    consumer = Consumer(
        {"bootstrap.servers": address, "group.id": unique("direct"), "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.2):
                if message.error() is not None:
                    assert message.error().code() == KafkaError._PARTITION_EOF
                    continue
                records.append(
                    {
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "timestamp": message.timestamp()[1],
                        "key": _render(message.key()),
                        "value": _render(message.value()),
                        "headers": [
                            {"key": k, "value": _render(v)} for k, v in message.headers() or ()
                        ],
                    }
                )
        return records
    finally:
        consumer.close()


@pytest_twisted.ensureDeferred
async def test_records_equal_what_a_direct_consumer_reads_headers_included(server, broker):
    topic, group = unique(), unique("g")
    status, _, _ = await get(server.url, f"/{topic}/{group}/")  # creates the topic, joins
    assert status == 200
    await threads.deferToThread(_produce, broker.address, topic)
    direct = await threads.deferToThread(_read_direct, broker.address, topic, len(WRITTEN))
    assert len(direct) == len(WRITTEN)
    got: list[dict[str, Any]] = []
    for _ in range(10):
        status, body, _ = await get(server.url, f"/{topic}/{group}/?format=records&timeout=5")
        assert status == 200, body
        got.extend(body["messages"])
        if len(got) >= len(WRITTEN):
            break
    assert got == direct
    # The spot checks the comparison rests on.
    assert got[0]["headers"] == [
        {"key": "h", "value": "1"},
        {"key": "h", "value": "2"},
        {"key": "other", "value": "x"},
        {"key": "h", "value": "3"},
    ]
    assert got[1]["key"] is None and got[1]["value"] == {"base64": "//4gYmluYXJ5"}
    assert got[1]["headers"] == [
        {"key": "null", "value": None},
        {"key": "bin", "value": {"base64": "AP8="}},
    ]
    assert got[2]["value"] is None and got[2]["headers"] == []
    assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 0 for r in got)
    assert [r["offset"] for r in got] == sorted(r["offset"] for r in got)


@pytest_twisted.ensureDeferred
async def test_records_of_messages_posted_through_flasfka(server):
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/key/", ["a", "b"])
    status, body, _ = await get(server.url, f"/{topic}/{group}/?format=records&limit=5&timeout=5")
    assert status == 200, body
    assert [(r["key"], r["value"], r["headers"]) for r in body["messages"]] == [
        ("key", "a", []),
        ("key", "b", []),
    ]
    assert body["messages"][1]["offset"] == body["messages"][0]["offset"] + 1


@pytest_twisted.ensureDeferred
async def test_format_values_is_the_default_and_another_format_is_400(server):
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["v"])
    status, body, _ = await get(server.url, f"/{topic}/{group}/?format=values&timeout=5")
    assert (status, body) == (200, {"group": group, "messages": ["v"]})
    status, body, _ = await get(server.url, f"/{topic}/{group}/?format=avro")
    assert status == 400 and "format" in body["error"], body
