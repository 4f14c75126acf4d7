"""Consumer groups under concurrency: every message exactly once, across GETs and gateways."""

from __future__ import annotations

from collections import Counter

import pytest_twisted
from twisted.internet import defer

from tests.support.helpers import get, post_messages, sleep
from tests.support.servers import unique


async def post_batches(url: str, topic: str, sent: list[str], keys: int) -> None:
    """POST sent in batches of 10 under keys k0..k{keys-1}, so every partition gets some."""
    for start in range(0, len(sent), 10):
        key = f"k{(start // 10) % keys}"
        await post_messages(url, f"/{topic}/{key}/", sent[start : start + 10])


async def drain(url: str, path: str, seen: list[str], total: int, deadline: float) -> int:
    """GET path until seen holds total messages or the deadline; how many GETs were made."""
    from twisted.internet import reactor

    gets = 0
    while len(seen) < total and reactor.seconds() < deadline:
        status, body, _ = await get(url, path)
        assert status == 200, body
        seen.extend(body["messages"])
        gets += 1
    return gets


@pytest_twisted.ensureDeferred
async def test_concurrent_gets_on_one_group_get_every_message_once(server):
    from twisted.internet import reactor

    topic, group = unique(), unique("g")
    sent = [f"m{i}" for i in range(600)]
    # Half before the GETs start, half while 16 GETs run at once on the group.
    await post_batches(server.url, topic, sent[:300], keys=12)
    seen: list[str] = []
    deadline = reactor.seconds() + 40
    readers = [
        defer.ensureDeferred(
            drain(server.url, f"/{topic}/{group}/?limit=7", seen, len(sent), deadline)
        )
        for _ in range(16)
    ]
    await post_batches(server.url, topic, sent[300:], keys=12)
    gets = await defer.gatherResults(readers)
    counts = Counter(seen)
    assert [m for m, n in counts.items() if n > 1] == []
    assert set(sent) - set(seen) == set()
    assert len(seen) == len(sent)
    assert sum(gets) >= len(sent) // 7
    status, body, _ = await get(server.url, f"/{topic}/{group}/")
    assert (status, body["messages"]) == (200, [])


@pytest_twisted.ensureDeferred
async def test_two_gateways_share_a_group(make_server):
    from twisted.internet import reactor

    first, second = await make_server(), await make_server()
    topic, group = unique(), unique("g")
    sent = [f"m{i}" for i in range(600)]
    await post_batches(first.url, topic, sent[:300], keys=12)
    path = f"/{topic}/{group}/?limit=10"
    # The first gateway joins alone and fetches ahead (its buffer holds messages of every
    # partition); the second joins while it reads slowly, so the group rebalances and the
    # first must drop what it buffered for the partitions it gives up, without skipping or
    # repeating any message; more is posted meanwhile.
    seen_first: list[str] = []
    seen_second: list[str] = []
    both: list[str] = []
    deadline = reactor.seconds() + 60

    async def reader(url: str, own: list[str], pause: float) -> None:
        while len(both) < len(sent) and reactor.seconds() < deadline:
            status, body, _ = await get(url, path)
            assert status == 200, body
            own.extend(body["messages"])
            both.extend(body["messages"])
            await sleep(pause if body["messages"] else 0.1)

    readers = [defer.ensureDeferred(reader(first.url, seen_first, 0.3))]
    while not seen_first and reactor.seconds() < deadline:
        await sleep(0.1)
    readers.append(defer.ensureDeferred(reader(second.url, seen_second, 0.0)))
    await sleep(2.0)
    await post_batches(second.url, topic, sent[300:], keys=12)
    await defer.gatherResults(readers)
    counts = Counter(both)
    assert [m for m, n in counts.items() if n > 1] == []
    assert set(sent) - set(both) == set()
    # Both members held partitions: each gateway served part of the topic.
    assert seen_first and seen_second, (len(seen_first), len(seen_second))
    for running in (first, second):
        consumer = running.gateway.consumers.get(topic, group).member
        assert consumer.assignment, "a member holds no partition"
    assert not (
        first.gateway.consumers.get(topic, group).member.assignment
        & second.gateway.consumers.get(topic, group).member.assignment
    )
    for running in (first, second):
        status, body, _ = await get(running.url, path)
        assert (status, body["messages"]) == (200, [])
