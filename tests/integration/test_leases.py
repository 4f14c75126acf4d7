"""At-least-once reads end to end (real Tansu, real HTTP): leases, acks, redelivery, restarts,
dead letters."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest_twisted
import treq
from twisted.internet import defer

from flasfka.app.broker import free_port
from tests.support.helpers import get, post, post_messages, produce_direct, read_topic, sleep
from tests.support.ops import spawn, wait_exit, wait_ready, write_config
from tests.support.servers import unique


async def lease(url: str, path: str, **params: Any) -> dict[str, Any]:
    """GET path with ack=explicit (and format=records) and params; the 200 body."""
    query = "&".join(f"{k}={v}" for k, v in {"ack": "explicit", **params}.items())
    status, body, _ = await get(url, f"{path}?{query}")
    assert status == 200, body
    return body


async def ack(url: str, path: str, cursor: Any, release: bool | None = None) -> tuple[int, Any]:
    """POST path + 'ack' with the cursor; (status, body text)."""
    body: dict[str, Any] = {"cursor": cursor}
    if release is not None:
        body["release"] = release
    response = await post(url, path + "ack", body)
    return response.code, await response.text()


def values(body: dict[str, Any]) -> list[Any]:
    return [m["value"] for m in body["messages"]]


@pytest_twisted.ensureDeferred
async def test_expiry_redelivers_exactly_the_unacked_in_order(server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    await post_messages(server.url, f"/{topic}/", [f"m{i}" for i in range(6)])
    first = await lease(server.url, path, limit=3, lease=1, format="records")
    second = await lease(server.url, path, limit=3, lease=1, format="records")
    assert (values(first), values(second)) == (["m0", "m1", "m2"], ["m3", "m4", "m5"])
    assert first["lease"] == 1 and first["group"] == group
    assert [m["deliveries"] for m in first["messages"]] == [1, 1, 1]
    assert await ack(server.url, path, second["cursor"]) == (204, "")
    await sleep(1.5)
    again = await lease(server.url, path, limit=10, format="records")
    assert values(again) == ["m0", "m1", "m2"]
    assert [m["deliveries"] for m in again["messages"]] == [2, 2, 2]
    assert [m["offset"] for m in again["messages"]] == [m["offset"] for m in first["messages"]]
    assert again["lease"] == 30  # CONSUMER_LEASE
    status, text = await ack(server.url, path, first["cursor"])
    assert status == 409 and "delivered again" in text
    assert (await ack(server.url, path, again["cursor"]))[0] == 204
    assert values(await lease(server.url, path)) == []
    status, body, _ = await get(server.url, path)
    assert (status, body["messages"]) == (200, [])
    _, metrics, _ = await get(server.url, "/metrics")
    assert f'flasfka_acked_messages_total{{topic="{topic}"}} 6.0' in metrics
    assert f'flasfka_redelivered_messages_total{{topic="{topic}"}} 3.0' in metrics
    assert f'flasfka_expired_messages_total{{topic="{topic}"}} 3.0' in metrics
    assert f'flasfka_leased_messages{{topic="{topic}"}} 0.0' in metrics


@pytest_twisted.ensureDeferred
async def test_release_ack_twice_and_bad_cursors(server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    await post_messages(server.url, f"/{topic}/", ["a", "b", "c"])
    first = await lease(server.url, path, limit=2)
    assert first["messages"] == ["a", "b"]  # values without format=records
    assert await ack(server.url, path, first["cursor"], release=True) == (204, "")
    assert (await ack(server.url, path, first["cursor"], release=True))[0] == 204
    again = await lease(server.url, path, limit=5, format="records")
    assert values(again) == ["a", "b", "c"]
    assert [m["deliveries"] for m in again["messages"]] == [2, 2, 1]
    assert (await ack(server.url, path, again["cursor"]))[0] == 204
    assert (await ack(server.url, path, again["cursor"]))[0] == 204  # twice
    status, text = await ack(server.url, path, again["cursor"], release=True)
    assert status == 409 and "acknowledged" in text
    cursor = again["cursor"]
    payload, signature = cursor.split(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    for bad in [forged, "garbage", "", 42, None, cursor + "x"]:
        status, text = await ack(server.url, path, bad)
        assert status == 400, (bad, status, text)
    assert (await ack(server.url, f"/{topic}/other-group/", cursor))[0] == 400
    assert (await ack(server.url, f"/{unique()}/{group}/", cursor))[0] == 400
    response = await post(server.url, path + "ack", {"cursor": cursor, "extra": 1})
    assert response.code == 400
    response = await post(server.url, path + "ack", b"not json")
    assert response.code == 400
    status, body, _ = await get(server.url, f"{path}?ack=explicit&lease=0")
    assert status == 400 and "lease" in body["error"]
    status, body, _ = await get(server.url, f"{path}?lease=5")  # implies ack=explicit
    assert status == 200 and body["lease"] == 5 and "cursor" in body
    status, body, _ = await get(server.url, f"{path}?ack=auto")
    assert status == 400


@pytest_twisted.ensureDeferred
async def test_the_ack_route_and_a_group_named_ack(server):
    topic = unique()
    response = await treq.request("OPTIONS", f"{server.url}/{topic}/g/ack")
    assert response.code == 204 and response.headers.getRawHeaders("Allow") == ["POST, OPTIONS"]
    # A path of flasfka's own: other methods get 405, not a redirect to group "g/ack".
    response = await treq.get(f"{server.url}/{topic}/g/ack", allow_redirects=False)
    assert response.code == 405
    assert response.headers.getRawHeaders("Allow") == ["POST, OPTIONS"]
    response = await treq.head(f"{server.url}/{topic}/g/?ack=explicit")
    assert response.code == 200  # HEAD takes nothing: the message below is still there
    await post_messages(server.url, f"/{topic}/", ["x"])
    taken = await lease(server.url, f"/{topic}/ack/")  # the group "ack"
    assert taken["group"] == "ack" and taken["messages"] == ["x"]
    assert (await ack(server.url, f"/{topic}/ack/", taken["cursor"]))[0] == 204
    _, metrics, _ = await get(server.url, "/metrics")
    assert 'route="/{topic}/{group}/ack"' in metrics
    _, spec, _ = await get(server.url, "/openapi.json")
    assert "post" in spec["paths"]["/{topic}/{name}/ack"]
    names = [p["name"] for p in spec["paths"]["/{topic}/{name}/"]["get"]["parameters"]]
    assert "ack" in names and "lease" in names


@pytest_twisted.ensureDeferred
async def test_out_of_order_acks_then_a_restart_deliver_the_unacked_again(make_server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    first_server = await make_server()
    await post_messages(first_server.url, f"/{topic}/", ["m0", "m1", "m2", "m3"])
    first = await lease(first_server.url, path, limit=2)
    second = await lease(first_server.url, path, limit=2)
    assert (first["messages"], second["messages"]) == (["m0", "m1"], ["m2", "m3"])
    assert (await ack(first_server.url, path, second["cursor"]))[0] == 204
    await first_server.stop()  # SIGTERM's path: commit what was acked, leave the group
    restarted = await make_server()
    # The committed offset stayed at m0 (the first unacknowledged), so m0 and m1 come back
    # (and m2, m3 again: acknowledged, but behind an unacknowledged message).
    again = await lease(restarted.url, path, limit=10, format="records")
    assert values(again) == ["m0", "m1", "m2", "m3"]
    assert [m["deliveries"] for m in again["messages"]] == [1, 1, 1, 1]  # counted per process
    status, text = await ack(restarted.url, path, first["cursor"])
    assert status == 409 and "another flasfka process" in text
    assert (await ack(restarted.url, path, again["cursor"]))[0] == 204
    await restarted.stop()
    third = await make_server()
    assert (await lease(third.url, path))["messages"] == []


@pytest_twisted.ensureDeferred
async def test_dead_letter_after_max_deliveries(make_server, broker):
    running = await make_server(CONSUMER_MAX_DELIVERIES=2)
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    await post_messages(running.url, f"/{topic}/k/", ["poison", "fine"])
    first = await lease(running.url, path, limit=1, lease=1, format="records")
    assert values(first) == ["poison"]
    await sleep(1.3)
    second = await lease(running.url, path, limit=1, lease=1, format="records")
    assert values(second) == ["poison"] and second["messages"][0]["deliveries"] == 2
    await sleep(1.3)  # its second lease ends: dead-lettered, then counted as acknowledged
    rest = await lease(running.url, path, limit=5, format="records")
    assert values(rest) == ["fine"]
    assert (await ack(running.url, path, rest["cursor"]))[0] == 204
    dead = await read_topic(broker.address, f"{topic}.dead-letter", headers=True)
    assert len(dead) == 1
    key, value, headers = dead[0]
    assert (key, value) == (b"k", b"poison")
    assert dict(headers) == {
        "flasfka-origin-topic": topic.encode(),
        "flasfka-origin-partition": str(first["messages"][0]["partition"]).encode(),
        "flasfka-origin-offset": str(first["messages"][0]["offset"]).encode(),
        "flasfka-deliveries": b"2",
    }
    _, metrics, _ = await get(running.url, "/metrics")
    assert f'flasfka_dead_lettered_messages_total{{topic="{topic}"}} 1.0' in metrics
    await running.stop()
    restarted = await make_server(CONSUMER_MAX_DELIVERIES=2)
    assert (await lease(restarted.url, path))["messages"] == []  # both committed


@pytest_twisted.ensureDeferred
async def test_concurrent_leased_gets_are_disjoint(server):
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    sent = [f"m{i}" for i in range(320)]
    for key in range(8):
        await post_messages(server.url, f"/{topic}/k{key}/", sent[key * 40 : (key + 1) * 40])
    await lease(server.url, path, limit=1)  # join first (the bodies below are all leased)
    bodies = await defer.gatherResults(
        [defer.ensureDeferred(lease(server.url, path, limit=10, lease=60)) for _ in range(16)]
    )
    seen = [m for body in bodies for m in body["messages"]]
    assert [m for m, n in Counter(seen).items() if n > 1] == []
    assert len(seen) == 160
    for body in bodies:
        assert (await ack(server.url, path, body["cursor"]))[0] == 204


@pytest_twisted.ensureDeferred
async def test_bound_of_leased_messages_is_503(make_server):
    running = await make_server(CONSUMER_MAX_LEASED=3)
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    await post_messages(running.url, f"/{topic}/", ["a", "b", "c", "d"])
    assert len((await lease(running.url, path, limit=5))["messages"]) == 3
    status, body, response = await get(running.url, f"{path}?ack=explicit")
    assert status == 503 and "CONSUMER_MAX_LEASED" in body["error"]
    assert response.headers.getRawHeaders("Retry-After") == ["1"]
    status, body, _ = await get(running.url, path)  # at-most-once still reads
    assert (status, body["messages"]) == (200, ["d"])


@pytest_twisted.ensureDeferred
async def test_a_rebalance_drops_the_leases_of_revoked_partitions(make_server):
    from twisted.internet import reactor

    first, second = await make_server(), await make_server()
    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    sent = [f"m{i}" for i in range(120)]
    for key in range(12):
        await post_messages(first.url, f"/{topic}/k{key}/", sent[key * 10 : (key + 1) * 10])
    deadline = reactor.seconds() + 60
    held: list[dict[str, Any]] = []
    while sum(len(b["messages"]) for b in held) < len(sent) and reactor.seconds() < deadline:
        held.append(await lease(first.url, path, limit=1000, lease=120))
    acked: list[str] = []
    # The second gateway joins: the group rebalances and the first gives up some partitions,
    # whose leases it drops; their messages go to the second from the committed offset.
    while not acked and reactor.seconds() < deadline:
        body = await lease(second.url, path, limit=1000, format="records")
        if body["messages"]:
            assert {m["deliveries"] for m in body["messages"]} == {1}
            assert (await ack(second.url, path, body["cursor"]))[0] == 204
            acked.extend(values(body))
        else:
            await sleep(0.2)
    assert acked, "the second gateway got no partition"
    statuses = [(await ack(first.url, path, b["cursor"]))[0] for b in held if b["messages"]]
    assert 409 in statuses
    # What the first still holds comes back to it (its dropped leases' kept partitions).
    while len(set(acked)) < len(sent) and reactor.seconds() < deadline:
        for url in (first.url, second.url):
            body = await lease(url, path, limit=1000)
            if body["messages"]:
                assert (await ack(url, path, body["cursor"]))[0] == 204
                acked.extend(body["messages"])
        await sleep(0.1)
    assert set(acked) == set(sent)


@pytest_twisted.ensureDeferred
async def test_two_processes_one_sigkilled_every_message_delivered_at_least_once(broker, tmp_path):
    """20,000 messages, two flasfka-serve processes on one group with ack=explicit; one is
    SIGKILLed holding a lease: the other delivers whatever was not acknowledged."""
    from twisted.internet import reactor

    topic, group = unique(), unique("g")
    path = f"/{topic}/{group}/"
    total = 20_000
    processes = []
    urls = []
    try:
        for name in ("a", "b"):
            port = free_port()
            config = write_config(tmp_path / f"{name}.conf.py", broker.address, TOPIC_PARTITIONS=4)
            processes.append(
                spawn(
                    ["flasfka-serve", "--config", str(config), "-p", str(port)],
                    tmp_path / f"{name}.log",
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            await wait_ready(url, process)
        await post_messages(urls[0], f"/{topic}/k0/", ["m0"])  # creates it with 4 partitions
        await produce_direct(
            broker.address,
            topic,
            [(f"k{i % 16}".encode(), f"m{i}".encode()) for i in range(1, total)],
        )
        delivered: list[list[str]] = [[], []]
        deadline = reactor.seconds() + 150
        killed = False

        async def worker(index: int) -> None:
            nonlocal killed
            url = urls[index]
            while reactor.seconds() < deadline:
                if len(set(delivered[0]) | set(delivered[1])) >= total:
                    return
                status, body, _ = await get(url, f"{path}?ack=explicit&limit=500&lease=10")
                assert status == 200, body
                delivered[index].extend(body["messages"])
                if index == 1 and len(delivered[1]) >= 1000:
                    processes[1].kill()  # holding this lease, not acknowledged
                    killed = True
                    return
                if body["messages"]:
                    code, text = await ack(url, path, body["cursor"])
                    assert code == 204, text
                else:
                    await sleep(0.1)

        await defer.gatherResults([defer.ensureDeferred(worker(i)) for i in (0, 1)])
        assert killed, f"the second process got only {len(delivered[1])} messages"
        seen = Counter(delivered[0] + delivered[1])
        assert set(seen) == {f"m{i}" for i in range(total)}
        duplicates = sum(n - 1 for n in seen.values())
        print(
            f"\n20,000 messages, one of two processes SIGKILLed: first delivered "
            f"{len(delivered[0])}, killed one {len(delivered[1])}, duplicates {duplicates}"
        )
        assert duplicates >= 1  # the killed process's last lease was delivered again
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
            await wait_exit(process, 15)


@pytest_twisted.ensureDeferred
async def test_acks_are_consume_operations_under_the_acl(make_server):
    from flasfka.security.hashing import hash_password

    users = {"worker": hash_password("worker-Pw-1"), "other": hash_password("other-Pw-2")}
    acl = [
        {
            "principal": "worker",
            "topics": "*",
            "groups": "jobs",
            "allow": ["produce", "consume", "create"],
        },
        {"principal": "other", "topics": "*", "groups": "else", "allow": ["consume"]},
    ]
    running = await make_server(USERS=users, ACL=acl, AUTH_MAX_FAILURES=10**6)
    topic = unique()

    def auth(user: str, password: str) -> dict[bytes, list[bytes]]:
        token = base64.b64encode(f"{user}:{password}".encode())
        return {b"Authorization": [b"Basic " + token]}

    worker = auth("worker", "worker-Pw-1")
    response = await treq.post(
        f"{running.url}/{topic}/", data=b'{"messages": ["job"]}', headers=worker
    )
    assert response.code == 204
    response = await treq.get(f"{running.url}/{topic}/jobs/?ack=explicit", headers=worker)
    body = json.loads(await response.content())
    assert response.code == 200 and body["messages"] == ["job"]
    sent = json.dumps({"cursor": body["cursor"]}).encode()
    denied = await treq.post(
        f"{running.url}/{topic}/jobs/ack", data=sent, headers=auth("other", "other-Pw-2")
    )
    assert denied.code == 403
    anonymous = await treq.post(f"{running.url}/{topic}/jobs/ack", data=sent)
    assert anonymous.code == 401
    allowed = await treq.post(f"{running.url}/{topic}/jobs/ack", data=sent, headers=worker)
    assert allowed.code == 204
