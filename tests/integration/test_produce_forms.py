"""The produce forms end to end on Tansu: record objects, partitions, octet-stream, NDJSON and
offsets, each read back with a direct confluent-kafka consumer."""

from __future__ import annotations

import base64
import json
import os

import pytest_twisted
import treq

from tests.support.helpers import post, read_topic
from tests.support.records import read_records
from tests.support.servers import unique

REPRESENTATION = {"Prefer": ["return=representation"]}


def b64(raw: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(raw).decode()}


async def answer(response) -> tuple[int, object]:
    body = await response.content()
    return response.code, json.loads(body) if body else None


@pytest_twisted.ensureDeferred
async def test_every_field_of_a_record_object_arrives_as_sent(make_server, broker):
    running = await make_server(TOPIC_PARTITIONS=4)
    topic = unique()
    key = bytes([0, 255, 1, 128])
    headers = [
        {"key": "h", "value": "one"},
        {"key": "h", "value": None},
        {"key": "bin", "value": b64(b"\x00\xfe")},
        {"key": "h", "value": "three"},
    ]
    body = {
        "messages": [
            {
                "value": "first",
                "key": b64(key),
                "headers": headers,
                "partition": 3,
                "timestamp": 1_700_000_000_123,
            },
            {"value": None, "key": "text key", "partition": 1},
            {"value": b64(b"\xff\x00binary"), "partition": 1, "timestamp": 1_600_000_000_000},
        ]
    }
    status, content = await answer(await post(running.url, f"/{topic}/", body))
    assert status == 204, content
    stored = await read_records(broker.address, topic)
    assert [(s.partition, s.key, s.value) for s in stored] == [
        (1, b"text key", None),
        (1, None, b"\xff\x00binary"),
        (3, key, b"first"),
    ]
    first = stored[2]
    assert first.timestamp == 1_700_000_000_123
    assert first.headers == [("h", b"one"), ("h", None), ("bin", b"\x00\xfe"), ("h", b"three")]
    assert stored[1].timestamp == 1_600_000_000_000
    assert not stored[0].headers


@pytest_twisted.ensureDeferred
async def test_a_mixed_body_across_four_partitions(make_server, broker):
    running = await make_server(TOPIC_PARTITIONS=4)
    topic = unique()
    messages: list[object] = []
    for index in range(200):
        if index % 3 == 0:
            messages.append(f"s{index}")  # the POST's own partition, no key
        elif index % 3 == 1:
            messages.append({"value": f"p{index}", "partition": index % 4})
        else:
            messages.append({"value": f"k{index}", "key": f"key{index % 7}"})
    status, content = await answer(await post(running.url, f"/{topic}/", {"messages": messages}))
    assert status == 204, content
    stored = await read_records(broker.address, topic)
    assert len(stored) == len(messages)
    assert len({s.partition for s in stored}) == 4
    # Each partition holds its messages in the body's order.
    order = {(m if isinstance(m, str) else m["value"]): i for i, m in enumerate(messages)}
    for partition in range(4):
        values = [s.value.decode() for s in stored if s.partition == partition]
        assert values == sorted(values, key=order.__getitem__)
    explicit = {s.value.decode(): s.partition for s in stored if s.value.startswith(b"p")}
    assert all(explicit[f"p{i}"] == i % 4 for i in range(1, 200, 3))
    by_key: dict[bytes, set[int]] = {}
    for s in stored:
        if s.key is not None:
            by_key.setdefault(s.key, set()).add(s.partition)
    assert all(len(partitions) == 1 for partitions in by_key.values())
    assert len({s.partition for s in stored if s.value.startswith(b"s")}) == 1


@pytest_twisted.ensureDeferred
async def test_bad_record_objects_get_400_and_nothing_is_sent(make_server, broker):
    running = await make_server(TOPIC_PARTITIONS=4)
    topic = unique()
    cases = [
        ({"value": "x", "partition": 4}, 'message 2 "partition": partition 4 does not exist'),
        ({"value": "x", "colour": "red"}, 'message 2: unknown field "colour"'),
        ({"value": {"base64": "%%%"}}, 'message 2 "value": "base64" is not valid base64'),
        ({"value": "x", "headers": [["h", "v"]]}, 'message 2 "headers"[0] must be'),
        ({"value": "x", "headers": [{"key": "h"}]}, 'message 2 "headers"[0] must be'),
    ]
    for bad, says in cases:
        body = {"messages": ["ok", {"value": "ok too", "partition": 0}, bad, "after"]}
        status, content = await answer(await post(running.url, f"/{topic}/", body))
        assert status == 400, (bad, content)
        assert says in content["error"], (says, content)
    status, content = await answer(
        await post(running.url, f"/{topic}/pathkey/", {"messages": [{"value": "v", "key": "k"}]})
    )
    assert status == 400 and 'message 0: "key" is given both in the path' in content["error"]
    assert await read_topic(broker.address, topic) == []


@pytest_twisted.ensureDeferred
async def test_octet_stream_round_trips_a_mebibyte_byte_for_byte(make_server, broker):
    running = await make_server(PRODUCER_CONFIG={"message.max.bytes": 4 * 1024 * 1024})
    topic = unique()
    raw = os.urandom(1024 * 1024)
    response = await treq.post(
        f"{running.url}/{topic}/bin-key/",
        data=raw,
        headers={"Content-Type": ["application/octet-stream"]},
    )
    status, content = await answer(response)
    assert status == 204, content
    stored = await read_records(broker.address, topic)
    assert len(stored) == 1
    assert stored[0].key == b"bin-key"
    assert stored[0].value == raw


@pytest_twisted.ensureDeferred
async def test_ndjson_of_100000_lines_arrives_in_order(make_server, broker):
    running = await make_server(
        PRODUCER_CONFIG={"queue.buffering.max.messages": 400_000}, PRODUCE_TIMEOUT=30.0
    )
    topic = unique()
    lines = [
        json.dumps(f"line {n}") if n % 2 else json.dumps({"value": f"line {n}"})
        for n in range(1, 100_001)
    ]
    body = ("\n".join(lines) + "\n").encode()
    ndjson = {"Content-Type": ["application/x-ndjson"]}
    # A bad line 50,000: 400 naming it, nothing sent.
    bad = lines.copy()
    bad[49_999] = '{"value": "x", "oops": true}'
    response = await treq.post(
        f"{running.url}/{topic}/", data="\n".join(bad).encode(), headers=ndjson
    )
    status, content = await answer(response)
    assert status == 400 and content["error"].startswith("line 50000: "), content
    assert await read_topic(broker.address, topic) == []
    response = await treq.post(f"{running.url}/{topic}/", data=body, headers=ndjson)
    status, content = await answer(response)
    assert status == 204, content
    stored = await read_records(broker.address, topic, timeout=60.0)
    assert [s.value for s in stored] == [f"line {n}".encode() for n in range(1, 100_001)]
    assert len({s.partition for s in stored}) == 1


@pytest_twisted.ensureDeferred
async def test_offsets_in_the_200_are_where_a_direct_consumer_finds_the_records(
    make_server, broker
):
    running = await make_server(TOPIC_PARTITIONS=4)
    topic = unique()
    for round_ in range(2):  # offsets past the first batch of each partition too
        messages = [
            "s-first",
            *({"value": f"r{round_}-{i}", "partition": i % 4} for i in range(30)),
            {"value": None, "key": "k"},
            {"value": "stamped", "timestamp": 1_650_000_000_000, "partition": 2},
        ]
        response = await post(
            running.url, f"/{topic}/", {"messages": messages}, headers=REPRESENTATION
        )
        status, content = await answer(response)
        assert status == 200, content
        assert response.headers.getRawHeaders("Preference-Applied") == ["return=representation"]
        offsets = content["offsets"]
        assert len(offsets) == len(messages)
        stored = {(s.partition, s.offset): s for s in await read_records(broker.address, topic)}
        for message, place in zip(messages, offsets, strict=True):
            record = stored[(place["partition"], place["offset"])]
            value = message if isinstance(message, str) else message["value"]
            assert record.value == (value.encode() if value is not None else None)
            assert record.timestamp == place["timestamp"]
        assert offsets[-1]["timestamp"] == 1_650_000_000_000
    # Seed strings with Prefer get their offsets too; without Prefer, 204 as before.
    response = await post(
        running.url, f"/{topic}/key/", {"messages": ["a", "b"]}, headers=REPRESENTATION
    )
    status, content = await answer(response)
    assert (
        status == 200
        and [o["offset"] for o in content["offsets"]][1] == content["offsets"][0]["offset"] + 1
    )
    response = await post(running.url, f"/{topic}/", {"messages": ["c"]})
    assert response.code == 204
