"""Every error case of the API: status, readable body, and the server keeps serving."""

from __future__ import annotations

import pytest
import pytest_twisted
import treq

from tests.support.helpers import get, post, post_messages
from tests.support.servers import free_port, unique

FORMAT = '{"messages": ["message1", "message2", ...]}'


async def error_of(response, status: int) -> str:
    """Assert status and a JSON error body; return the message."""
    body = await response.json()
    assert response.code == status, body
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


async def still_serving(server) -> None:
    topic = unique()
    await post_messages(server.url, f"/{topic}/", ["still alive"])


@pytest.mark.parametrize(
    "body, says",
    [
        (b"hello world", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'["msg"]', "must be a JSON object"),
        (b'"msg"', "must be a JSON object"),
        (b"{}", 'lacks "messages"'),
        (b'{"message": ["a"]}', 'lacks "messages"'),
        (b'{"messages": "a"}', '"messages" must be a list'),
        (b'{"messages": {"a": 1}}', '"messages" must be a list'),
        (b'{"messages": ["a", 1]}', "message 1 is a JSON number, not a string"),
        (b'{"messages": [null]}', "message 0 is a JSON null"),
        (b'{"messages": [["a"]]}', "message 0 is a JSON array"),
        (b'{"messages": ["\\ud800"]}', "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_bodies_get_400_naming_the_format(server, body, says):
    topic = unique()
    message = await error_of(await post(server.url, f"/{topic}/", body), 400)
    assert says in message
    assert FORMAT in message
    await still_serving(server)


@pytest.mark.parametrize(
    "topic", ["a" * 250, ".", "..", "sp%20ace", "dollar$", "%C3%A9t%C3%A9", "semi;colon"]
)
@pytest_twisted.ensureDeferred
async def test_invalid_topic_names_get_400(server, topic):
    message = await error_of(await post(server.url, f"/{topic}/", {"messages": ["x"]}), 400)
    assert "invalid topic name" in message
    message = await error_of(await treq.get(f"{server.url}/{topic}/"), 400)
    assert "invalid topic name" in message


@pytest_twisted.ensureDeferred
async def test_longest_legal_topic_name_works(server):
    topic = "x" * 237 + unique()[2:]
    assert len(topic) == 249
    await post_messages(server.url, f"/{topic}/", ["long"])


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "", "10001", "99999999999999999999999"])
@pytest_twisted.ensureDeferred
async def test_bad_limits_get_400(server, limit):
    topic = unique()
    message = await error_of(await treq.get(f"{server.url}/{topic}/?limit={limit}"), 400)
    assert "invalid limit" in message
    assert "10000" in message


@pytest_twisted.ensureDeferred
async def test_body_over_the_limit_gets_413(make_server):
    running = await make_server(MAX_BODY_SIZE=1000)
    topic = unique()
    body = {"messages": ["x" * 2000]}
    message = await error_of(await post(running.url, f"/{topic}/", body), 413)
    assert "MAX_BODY_SIZE" in message
    await post_messages(running.url, f"/{topic}/", ["small"])


@pytest_twisted.ensureDeferred
async def test_message_over_the_broker_limit_gets_413_and_nothing_is_sent(make_server, broker):
    from tests.support.helpers import read_topic

    running = await make_server(PRODUCER_CONFIG={"message.max.bytes": 5000})
    topic = unique()
    await post_messages(running.url, f"/{topic}/", ["first"])
    response = await post(running.url, f"/{topic}/", {"messages": ["ok", "y" * 6000]})
    message = await error_of(response, 413)
    assert "message 1" in message and "message.max.bytes" in message
    assert await read_topic(broker.address, topic) == [(None, b"first")]


@pytest_twisted.ensureDeferred
async def test_post_larger_than_the_producer_queue_gets_503_and_nothing_is_sent(
    make_server, broker
):
    from tests.support.helpers import read_topic

    running = await make_server(PRODUCER_CONFIG={"queue.buffering.max.messages": 10})
    topic = unique()
    await post_messages(running.url, f"/{topic}/", ["first"])
    response = await post(running.url, f"/{topic}/", {"messages": ["x"] * 11})
    message = await error_of(response, 503)
    assert "local queue is full; nothing was queued" in message
    assert response.headers.getRawHeaders("Retry-After") == ["1"]
    # (len(producer) also counts librdkafka's unserved events, e.g. statistics: leave room)
    await post_messages(running.url, f"/{topic}/", [f"m{i}" for i in range(5)])
    stored = [value for _, value in await read_topic(broker.address, topic)]
    assert sorted(stored) == [b"first"] + [f"m{i}".encode() for i in range(5)]


@pytest_twisted.ensureDeferred
async def test_unreachable_broker_gets_503_with_retry_after(make_server):
    running = await make_server(HOSTS=[f"127.0.0.1:{free_port()}"], PRODUCE_TIMEOUT=1.0)
    topic = unique()
    response = await post(running.url, f"/{topic}/", {"messages": ["lost?"]})
    message = await error_of(response, 503)
    assert "broker" in message
    assert response.headers.getRawHeaders("Retry-After")
    status, body, _ = await get(running.url, f"/{topic}/")
    assert status == 503, body
    assert "broker" in body["error"]


@pytest_twisted.ensureDeferred
async def test_missing_topic_is_404_when_auto_create_is_off(make_server):
    running = await make_server(AUTO_CREATE_TOPICS=False)
    topic = unique()
    message = await error_of(await post(running.url, f"/{topic}/", {"messages": ["x"]}), 404)
    assert "does not exist" in message
    message = await error_of(await treq.get(f"{running.url}/{topic}/"), 404)
    assert "does not exist" in message


@pytest_twisted.ensureDeferred
async def test_unknown_routes_and_methods_are_json_client_errors(server):
    topic = unique()
    cases = [
        ("PUT", f"/{topic}/", 405),
        ("DELETE", f"/{topic}/k/", 405),
        ("POST", "/healthz", 405),
        ("GET", "/%ff/", 400),
    ]
    for method, path, status in cases:
        response = await treq.request(method, server.url + path)
        body = await response.json()
        assert response.code == status, (method, path, response.code, body)
        assert body["status"] == status and body["error"], body
        assert response.headers.getRawHeaders("Content-Type") == ["application/json"]
    response = await treq.get(f"{server.url}/{topic}", allow_redirects=False)
    assert response.code == 308
    assert response.headers.getRawHeaders("Location")[0].endswith(f"/{topic}/")
    assert (await response.json())["status"] == 308
    await still_serving(server)


@pytest_twisted.ensureDeferred
async def test_the_root_describes_the_api(server):
    response = await treq.get(server.url + "/")
    body = await response.json()
    assert response.code == 200
    assert body["links"]["openapi"] == "/openapi.json"
    spec = await (await treq.get(server.url + body["links"]["openapi"])).json()
    assert spec["openapi"].startswith("3.1")
    assert {"/{topic}/", "/{topic}/{name}/", "/healthz"} <= set(spec["paths"])


@pytest_twisted.ensureDeferred
async def test_a_group_librdkafka_cannot_take_is_400_and_the_server_lives(server):
    # A white-space group.id made confluent-kafka abort the whole process.
    topic = unique()
    for group in ("%20", "%0C", "%09%0A"):
        response = await treq.get(f"{server.url}/{topic}/{group}/")
        body = await response.json()
        assert response.code == 400, (group, body)
        assert "white space" in body["error"]
    await still_serving(server)
