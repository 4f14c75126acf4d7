"""Concurrent GETs on one group, against Tansu: every message once, none skipped."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer

from tests.support.helpers import get, post_messages
from tests.support.servers import unique


@pytest_twisted.ensureDeferred
async def test_concurrent_gets_share_the_messages_without_duplicates(server):
    topic, group = unique(), unique("g")
    sent = [f"m{i}" for i in range(600)]
    await post_messages(server.url, f"/{topic}/", sent, per_post=200)
    received: list[str] = []
    for _ in range(40):
        results = await defer.gatherResults(
            [defer.ensureDeferred(get(server.url, f"/{topic}/{group}/?limit=37")) for _ in range(8)]
        )
        for status, body, _ in results:
            assert status == 200, body
            received.extend(body["messages"])
        if len(received) >= len(sent):
            break
    assert sorted(received) == sorted(sent)
