"""Long polls (?timeout=S), against Tansu over real HTTP."""

from __future__ import annotations

import time

import pytest
import pytest_twisted
import treq
from twisted.internet import defer
from twisted.web.client import HTTPConnectionPool

from tests.support.helpers import get, post_messages, sleep
from tests.support.ops import captured_logs
from tests.support.servers import unique


async def joined(server, topic: str, group: str):
    """Make (topic, group) join its group with one plain GET; its member."""
    status, body, _ = await get(server.url, f"/{topic}/{group}/")
    assert status == 200, body
    return server.gateway.consumers.get(topic, group).member


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await sleep(0.02)


@pytest_twisted.ensureDeferred
async def test_a_message_posted_during_the_wait_is_answered_before_the_timeout(server):
    topic, group = unique(), unique("g")
    member = await joined(server, topic, group)
    started = time.monotonic()
    polling = defer.ensureDeferred(get(server.url, f"/{topic}/{group}/?timeout=10"))
    await until(lambda: member.waiting == 1)
    await sleep(1)
    assert not polling.called  # it waits: nothing was there
    await post_messages(server.url, f"/{topic}/", ["late"])
    status, body, _ = await polling
    elapsed = time.monotonic() - started
    assert status == 200, body
    assert body == {"group": group, "messages": ["late"]}
    assert 1 <= elapsed < 8  # answered on arrival, well before the 10 s


@pytest_twisted.ensureDeferred
async def test_nothing_within_the_timeout_answers_an_empty_list_after_it(server):
    topic, group = unique(), unique("g")
    await joined(server, topic, group)
    started = time.monotonic()
    status, body, _ = await get(server.url, f"/{topic}/{group}/?timeout=10")
    assert status == 200, body
    assert body == {"group": group, "messages": []}
    assert time.monotonic() - started >= 9.5  # did not return before the timeout


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_mid_wait_takes_nothing(server):
    topic, group = unique(), unique("g")
    member = await joined(server, topic, group)
    polling = treq.get(server.url + f"/{topic}/{group}/?timeout=10")
    await until(lambda: member.waiting == 1)
    with captured_logs() as events:
        polling.cancel()  # closes the connection
        polling.addErrback(lambda _: None)
        await until(lambda: member.waiting == 0)  # the server cancelled the wait
        path = f"/{topic}/{group}/?timeout=10"
        await until(lambda: any(e.get("path") == path for e in events))
    # Its access line says the client left before any answer (nginx's 499).
    (line,) = [e for e in events if e.get("log_namespace") == "flasfka.access"]
    assert (line["path"], line["status"], line["bytes"]) == (path, 499, 0)
    assert 0 < line["duration"] < 10
    await post_messages(server.url, f"/{topic}/", ["kept"])
    status, body, _ = await get(server.url, f"/{topic}/{group}/?timeout=5")
    assert (status, body["messages"]) == (200, ["kept"])


@pytest_twisted.ensureDeferred
async def test_two_hundred_long_polls_are_all_served_and_healthz_stays_responsive(server):
    topic, group = unique(), unique("g")
    member = await joined(server, topic, group)
    from twisted.internet import reactor

    pool = HTTPConnectionPool(reactor)  # one connection per poll: 200 at once
    polls = [
        defer.ensureDeferred(_get(server.url + f"/{topic}/{group}/?timeout=20&limit=1", pool))
        for _ in range(200)
    ]
    await until(lambda: member.waiting == 200, timeout=20)
    for _ in range(3):  # the reactor serves other requests while 200 GETs wait
        status, body, _ = await get(server.url, "/healthz")
        assert (status, body["status"]) == (200, "ok")
        assert not any(poll.called for poll in polls)
    sent = [f"m{i}" for i in range(200)]
    await post_messages(server.url, f"/{topic}/", sent)
    answers = await defer.gatherResults(polls)
    await pool.closeCachedConnections()
    received = []
    for status, body in answers:
        assert status == 200, body
        assert len(body["messages"]) == 1
        received.extend(body["messages"])
    assert sorted(received) == sorted(sent)


async def _get(url: str, pool) -> tuple[int, dict]:
    response = await treq.get(url, pool=pool)
    return response.code, await response.json()


@pytest.mark.parametrize("timeout", ["31", "-1", "abc", "nan", "inf", "1e3", "", "0x10"])
@pytest_twisted.ensureDeferred
async def test_a_timeout_out_of_range_or_malformed_is_400(server, timeout):
    status, body, _ = await get(server.url, f"/{unique()}/?timeout={timeout}")
    assert status == 400, body
    assert body["status"] == 400 and "timeout" in body["error"]


@pytest_twisted.ensureDeferred
async def test_a_leased_long_poll_gets_a_message_posted_during_the_wait(server):
    topic, group = unique(), unique("g")
    member = await joined(server, topic, group)
    polling = defer.ensureDeferred(
        get(server.url, f"/{topic}/{group}/?timeout=10&ack=explicit&format=records")
    )
    await until(lambda: member.waiting == 1)
    await sleep(1)
    assert not polling.called
    await post_messages(server.url, f"/{topic}/", ["leased"])
    status, body, _ = await polling
    assert status == 200, body
    assert [(m["value"], m["deliveries"]) for m in body["messages"]] == [("leased", 1)]
    assert body["cursor"]


@pytest_twisted.ensureDeferred
async def test_shutdown_answers_waiting_long_polls_at_once(make_server):
    """SIGTERM with long polls waiting: each answers what is there (nothing) right away, and
    the drain does not sit out SHUTDOWN_GRACE for them (nor cut them with no answer)."""
    server = await make_server(SHUTDOWN_GRACE=20)
    topic, plain, leased = unique(), unique("g"), unique("g")
    members = [await joined(server, topic, group) for group in (plain, leased)]
    polls = [
        defer.ensureDeferred(get(server.url, f"/{topic}/{plain}/?timeout=25")),
        defer.ensureDeferred(get(server.url, f"/{topic}/{leased}/?timeout=25&ack=explicit")),
    ]
    await until(lambda: all(member.waiting == 1 for member in members))
    started = time.monotonic()
    await server.stop()  # as SIGTERM
    assert time.monotonic() - started < 10  # not the 20 s grace
    (status, body, _), (leased_status, leased_body, _) = [await poll for poll in polls]
    assert (status, body) == (200, {"group": plain, "messages": []})
    assert leased_status == 200 and leased_body["messages"] == [], leased_body
