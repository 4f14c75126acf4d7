"""Resource bounds: body size, slow and silent clients, many connections, consumers, GET size."""

from __future__ import annotations

import json
import socket
import time

import pytest_twisted
import treq
from twisted.internet import defer, threads

from tests.support.helpers import get, post, post_messages, read_topic, sleep
from tests.support.rawhttp import (
    address,
    body_of,
    dribble,
    exchange,
    send_until_answered,
    status_of,
)
from tests.support.servers import unique


@pytest_twisted.ensureDeferred
async def test_huge_declared_content_length_is_refused_before_the_body(server):
    raw = (
        f"POST /{unique()}/ HTTP/1.1\r\nHost: x\r\nContent-Length: {10**15}\r\n\r\n".encode()
        + b'{"messages": ['
    )
    response = await threads.deferToThread(exchange, server.url, raw, 5.0)
    assert status_of(response) == 413, response
    assert b"MAX_BODY_SIZE" in body_of(response)


@pytest_twisted.ensureDeferred
async def test_chunked_body_over_the_limit_is_refused_while_it_streams(make_server):
    running = await make_server(MAX_BODY_SIZE=4096)
    head = f"POST /{unique()}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"2000\r\n" + b"a" * 0x2000 + b"\r\n"
    sent, response = await threads.deferToThread(
        send_until_answered, running.url, head, chunk, 200 * 1024 * 1024
    )
    assert status_of(response) == 413, response
    # The server answered long before the 200 MB the client meant to send.
    assert sent < 8 * 1024 * 1024, sent
    # A body just under the limit still goes through on the same server.
    body = json.dumps({"messages": ["x" * 3000]}).encode()
    assert (await post(running.url, f"/{unique()}/", body)).code == 204


@pytest_twisted.ensureDeferred
async def test_declared_body_over_the_limit_is_refused(make_server):
    running = await make_server(MAX_BODY_SIZE=4096)
    body = json.dumps({"messages": ["x" * 5000]}).encode()
    response = await post(running.url, f"/{unique()}/", body)
    assert response.code == 413
    assert "MAX_BODY_SIZE" in (await response.json())["error"]


@pytest_twisted.ensureDeferred
async def test_slow_clients_are_cut_and_do_not_block_others(make_server):
    running = await make_server(HTTP_IDLE_TIMEOUT=2.0)
    topic = unique()
    # Slowloris: headers one byte every 0.5 s, which resets an idle timer each time.
    slow_head = threads.deferToThread(
        dribble,
        running.url,
        b"",
        f"POST /{topic}/ HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * 200}\r\n".encode(),
        0.5,
        15.0,
    )
    # A slow body: complete headers, then the body one byte every 0.5 s.
    body = b'{"messages": ["slow"]}'
    slow_body = threads.deferToThread(
        dribble,
        running.url,
        f"POST /{topic}/ HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode(),
        body,
        0.5,
        15.0,
    )
    # Meanwhile others are served at once.
    for i in range(5):
        await post_messages(running.url, f"/{topic}/", [f"fast {i}"])
    for seconds, sent, answer in await defer.gatherResults([slow_head, slow_body]):
        assert seconds < 2.0 + 2.0, (seconds, sent, answer)
        assert status_of(answer) == 408, answer
        assert b"HTTP_IDLE_TIMEOUT" in body_of(answer)
    values = [value for _, value in await read_topic(running.config.HOSTS[0], topic)]
    assert sorted(values) == [f"fast {i}".encode() for i in range(5)]


@pytest_twisted.ensureDeferred
async def test_hundreds_of_concurrent_connections_are_served(server, broker):
    topic = unique()
    requests = [
        post(server.url, f"/{topic}/", {"messages": [f"c{i}"]}, persistent=False)
        for i in range(300)
    ]
    responses = await defer.gatherResults([defer.ensureDeferred(r) for r in requests])
    codes = [r.code for r in responses]
    for r in responses:
        await r.content()
    assert codes == [204] * 300
    values = sorted(value for _, value in await read_topic(broker.address, topic))
    assert values == sorted(f"c{i}".encode() for i in range(300))


@pytest_twisted.ensureDeferred
async def test_consumer_count_and_get_size_are_bounded(make_server):
    running = await make_server(MAX_CONSUMERS=1, CONSUMER_MAX_LIMIT=5, CONSUMER_LIMIT=5)
    topic = unique()
    await post_messages(running.url, f"/{topic}/", [str(i) for i in range(8)])
    first = defer.ensureDeferred(get(running.url, f"/{topic}/one/?limit=5"))
    # The second (topic, group) is over MAX_CONSUMERS: 503 at once, with Retry-After.
    status, body, response = await get(running.url, f"/{topic}/two/")
    assert status == 503, body
    assert "MAX_CONSUMERS" in body["error"]
    assert response.headers.getRawHeaders("Retry-After")
    # A limit over CONSUMER_MAX_LIMIT is refused before any consumer is involved.
    for bad in ("6", "100000000000000000000000", "-1", "0", "1e3", "five"):
        status, body, _ = await get(running.url, f"/{topic}/two/?limit={bad}")
        assert status == 400, (bad, body)
        assert "from 1 to 5" in body["error"]
    status, body, _ = await first
    assert status == 200
    assert len(body["messages"]) == 5
    status, body, _ = await get(running.url, f"/{topic}/one/?limit=5")
    assert len(body["messages"]) == 3
    response = await treq.get(running.url + f"/{topic}/one/?limit=5")
    assert response.code == 200
    await response.content()


def _never_read(url: str, path: str, seconds: float) -> tuple[int, bool]:
    """GET path with a tiny receive window, read nothing for seconds, then read what is left.

    Returns (bytes received, whether the server cut the connection).
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address(url))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(seconds)
    sock.settimeout(2.0)
    received, cut = 0, False
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                cut = True
                break
            received += len(chunk)
    except ConnectionResetError:
        cut = True
    except TimeoutError:
        pass
    sock.close()
    return received, cut


@pytest_twisted.ensureDeferred
async def test_a_client_that_never_reads_is_cut_and_others_are_served(make_server):
    running = await make_server(HTTP_IDLE_TIMEOUT=1.5, CONSUMER_MAX_LIMIT=10000)
    topic = unique()
    value = "v" * 1000
    for _ in range(4):
        await post_messages(running.url, f"/{topic}/", [value] * 1500)
    # About 6 MB of answer, to a client that never reads: more than the socket buffers hold.
    reading = threads.deferToThread(_never_read, running.url, f"/{topic}/?limit=6000", 10.0)
    for i in range(10):
        await sleep(0.5)
        await post_messages(running.url, f"/{topic}/", [f"other {i}"])
    received, cut = await reading
    assert cut, received
    assert received < 6000 * 1000, received
