"""The hot-route fast path answers exactly as the Klein routes do."""

from __future__ import annotations

import http.client
import json

import pytest_twisted
import treq
from twisted.internet import threads

from flasfka.http.resource import klein_app
from flasfka.http.site import make_site
from flasfka.metrics import GatewayMetrics
from tests.support.ops import metrics, sample
from tests.support.servers import unique


async def answer(url: str, method: str, path: str, body: bytes | None = None):
    response = await treq.request(method, url + path, data=body)
    content = await response.content()
    return response.code, content, response.headers


@pytest_twisted.ensureDeferred
async def test_fast_path_and_klein_give_the_same_answers(server):
    from twisted.internet import reactor

    config = server.config
    klein_only = make_site(
        klein_app(server.service.handlers).resource(),
        config.MAX_BODY_SIZE,
        config.HTTP_IDLE_TIMEOUT,
        clock=reactor,
        metrics=GatewayMetrics(),
    )
    port = reactor.listenTCP(0, klein_only, interface="127.0.0.1")
    klein_url = f"http://127.0.0.1:{port.getHost().port}"
    try:
        topic = unique()
        cases = [
            ("POST", f"/{topic}/", b"not json"),
            ("POST", f"/{topic}/", b'{"messages": [1]}'),
            ("POST", f"/{topic}/", b"[]"),
            ("GET", f"/{topic}/?limit=0", None),
            ("POST", f"/{topic}/", b'{"messages": ["a"]}'),
            ("GET", f"/{topic}/?limit=x", None),
            ("POST", f"/{topic}/key-1/", b'{"messages": ["k"]}'),
            ("POST", f"/{topic}/key-1/", b'{"messages": "k"}'),
            ("GET", f"/{topic}/{unique('g')}/?limit=0", None),
            ("POST", f"/{topic}/{unique('g')}/ack", b'{"cursor": "forged"}'),
            ("POST", f"/{topic}/{unique('g')}/ack", b"not json"),
            ("POST", f"/{topic}/{unique('g')}/ack", b'{"cursor": 1, "release": "no"}'),
        ]
        for method, path, body in cases:
            hot = await answer(server.url, method, path, body)
            klein = await answer(klein_url, method, path, body)
            assert hot[0] == klein[0], path
            assert hot[1] == klein[1], path
            for name in ("Content-Type", "X-Flasfka-Version"):
                assert hot[2].getRawHeaders(name) == klein[2].getRawHeaders(name)
    finally:
        await port.stopListening()


def raw_get(url: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """GET with http.client, which shows the connection headers treq hides."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_an_ack_through_the_fast_path_acknowledges(server):
    topic, group = unique(), unique("g")
    code, _, _ = await answer(server.url, "POST", f"/{topic}/", b'{"messages": ["a", "b"]}')
    assert code == 204
    body: dict = {"messages": []}
    for _ in range(60):  # the group's join
        code, content, _ = await answer(server.url, "GET", f"/{topic}/{group}/?ack=explicit")
        body = json.loads(content)
        if body["messages"]:
            break
    assert sorted(body["messages"]) == ["a", "b"]
    ack = json.dumps({"cursor": body["cursor"]}).encode()
    code, content, headers = await answer(server.url, "POST", f"/{topic}/{group}/ack", ack)
    assert (code, content) == (204, b"")
    assert headers.getRawHeaders("X-Flasfka-Version")
    samples = await metrics(server.url)
    route = {"route": "/{topic}/{group}/ack", "method": "POST", "status": "204"}
    assert sample(samples, "flasfka_http_requests_total", **route) >= 1
    code, content, _ = await answer(server.url, "POST", f"/{topic}/{group}/ack", ack)
    assert code == 204  # acking twice is fine


@pytest_twisted.ensureDeferred
async def test_fast_path_sends_a_content_length(server):
    topic = unique()
    code, _, _ = await answer(server.url, "POST", f"/{topic}/", b'{"messages": ["a"]}')
    assert code == 204
    code, content, headers = await threads.deferToThread(raw_get, server.url, f"/{topic}/")
    assert code == 200
    assert headers.get("Content-Length") == str(len(content))
    assert "Transfer-Encoding" not in headers
