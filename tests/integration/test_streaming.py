"""Streaming GETs (SSE and NDJSON), at-most-once, against Tansu over real HTTP.

The readers are real blocking clients (requests + sseclient-py) on threads of their own, so
the reactor keeps serving flasfka meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest_twisted
import requests
import sseclient
import treq
from twisted.internet import defer, threads

from tests.support.helpers import get, post_messages, produce_direct, sleep
from tests.support.ops import captured_logs
from tests.support.servers import unique

SSE = {"Accept": "text/event-stream"}
NDJSON = {"Accept": "application/x-ndjson"}


class Reader:
    """One streaming GET read on a thread: what it received, and how it ended."""

    def __init__(self, url: str, headers: dict[str, str], want: int | None = None) -> None:
        self.url = url
        self.headers = headers
        self.want = want
        self.received: list[Any] = []
        self.status: int | None = None
        self.content_type: str | None = None
        self.clean_end = False
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.done = threads.deferToThread(self._run)

    def _chunks(self, response: requests.Response) -> Iterator[bytes]:
        for chunk in response.iter_content(chunk_size=None):
            yield chunk
            if self.stop.is_set():
                return

    def _run(self) -> None:
        try:
            with requests.get(self.url, headers=self.headers, stream=True, timeout=(5, 40)) as r:
                self.status = r.status_code
                self.content_type = r.headers.get("Content-Type")
                self.connected.set()
                if r.status_code != 200:
                    self.received.append(r.json())
                    return
                if self.headers is SSE:
                    for event in sseclient.SSEClient(self._chunks(r)).events():
                        self.received.append(json.loads(event.data))
                        if self.stop.is_set():
                            return
                else:
                    for line in r.iter_lines():
                        self.received.append(json.loads(line))
                        if self.stop.is_set():
                            return
                self.clean_end = not self.stop.is_set()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.connected.set()


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await sleep(0.05)


async def metric(server, name: str) -> float:
    _, text, _ = await get(server.url, "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest_twisted.ensureDeferred
async def test_an_sse_client_gets_10000_messages_posted_while_it_reads(server):
    topic, group = unique(), unique("g")
    sent = [f"{i}" for i in range(10000)]
    reader = Reader(f"{server.url}/{topic}/{group}/?format=records&limit=10000", SSE)
    await post_messages(server.url, f"/{topic}/", sent[:100])  # creates the topic
    for start in range(100, len(sent), 100):
        await post_messages(server.url, f"/{topic}/", sent[start : start + 100])
    await reader.done
    assert reader.error is None, reader.error
    assert (reader.status, reader.content_type) == (200, "text/event-stream")
    assert reader.clean_end  # the stream ended by itself at limit
    values = [record["value"] for record in reader.received]
    assert sorted(values, key=int) == sent  # nothing missing, nothing twice
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in reader.received:
        by_partition[record["partition"]].append(record)
    for records in by_partition.values():  # each POST went to one partition, in order
        offsets = [r["offset"] for r in records]
        assert offsets == sorted(offsets)
        numbers = [int(r["value"]) for r in records]
        assert numbers == sorted(numbers)
    assert await metric(server, "flasfka_messages_streamed_total") >= 10000
    # Nothing is left for the group: the stream committed what it wrote.
    status, body, _ = await get(server.url, f"/{topic}/{group}/")
    assert (status, body["messages"]) == (200, [])


@pytest_twisted.ensureDeferred
async def test_ndjson_stream_of_values_ends_at_limit(server):
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["a", "b", "c"])
    reader = Reader(f"{server.url}/{topic}/{group}/?limit=2", NDJSON)
    await reader.done
    assert reader.error is None, reader.error
    assert (reader.status, reader.content_type) == (200, "application/x-ndjson")
    assert reader.received == ["a", "b"] and reader.clean_end
    status, body, _ = await get(server.url, f"/{topic}/{group}/")
    assert status == 200, body
    assert body["messages"] == ["c"]  # only what was streamed was committed


@pytest_twisted.ensureDeferred
async def test_two_streams_on_one_group_split_the_messages_with_none_twice(make_server):
    server = await make_server(STREAM_HEARTBEAT=0.5)
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["first"])
    readers = [Reader(f"{server.url}/{topic}/{group}/", SSE) for _ in range(2)]
    await until(lambda: sum(len(r.received) for r in readers) == 1)
    for _ in range(100):
        if await metric(server, "flasfka_streams_open") == 2:
            break
        await sleep(0.05)
    sent = ["first", *(f"m{i}" for i in range(2000))]
    for start in range(1, len(sent), 50):
        await post_messages(server.url, f"/{topic}/", sent[start : start + 50])
    await until(lambda: sum(len(r.received) for r in readers) >= len(sent))
    with captured_logs() as events:
        for reader in readers:
            reader.stop.set()  # each ends at its next event or heartbeat, then disconnects
        await defer.gatherResults([r.done for r in readers])
        await sleep(0.5)  # no second line comes
        await until(
            lambda: len([e for e in events if e.get("log_namespace") == "flasfka.access"]) == 2
        )
    # The access line of a stream is written when it ends, with its duration and bytes.
    access = [e for e in events if e.get("log_namespace") == "flasfka.access"]
    assert len(access) == 2  # one line per stream
    assert all(e["status"] == 200 and e["path"] == f"/{topic}/{group}/" for e in access)
    assert all(e["bytes"] > 0 and e["duration"] > 0 for e in access)
    for reader in readers:
        assert reader.error is None, reader.error
        assert reader.received, "each stream got a share"
    received = [m for r in readers for m in r.received]
    assert sorted(received) == sorted(sent)  # none twice, none missing
    await until(lambda: server.gateway.consumers.get(topic, group).member.waiting == 0)


@pytest_twisted.ensureDeferred
async def test_shutdown_ends_open_streams_and_what_they_wrote_is_committed(make_server, broker):
    topic, group = unique(), unique("g")
    server = await make_server()
    # More than 20 streams read before the shutdown lands (each takes up to 20,000 at once).
    first = [f"a{i}" for i in range(100_000)]
    await post_messages(server.url, f"/{topic}/", first[:1])  # creates the topic
    await produce_direct(broker.address, topic, [(None, m.encode()) for m in first[1:]])
    from twisted.internet import reactor

    reactor.getThreadPool().adjustPoolsize(maxthreads=30)  # a thread per reader
    readers = [Reader(f"{server.url}/{topic}/{group}/", SSE) for _ in range(20)]
    await until(lambda: all(r.connected.is_set() for r in readers))
    await until(lambda: sum(len(r.received) for r in readers) >= 100)
    await server.stop()  # as SIGTERM, while the streams are reading
    await defer.gatherResults([r.done for r in readers])
    streamed = [m for r in readers for m in r.received]
    for reader in readers:
        assert reader.error is None, reader.error
        assert reader.clean_end, reader.received[-3:]  # the server ended it: a complete body
    assert len(streamed) < len(first)  # the shutdown came mid-stream
    later = await make_server()
    second = [f"b{i}" for i in range(500)]
    await post_messages(later.url, f"/{topic}/", second)
    rest: list[str] = []
    deadline = time.monotonic() + 60  # a new member's join, then ~10 GETs
    while len(streamed) + len(rest) < len(first) + len(second) and time.monotonic() < deadline:
        status, body, _ = await get(later.url, f"/{topic}/{group}/?limit=10000&timeout=2")
        assert status == 200, body
        rest.extend(body["messages"])
    twice = set(streamed) & set(rest)
    assert not twice, f"{len(twice)} streamed messages came again"  # they were committed
    missing = set(first + second) - set(streamed + rest)
    assert not missing, f"{len(missing)} lost, {len(streamed)} streamed, {len(rest)} later"
    assert sorted(streamed + rest) == sorted(first + second)  # and none twice


@pytest_twisted.ensureDeferred
async def test_streams_past_max_streams_get_503(make_server):
    server = await make_server(MAX_STREAMS=1, STREAM_HEARTBEAT=0.5)
    topic = unique()
    await post_messages(server.url, f"/{topic}/", ["x"])
    reader = Reader(f"{server.url}/{topic}/", SSE)
    await until(lambda: reader.received)
    refused = Reader(f"{server.url}/{topic}/", NDJSON)
    await refused.done
    assert refused.status == 503 and "MAX_STREAMS" in refused.received[0]["error"]
    head = await treq.head(f"{server.url}/{topic}/", headers=SSE)  # as the GET would answer
    assert head.code == 503 and head.headers.getRawHeaders("Retry-After") == ["5"]
    reader.stop.set()
    await reader.done
    assert reader.received == ["x"]
    group = server.config.DEFAULT_GROUP
    await until(lambda: not server.gateway.consumers.get(topic, group).member.waiting)
    await post_messages(server.url, f"/{topic}/", ["y"])
    again = Reader(f"{server.url}/{topic}/?limit=1", NDJSON)  # the place is free again
    await again.done
    assert (again.status, again.received) == (200, ["y"])


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class SlowReader:
    """An NDJSON stream whose reader reads nothing until told (a small receive buffer)."""

    def __init__(self, url: str, path: str, expected: int) -> None:
        self.go = threading.Event()
        self.lines: list[Any] = []
        self.error: BaseException | None = None
        self.done = threads.deferToThread(self._run, url, path, expected)

    def _run(self, url: str, path: str, expected: int) -> None:
        import http.client
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.settimeout(60)
        sock.connect((parts.hostname, parts.port))
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        conn.sock = sock
        try:
            conn.request("GET", path, headers=NDJSON)
            response = conn.getresponse()
            assert response.status == 200
            self.go.wait(60)
            while len(self.lines) < expected:
                line = response.readline()
                if not line:
                    break
                self.lines.append(json.loads(line))
        except BaseException as e:
            self.error = e
        finally:
            conn.close()


@pytest_twisted.ensureDeferred
async def test_a_reader_that_stops_reading_stops_its_stream_and_others_are_served(make_server):
    server = await make_server()
    topic, group = unique(), unique("g")
    count, size = 30000, 1000
    await post_messages(server.url, f"/{topic}/", ["start"])
    reader = SlowReader(server.url, f"/{topic}/{group}/", count + 1)
    member = server.gateway.consumers.get(topic, group).member
    await until(lambda: reader.done.called or member.waiting)
    rss_before = _rss_kib()
    payload = "x" * (size - 8)
    for start in range(0, count, 1000):
        await post_messages(
            server.url, f"/{topic}/", [f"{i:07d}" + payload for i in range(start, start + 1000)]
        )
    # Another topic and group are served meanwhile.
    other = unique()
    await post_messages(server.url, f"/{other}/", ["other"])
    status, body, _ = await get(server.url, f"/{other}/{unique('g')}/?timeout=10")
    assert (status, body["messages"]) == (200, ["other"])
    await sleep(2)
    streamed = await metric(server, "flasfka_messages_streamed_total")
    rss_after = _rss_kib()
    grown = rss_after - rss_before
    print(f"\nstreamed {streamed:.0f} of {count + 1} while not read; RSS +{grown} KiB")
    # Without flow control every message would be in flasfka's write buffer by now.
    assert streamed < count / 2
    reader.go.set()
    await reader.done
    assert reader.error is None, reader.error
    assert "start" in reader.lines
    numbers = [int(line[:7]) for line in reader.lines if line != "start"]
    assert sorted(numbers) == list(range(count))  # all of it once the reader reads


@pytest_twisted.ensureDeferred
async def test_head_of_a_stream_takes_nothing_and_klein_paths_stream_too(server):
    topic = unique()
    await post_messages(server.url, f"/{topic}/", ["kept"])
    group = unique("grüppe/")  # not a plain segment: served by Klein, not the fast path
    path = f"/{topic}/{quote(group, safe='')}/"
    response = await treq.head(server.url + path, headers=SSE)
    assert response.code == 200
    assert response.headers.getRawHeaders("Content-Type") == ["text/event-stream"]
    reader = Reader(f"{server.url}{path}?limit=1&format=records", SSE)
    await reader.done
    assert reader.error is None, reader.error
    assert [r["value"] for r in reader.received] == ["kept"] and reader.clean_end


@pytest_twisted.ensureDeferred
async def test_openapi_describes_timeout_format_records_and_streams(server):
    _, spec, _ = await get(server.url, "/openapi.json")
    for path in ("/{topic}/", "/{topic}/{name}/"):
        operation = spec["paths"][path]["get"]
        params = {p["name"]: p for p in operation["parameters"]}
        assert {"timeout", "format"} <= set(params)
        assert params["timeout"]["schema"]["maximum"] == server.config.CONSUMER_MAX_TIMEOUT
        content = operation["responses"]["200"]["content"]
        assert {"application/json", "text/event-stream", "application/x-ndjson"} == set(content)
        answers = content["application/json"]["schema"]["anyOf"]  # at-most-once, leased
        items = answers[0]["properties"]["messages"]["items"]
        record = items["oneOf"][1]
        assert set(record["required"]) == {
            "partition",
            "offset",
            "timestamp",
            "key",
            "value",
            "headers",
        }


@pytest_twisted.ensureDeferred
async def test_a_stream_and_plain_gets_on_one_group_split_the_messages(server):
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["first"])
    reader = Reader(f"{server.url}/{topic}/{group}/?limit=1000", NDJSON)
    await until(lambda: reader.received)
    sent = ["first", *(f"m{i}" for i in range(1999))]
    got: list[str] = []
    for start in range(1, len(sent), 100):
        await post_messages(server.url, f"/{topic}/", sent[start : start + 100])
        status, body, _ = await get(server.url, f"/{topic}/{group}/?limit=50")
        assert status == 200, body
        got.extend(body["messages"])
    await reader.done  # the stream ends at its limit
    assert reader.error is None and reader.clean_end, reader.error
    while len(got) + len(reader.received) < len(sent):
        status, body, _ = await get(server.url, f"/{topic}/{group}/?limit=1000&timeout=5")
        assert status == 200 and body["messages"], body
        got.extend(body["messages"])
    assert len(reader.received) == 1000 and got
    assert sorted(got + reader.received) == sorted(sent)  # none twice, none missing
