"""The seed's HTTP API, end to end: real HTTP, real Tansu."""

from __future__ import annotations

import pytest_twisted
import treq

from flasfka import __version__
from tests.support.helpers import collect, get, post, post_messages, read_topic
from tests.support.servers import unique


@pytest_twisted.ensureDeferred
async def test_send_then_fetch_on_the_default_group(server):
    topic = unique()
    await post_messages(server.url, f"/{topic}/", ["msg1", "msg2"])
    status, body, response = await get(server.url, f"/{topic}/")
    assert status == 200
    assert body == {"group": "flasfka", "messages": ["msg1", "msg2"]}
    assert response.headers.getRawHeaders("Content-Type") == ["application/json"]
    # The messages were committed: the default group does not get them again.
    status, body, _ = await get(server.url, f"/{topic}/")
    assert (status, body["messages"]) == (200, [])


@pytest_twisted.ensureDeferred
async def test_named_group(server):
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["hello"])
    status, body, _ = await get(server.url, f"/{topic}/{group}/")
    assert status == 200
    assert body == {"group": group, "messages": ["hello"]}


@pytest_twisted.ensureDeferred
async def test_two_groups_each_get_the_message_and_one_group_gets_it_once(server):
    topic, first, second = unique(), unique("g"), unique("g")
    await post_messages(server.url, f"/{topic}/", ["only"])
    assert (await get(server.url, f"/{topic}/{first}/"))[1]["messages"] == ["only"]
    assert (await get(server.url, f"/{topic}/{second}/"))[1]["messages"] == ["only"]
    assert (await get(server.url, f"/{topic}/{first}/"))[1]["messages"] == []
    assert (await get(server.url, f"/{topic}/{second}/"))[1]["messages"] == []


@pytest_twisted.ensureDeferred
async def test_limit_caps_each_response_and_every_message_arrives_exactly_once(server):
    topic, group = unique(), unique("g")
    sent = [f"message {i}" for i in range(400)]
    await post_messages(server.url, f"/{topic}/", sent, per_post=100)
    received = await collect(server.url, f"/{topic}/{group}/", 400, limit=30)
    assert sorted(received) == sorted(sent)
    assert len(received) == len(set(received)) == 400
    status, body, _ = await get(server.url, f"/{topic}/{group}/?limit=30")
    assert (status, body["messages"]) == (200, [])


@pytest_twisted.ensureDeferred
async def test_default_limit_is_consumer_limit(make_server):
    running = await make_server(CONSUMER_LIMIT=7)
    topic = unique()
    await post_messages(running.url, f"/{topic}/", [str(i) for i in range(10)])
    status, body, _ = await get(running.url, f"/{topic}/")
    assert status == 200
    assert len(body["messages"]) == 7
    assert len((await get(running.url, f"/{topic}/"))[1]["messages"]) == 3


@pytest_twisted.ensureDeferred
async def test_keyed_post_writes_the_key_and_keeps_order(server, broker):
    topic = unique()
    sent = [f"{i}" for i in range(50)]
    await post_messages(server.url, f"/{topic}/my-key/", sent, per_post=10)
    records = await read_topic(broker.address, topic)
    assert records == [(b"my-key", m.encode()) for m in sent]
    # One key is one partition: a GET returns them in the order they were sent.
    received = await collect(server.url, f"/{topic}/", 50, limit=50)
    assert received == sent


@pytest_twisted.ensureDeferred
async def test_key_segment_is_percent_decoded_utf8(server, broker):
    topic = unique()
    await post_messages(server.url, f"/{topic}/cl%C3%A9%20a%2Fb/", ["v"])
    assert await read_topic(broker.address, topic) == [("clé a/b".encode(), b"v")]


@pytest_twisted.ensureDeferred
async def test_unicode_round_trips(server):
    topic = unique()
    sent = ["héllo wörld", "日本語", "emoji 😀🎉", "", 'quote " back\\slash', "tab\tnew\nline"]
    sent.append("\u0000 nul")
    await post_messages(server.url, f"/{topic}/k/", sent)
    assert await collect(server.url, f"/{topic}/", len(sent), limit=100) == sent


@pytest_twisted.ensureDeferred
async def test_empty_message_list_is_a_no_op(server, broker):
    topic = unique()
    response = await post(server.url, f"/{topic}/", {"messages": []})
    assert response.code == 204


@pytest_twisted.ensureDeferred
async def test_topic_without_slash_redirects(server):
    topic = unique()
    response = await post(server.url, f"/{topic}", {"messages": []}, allow_redirects=False)
    assert response.code in (301, 308)
    assert response.headers.getRawHeaders("Location")[0].endswith(f"/{topic}/")


@pytest_twisted.ensureDeferred
async def test_redirect_keeps_the_query_and_the_host_the_client_used(server):
    """Following the redirect of /{topic}/{group}?ack=explicit must not make it a plain
    (committing) GET; the Location names the Host sent, not the listener's port."""
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["a", "b"])
    path = f"/{topic}/{group}?limit=1&ack=explicit"
    response = await treq.get(server.url + path, allow_redirects=False)
    assert response.code == 308
    target = response.headers.getRawHeaders("Location")[0]
    assert target == f"{server.url}/{topic}/{group}/?limit=1&ack=explicit"
    followed = await treq.get(server.url + path)  # treq follows the 308
    body = await followed.json()
    assert (followed.code, body["messages"]) == (200, ["a"]) and body["cursor"], body
    proxied = await treq.get(
        server.url + f"/{topic}", headers={"Host": "[::1]:8443"}, allow_redirects=False
    )
    assert proxied.headers.getRawHeaders("Location") == [f"http://[::1]:8443/{topic}/"]
    odd = await treq.get(server.url + f"/{topic}", headers={"Host": "a b"}, allow_redirects=False)
    assert odd.headers.getRawHeaders("Location") == [f"/{topic}/"]  # not a URL: the path


@pytest_twisted.ensureDeferred
async def test_an_encoded_slash_is_never_a_segment_boundary(server, broker):
    """%2F in the topic segment is an invalid topic name (not topic and key); in a key it
    stays in the key, doubled slashes included."""
    topic = unique()
    response = await post(server.url, f"/{topic}%2Fk/", {"messages": ["x"]})
    body = await response.json()
    assert response.code == 400 and f"invalid topic name '{topic}/k'" in body["error"], body
    response = await post(server.url, "/%2F/", {"messages": ["x"]})
    assert response.code == 400
    assert (await post(server.url, f"/{topic}/a%2F%2Fb/", {"messages": ["y"]})).code == 204
    assert await read_topic(broker.address, topic) == [(b"a//b", b"y")]


@pytest_twisted.ensureDeferred
async def test_every_response_carries_the_version(server):
    topic = unique()
    for method, path, body in [
        ("POST", f"/{topic}/", b'{"messages": ["x"]}'),
        ("POST", f"/{topic}/", b"not json"),
        ("GET", f"/{topic}/?limit=0", None),
        ("GET", "/", None),
        ("GET", "/a/b/c/d", None),
        ("DELETE", f"/{topic}/", None),
    ]:
        import treq

        response = await treq.request(method, server.url + path, data=body)
        await response.content()
        assert response.headers.getRawHeaders("X-Flasfka-Version") == [__version__], path


@pytest_twisted.ensureDeferred
async def test_values_written_by_other_clients_are_returned_losslessly(server, broker):
    from tests.support.helpers import produce_direct

    topic = unique()
    await produce_direct(
        broker.address, topic, [(b"k", b"\xff\xfe binary"), (b"k", None), (b"k", "ok é".encode())]
    )
    messages = await collect(server.url, f"/{topic}/", 3, limit=10)
    assert messages == [{"base64": "//4gYmluYXJ5"}, None, "ok é"]


@pytest_twisted.ensureDeferred
async def test_one_unkeyed_post_is_read_back_in_order(server, broker):
    topic = unique()
    sent = [f"m{i}" for i in range(200)]
    await post_messages(server.url, f"/{topic}/", sent)
    assert await collect(server.url, f"/{topic}/", 200, limit=1000) == sent


@pytest_twisted.ensureDeferred
async def test_one_group_on_two_topics_does_not_hang(server):
    """GET /t1/ then GET /t2/ on one group (FINDINGS: a member nobody polls blocks joins).

    A blocked join makes the second GET return [] after CONSUMER_JOIN_TIMEOUT.
    """
    group, first, second = unique("g"), unique(), unique()
    await post_messages(server.url, f"/{first}/", ["one"])
    await post_messages(server.url, f"/{second}/", ["two"])
    assert (await get(server.url, f"/{first}/{group}/"))[1]["messages"] == ["one"]
    assert (await get(server.url, f"/{second}/{group}/"))[1]["messages"] == ["two"]
    # The first member kept serving its topic through the second one's join.
    await post_messages(server.url, f"/{first}/", ["again"])
    assert await collect(server.url, f"/{first}/{group}/", 1, timeout=20) == ["again"]
