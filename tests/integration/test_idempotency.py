"""Idempotency-Key end to end: a replay writes nothing, another body is 422, in flight is 409,
and a POST that got 503 while the broker was away is written once by its retry."""

from __future__ import annotations

import base64
import json
import signal

import pytest_twisted
from twisted.internet import defer, threads

from flasfka.security.hashing import hash_password
from tests.support.helpers import post, read_topic, sleep
from tests.support.servers import unique


def keyed(key: str, **more: list[str]) -> dict[str, list[str]]:
    return {"Idempotency-Key": [key], **more}


async def answer(response) -> tuple[int, object]:
    body = await response.content()
    return response.code, json.loads(body) if body else None


@pytest_twisted.ensureDeferred
async def test_a_replay_answers_the_same_and_writes_nothing(server, broker):
    topic = unique()
    body = {"messages": ["once", {"value": "twice?", "key": "k"}]}
    first = await post(server.url, f"/{topic}/", body, headers=keyed("key-1"))
    assert first.code == 204
    assert not first.headers.hasHeader("Idempotent-Replayed")
    again = await post(server.url, f"/{topic}/", body, headers=keyed("key-1"))
    assert again.code == 204
    assert again.headers.getRawHeaders("Idempotent-Replayed") == ["true"]
    # With offsets: the replay is the first answer, byte for byte.
    offsets = keyed("key-2", Prefer=["return=representation"])
    first = await post(server.url, f"/{topic}/", {"messages": ["third"]}, headers=offsets)
    first_body = await first.content()
    again = await post(server.url, f"/{topic}/", {"messages": ["third"]}, headers=offsets)
    assert (first.code, again.code) == (200, 200)
    assert await again.content() == first_body
    assert again.headers.getRawHeaders("Content-Type") == ["application/json"]
    stored = sorted(value for _, value in await read_topic(broker.address, topic))
    assert stored == [b"once", b"third", b"twice?"]


@pytest_twisted.ensureDeferred
async def test_the_same_key_for_another_request_is_422(server, broker):
    topic = unique()
    response = await post(server.url, f"/{topic}/", {"messages": ["a"]}, headers=keyed("k422"))
    assert response.code == 204
    for path, body in [
        (f"/{topic}/", {"messages": ["b"]}),
        (f"/{topic}/other-key/", {"messages": ["a"]}),
        (f"/{unique()}/", {"messages": ["a"]}),
    ]:
        response = await post(server.url, path, body, headers=keyed("k422"))
        assert response.phrase == b"Unprocessable Content"  # twisted.web has no 422 phrase
        status, content = await answer(response)
        assert status == 422, content
        assert "was used for another request" in content["error"]
    status, content = await answer(
        await post(server.url, f"/{topic}/", {"messages": ["a"]}, headers=keyed("\t"))
    )
    assert status == 400 and "Idempotency-Key" in content["error"]
    assert [value for _, value in await read_topic(broker.address, topic)] == [b"a"]


@pytest_twisted.ensureDeferred
async def test_a_retry_while_the_first_is_in_flight_is_409(own_broker, make_server):
    running = await make_server(HOSTS=[own_broker.address], PRODUCE_TIMEOUT=10.0)
    topic = unique()
    assert (await post(running.url, f"/{topic}/", {"messages": ["warm"]})).code == 204
    body = {"messages": ["in flight"]}
    own_broker.process.send_signal(signal.SIGSTOP)  # the broker stalls: the first POST waits
    try:
        first = defer.ensureDeferred(post(running.url, f"/{topic}/", body, headers=keyed("k409")))
        await sleep(0.5)
        assert not first.called
        status, content = await answer(
            await post(running.url, f"/{topic}/", body, headers=keyed("k409"))
        )
        assert status == 409 and "still in flight" in content["error"], content
    finally:
        own_broker.process.send_signal(signal.SIGCONT)
    assert (await first).code == 204
    again = await post(running.url, f"/{topic}/", body, headers=keyed("k409"))
    assert again.code == 204 and again.headers.getRawHeaders("Idempotent-Replayed") == ["true"]
    values = sorted(value for _, value in await read_topic(own_broker.address, topic))
    assert values == [b"in flight", b"warm"]


@pytest_twisted.ensureDeferred
async def test_a_post_that_got_503_is_written_once_by_its_retries(own_broker, make_server):
    running = await make_server(HOSTS=[own_broker.address], PRODUCE_TIMEOUT=2.0)
    topic = unique()
    assert (await post(running.url, f"/{topic}/", {"messages": ["warm"]})).code == 204
    await threads.deferToThread(own_broker.stop)  # nothing reaches a broker meanwhile
    body = {"messages": [f"m{i}" for i in range(20)]}
    status, content = await answer(
        await post(running.url, f"/{topic}/", body, headers=keyed("k503"))
    )
    assert status == 503, content
    await threads.deferToThread(own_broker.start)  # empty: Tansu keeps nothing
    statuses = []
    for _ in range(60):  # retries with the same key until one is written
        response = await post(running.url, f"/{topic}/", body, headers=keyed("k503"))
        statuses.append((response.code, (await response.content())[:200]))
        if response.code == 204:
            break
        assert response.code == 503, statuses
        await sleep(0.5)
    assert statuses[-1][0] == 204, statuses
    assert not response.headers.hasHeader("Idempotent-Replayed")
    replay = await post(running.url, f"/{topic}/", body, headers=keyed("k503"))
    assert replay.code == 204 and replay.headers.getRawHeaders("Idempotent-Replayed") == ["true"]
    values = sorted(value for _, value in await read_topic(own_broker.address, topic))
    assert values == sorted(f"m{i}".encode() for i in range(20))


@pytest_twisted.ensureDeferred
async def test_each_principal_has_keys_of_its_own(make_server, broker):
    users = {"alice": "alice-Pw-7c1e9", "svc": "svc-Pw-52aa0"}
    running = await make_server(
        USERS={name: hash_password(password) for name, password in users.items()},
        ACL=[{"principal": "*", "topics": "idem-*", "allow": ["produce", "create"]}],
    )
    topic = unique("idem")

    def as_user(name: str) -> dict[str, list[str]]:
        credential = base64.b64encode(f"{name}:{users[name]}".encode()).decode()
        return keyed("shared-key", Authorization=[f"Basic {credential}"])

    body = {"messages": ["from alice"]}
    assert (await post(running.url, f"/{topic}/", body, headers=as_user("alice"))).code == 204
    # The same key from another principal, even with another body, is another key.
    other = {"messages": ["from svc"]}
    response = await post(running.url, f"/{topic}/", other, headers=as_user("svc"))
    assert response.code == 204 and not response.headers.hasHeader("Idempotent-Replayed")
    again = await post(running.url, f"/{topic}/", body, headers=as_user("alice"))
    assert again.headers.getRawHeaders("Idempotent-Replayed") == ["true"]
    values = sorted(value for _, value in await read_topic(broker.address, topic))
    assert values == [b"from alice", b"from svc"]
