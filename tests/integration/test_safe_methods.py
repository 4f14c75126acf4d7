"""HEAD and OPTIONS never take, commit or produce anything; one build() serves every request."""

from __future__ import annotations

import pytest_twisted
import treq

from tests.support.helpers import collect, get, post_messages
from tests.support.ops import captured_logs, metrics, sample
from tests.support.servers import unique


@pytest_twisted.ensureDeferred
async def test_head_and_options_on_a_topic_take_nothing(make_server):
    # A server of its own: the default group it reads at the end is then this test's alone
    # (the session server's default group has members on every topic the suite read).
    server = await make_server()
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", [f"m{i}" for i in range(5)])
    status, body, _ = await get(server.url, f"/{topic}/{group}/?limit=1")  # joins the group
    assert (status, body["messages"]) == (200, ["m0"])
    for path in (f"/{topic}/{group}/", f"/{topic}/{group}/?limit=100"):
        head = await treq.head(server.url + path)
        assert head.code == 200
        assert await head.content() == b""
        assert head.headers.getRawHeaders("Content-Type") == ["application/json"]
        options = await treq.request("OPTIONS", server.url + path)
        assert options.code == 204
        assert options.headers.getRawHeaders("Allow") == ["GET, POST, HEAD, OPTIONS"]
    head = await treq.head(f"{server.url}/{topic}/")
    assert head.code == 200
    # Nothing was taken: the group still gets every message after the first.
    rest = await collect(server.url, f"/{topic}/{group}/", 4, limit=10)
    assert rest == ["m1", "m2", "m3", "m4"]
    # And the default group was never even created by the HEAD: it reads all five.
    assert await collect(server.url, f"/{topic}/", 5, limit=10) == [f"m{i}" for i in range(5)]


@pytest_twisted.ensureDeferred
async def test_options_of_flasfka_own_paths(server):
    for path, allow in (
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/openapi.json", "GET, HEAD, OPTIONS"),
    ):
        response = await treq.request("OPTIONS", server.url + path)
        assert response.code == 204
        assert response.headers.getRawHeaders("Allow") == [allow]


@pytest_twisted.ensureDeferred
async def test_a_request_goes_through_the_whole_stack_build_makes(server):
    """The fixture's server comes from build(), as makeService's does: ops endpoints, the
    access log, the metrics and the version header are all on one request's way."""
    topic = unique()
    with captured_logs() as events:
        await post_messages(server.url, f"/{topic}/", ["x"])
        response = await treq.get(f"{server.url}/{topic}/{unique('g')}/")
        assert (await response.json())["messages"] == ["x"]
    assert response.headers.getRawHeaders("X-Flasfka-Version")
    access = [e for e in events if e.get("log_namespace") == "flasfka.access"]
    assert any(e["method"] == "GET" and e["path"].startswith(f"/{topic}/") for e in access)
    samples = await metrics(server.url)
    assert sample(samples, "flasfka_messages_consumed_total", topic=topic) == 1
    route = {"route": "/{topic}/{group}/", "method": "GET", "status": "200"}
    assert sample(samples, "flasfka_http_requests_total", **route) >= 1
    ready = await treq.get(f"{server.url}/readyz")
    assert ready.code == 200
