"""SSE streams with ack=explicit, against Tansu over real HTTP: leased events, acks by their
ids, redelivery after the lease, and Last-Event-ID on a reconnect.

The readers are real blocking clients (requests + sseclient-py) on threads of their own, so
the reactor keeps serving flasfka meanwhile.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
import requests
import sseclient
import treq
from twisted.internet import threads

from tests.support.helpers import get, post_messages, sleep
from tests.support.servers import unique

SSE = {"Accept": "text/event-stream"}


def _read(url: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, Any]]]:
    """(status, [(event id, data)]) of a stream that ends by itself (limit=), or its error."""
    with requests.get(url, headers=headers, stream=True, timeout=(5, 20)) as r:
        if r.status_code != 200:
            return r.status_code, [("", r.json())]
        assert r.headers["Content-Type"] == "text/event-stream"
        chunks = r.iter_content(chunk_size=None)
        events = [(e.id, json.loads(e.data)) for e in sseclient.SSEClient(chunks).events()]
        return 200, events


async def read(url: str, headers: dict[str, str] | None = None) -> tuple[int, list]:
    return await threads.deferToThread(_read, url, {**SSE, **(headers or {})})


async def ack(url: str, path: str, cursor: str) -> int:
    response = await treq.post(f"{url}{path}ack", json={"cursor": cursor})
    await response.content()
    return response.code


@pytest_twisted.ensureDeferred
async def test_unacked_events_are_delivered_again_after_the_lease_acked_ones_never(server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    sent = [f"m{i}" for i in range(6)]
    await post_messages(server.url, f"/{topic}/", sent)
    status, events = await read(f"{server.url}{path}?ack=explicit&lease=2&format=records&limit=6")
    assert status == 200, events
    assert sorted(data["value"] for _, data in events) == sent
    assert all(data["deliveries"] == 1 for _, data in events)
    ids = [event_id for event_id, _ in events]
    assert all(ids) and len(set(ids)) == 6  # one cursor per event
    acked, unacked = events[::2], events[1::2]
    for event_id, _ in acked:
        assert await ack(server.url, path, event_id) == 204
    # Within the lease nobody else gets them.
    status, body, _ = await get(server.url, f"{path}?ack=explicit&format=records&limit=10")
    assert (status, body["messages"]) == (200, [])
    await sleep(2.5)  # the stream's leases (2 s) ended
    status, body, _ = await get(server.url, f"{path}?ack=explicit&format=records&limit=10")
    assert status == 200, body
    again = body["messages"]
    assert sorted(m["value"] for m in again) == sorted(d["value"] for _, d in unacked)
    assert all(m["deliveries"] == 2 for m in again)
    assert await ack(server.url, path, body["cursor"]) == 204
    status, body, _ = await get(server.url, f"{path}?format=records&limit=10")
    assert (status, body["messages"]) == (200, [])  # the acked half never came back


@pytest_twisted.ensureDeferred
async def test_a_reconnect_with_last_event_id_acks_its_stream_up_to_that_event(server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    url = f"{server.url}{path}?ack=explicit&lease=2&format=records"
    await post_messages(server.url, f"/{topic}/", ["a", "b", "c", "d"])
    status, events = await read(f"{url}&limit=4")
    assert status == 200, events
    await post_messages(server.url, f"/{topic}/", ["e", "f"])
    status, others = await read(f"{url}&limit=2")  # another stream of the group
    assert status == 200, others
    last_id, _ = events[1]
    # The reconnect acks the first stream's events 0 and 1 at once; its events 2 and 3 and
    # the other stream's come again once their leases end.
    status, again = await read(f"{url}&limit=4", {"Last-Event-ID": last_id})
    assert status == 200, again
    expected = [d["value"] for _, d in events[2:] + others]
    assert sorted(d["value"] for _, d in again) == sorted(expected)
    assert all(d["deliveries"] == 2 for _, d in again)
    # Acked by the Last-Event-ID: a second ack of those cursors is 204 (already acknowledged).
    for event_id, _ in events[:2]:
        assert await ack(server.url, path, event_id) == 204
    for event_id, _ in again:
        assert await ack(server.url, path, event_id) == 204
    status, body, _ = await get(server.url, f"{path}?limit=10")
    assert (status, body["messages"]) == (200, [])  # nothing is left for the group


@pytest_twisted.ensureDeferred
async def test_bad_last_event_id_and_ndjson_with_ack_answer_400(server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    await post_messages(server.url, f"/{topic}/", ["x"])
    status, answer = await read(
        f"{server.url}{path}?ack=explicit&limit=1", {"Last-Event-ID": "not-a-cursor"}
    )
    assert status == 400 and answer[0][1]["status"] == 400, answer
    response = await treq.get(
        f"{server.url}{path}?ack=explicit&limit=1", headers={"Accept": "application/x-ndjson"}
    )
    body = json.loads(await response.content())
    assert response.code == 400 and "NDJSON" in body["error"], body
    # A Last-Event-ID without ack=explicit changes nothing (at-most-once, as before).
    status, events = await read(f"{server.url}{path}?limit=1", {"Last-Event-ID": "whatever"})
    assert status == 200 and [d for _, d in events] == ["x"] and events[0][0] in ("", None)
