"""Values written by other Kafka clients: any bytes come back losslessly, never a 500."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any

import pytest_twisted
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import threads

from tests.support.servers import unique

_values = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.none(),
    ),
    min_size=1,
    max_size=40,
)


def decode(value: Any) -> bytes | None:
    """The record value a GET answer stands for (the documented format)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    assert set(value) == {"base64"}, value
    return base64.b64decode(value["base64"], validate=True)


def fetch(url: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """GET url (blocking, in a thread) until expected messages arrived or timeout."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(seen) < expected and time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            seen += json.loads(response.read())["messages"]
    return seen


def round_trips(address: str, url: str, examples: int) -> int:
    """Write generated values with a plain producer, read them back over HTTP (a thread)."""
    producer = Producer({"bootstrap.servers": address, "acks": "all", "linger.ms": 0})
    topic = unique()
    ran = [0]

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(_values)
    def one(values: list[bytes | None]) -> None:
        for value in values:
            producer.produce(topic, value, b"one-partition")
        assert producer.flush(15) == 0
        received = fetch(f"{url}/{topic}/values/?limit={len(values)}", len(values))
        assert [decode(v) for v in received] == values
        ran[0] += 1

    one()
    return ran[0]


@pytest_twisted.ensureDeferred
async def test_any_bytes_round_trip(server, broker):
    # One topic and one group for every example: only the first GET waits for a join.
    assert await threads.deferToThread(round_trips, broker.address, server.url, 40) == 40
