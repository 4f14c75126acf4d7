"""Hostile input, generated: no client input gets a 5xx or an unreadable answer.

Requests go over raw TCP sockets from a thread (so invalid UTF-8, broken request lines and
bad Content-Length can be sent), to a server that never creates topics (AUTO_CREATE_TOPICS
off) and whose only consumer slot is taken, so no example waits for a group join.
"""

from __future__ import annotations

import base64
import json
import string
from collections import Counter
from urllib.parse import quote

import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, threads

from tests.support.helpers import get, post_messages, produce_direct, read_topic
from tests.support.rawhttp import body_of, exchange, final, status_of
from tests.support.servers import unique

#: Topics that exist (made before the battery); others get 404, never created.
TOPICS = ["battery-a", "battery-b"]
#: The one (topic, group) the battery server may hold a consumer for.
FILLER = ("battery-a", "filler")

_SEGMENT_TRICKS = [
    ".",
    "..",
    "%2e%2e",
    "%2E",
    "%2F",
    "a%2Fb",
    "%00",
    "%ff",
    "%c3%28",
    "%ed%a0%80",
    "%",
    "%zz",
    "%%",
    "a" * 249,
    "a" * 250,
    "b" * 5000,
    "%25",
    "caf%C3%A9",
    "%E2%80%AE",
    "+",
    " ",
    "~",
    "?",
    "#",
    ";x=y",
]


def _raw_segment() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(TOPICS).map(str.encode),
        st.sampled_from(_SEGMENT_TRICKS).map(str.encode),
        st.text(max_size=40).map(lambda t: quote(t, safe="").encode()),
        st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).map(
            str.encode
        ),
        st.binary(max_size=20).filter(lambda b: not set(b) & set(b" \r\n?#")),
    )


_paths = st.builds(
    lambda parts, slash: b"/" + b"/".join(parts) + (b"/" if slash else b""),
    st.lists(_raw_segment(), min_size=0, max_size=3),
    st.booleans(),
)

_limits = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
    st.sampled_from([b"", b"1.5", b"1e3", b"0x10", b" 7", b"%31", b"\xff", b"NaN", b"-0"]),
    st.binary(max_size=10).filter(lambda b: not set(b) & set(b" \r\n#&")),
)

_queries = st.one_of(
    st.just(b""),
    _limits.map(lambda v: b"?limit=" + v),
    st.lists(_limits, min_size=2, max_size=3).map(
        lambda vs: b"?" + b"&".join(b"limit=" + v for v in vs)
    ),
    st.binary(max_size=30).filter(lambda b: not set(b) & set(b" \r\n#")).map(lambda b: b"?" + b),
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

_kv = st.one_of(
    st.text(max_size=10),
    st.none(),
    st.builds(lambda b: {"base64": base64.b64encode(b).decode()}, st.binary(max_size=10)),
    st.sampled_from([{"base64": "%%"}, {"base64": 5}, {"base64": "QQ=="}, {"b64": "QQ=="}]),
    _json_values,
)
_record_headers = st.one_of(
    st.lists(st.fixed_dictionaries({"key": st.text(max_size=5), "value": _kv}), max_size=3),
    st.lists(_json_values, max_size=2),
    _json_values,
)
#: Record objects: mostly well formed, with any field of any type now and then.
_record_objects = st.fixed_dictionaries(
    {},
    optional={
        "value": _kv,
        "key": _kv,
        "headers": _record_headers,
        "partition": st.one_of(st.integers(-2, 3), st.integers(), _json_values),
        "timestamp": st.one_of(st.integers(-1, 2**64), _json_values),
        "extra": _json_values,
    },
)
_record_bodies = st.lists(st.one_of(st.text(max_size=10), _record_objects), max_size=5)
_ndjson_bodies = st.lists(
    st.one_of(
        st.text(max_size=10).map(json.dumps),
        _record_objects.map(json.dumps),
        _json_values.map(json.dumps),
        st.sampled_from(["", " ", "{", '"\\ud800"', "\xff"]),
    ),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode())

_bodies = st.one_of(
    st.binary(max_size=200),
    _record_bodies.map(lambda ms: json.dumps({"messages": ms}).encode()),
    _ndjson_bodies,
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda v: json.dumps({"messages": v}).encode(),
        st.one_of(_json_values, st.lists(_json_values, max_size=4)),
    ),
    st.lists(st.text(max_size=30), max_size=5).map(
        lambda ms: json.dumps({"messages": ms}, ensure_ascii=False).encode()
    ),
    st.sampled_from(
        [
            b'{"messages": ["\\ud800"]}',
            b'{"messages": ["\xff\xfe"]}',
            b'{"messages": ["a"], "messages": 5}',
            b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            b'{"messages": ["' + b"x" * 60000 + b'"]}',
            b'{"messages": [1e999999]}',
            b'{"messages": [' + b"9" * 5000 + b"]}",
            b"\xef\xbb\xbf{}",
            b"",
            b"null",
        ]
    ),
)

_header_names = st.text(string.ascii_letters + "-", min_size=1, max_size=20).map(str.encode)
_header_values = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
_headers = st.lists(
    st.one_of(
        st.tuples(_header_names, _header_values),
        st.tuples(
            st.sampled_from(
                [
                    b"Content-Type",
                    b"Content-Type",
                    b"Accept",
                    b"Expect",
                    b"Connection",
                    b"Host",
                    b"Prefer",
                    b"Idempotency-Key",
                ]
            ),
            st.sampled_from(
                [
                    b"application/json",
                    b"application/octet-stream",
                    b"application/x-ndjson",
                    b"Application/X-NDJSON; charset=utf-8",
                    b"return=representation",
                    b"retry-1",
                    b"text/plain; charset=latin-1",
                    b"\xff",
                    b"100-continue",
                    b"close",
                    b"",
                ]
            ),
        ),
    ),
    max_size=4,
)

_methods = st.sampled_from(
    [
        b"GET",
        b"POST",
        b"POST",
        b"PUT",
        b"DELETE",
        b"HEAD",
        b"OPTIONS",
        b"PATCH",
        b"G\xffT",
        b"POST ",
    ]
)

_content_lengths = st.one_of(
    st.just(None),  # the real length
    st.sampled_from([b"abc", b"-1", b"1e3", b"0x10", b"", b"+5", b" 5", b"5, 6"]),
)


_any_requests = st.tuples(_methods, _paths, _queries, _headers, _bodies, _content_lengths)
#: Requests that mostly reach Kafka: POSTs of (often valid) bodies to the existing topics.
_likely_posts = st.tuples(
    st.just(b"POST"),
    st.tuples(st.sampled_from(TOPICS), st.one_of(st.just(b""), _raw_segment())).map(
        lambda parts: f"/{parts[0]}/".encode() + (parts[1] + b"/" if parts[1] else b"")
    ),
    st.just(b""),
    _headers,
    st.one_of(
        st.lists(st.text(max_size=30), max_size=5).map(
            lambda ms: json.dumps({"messages": ms}, ensure_ascii=False).encode()
        ),
        _record_bodies.map(lambda ms: json.dumps({"messages": ms}).encode()),
        _ndjson_bodies,
        _bodies,
    ),
    st.just(None),
)
#: GETs on the one consumer the server holds, with any limit.
_likely_gets = st.tuples(
    st.just(b"GET"),
    st.just(f"/{FILLER[0]}/{FILLER[1]}/".encode()),
    _queries,
    _headers,
    st.just(b""),
    st.just(None),
)


def build_request(method, path, query, headers, body, content_length) -> bytes:
    """One raw HTTP/1.1 request; Content-Length is the body's unless content_length says."""
    lines = [method + b" " + path + query + b" HTTP/1.1", b"Host: battery"]
    lines += [name + b": " + value for name, value in headers if name.lower() != b"content-length"]
    if content_length is None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    else:
        lines.append(b"Content-Length: " + content_length)
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check_answer(request: bytes, response: bytes, method: bytes) -> None:
    """Not a 5xx (but a full consumer table), and an error explains itself."""
    status = status_of(response)
    assert status != 0, (request[:300], response[:300])
    body = body_of(response)
    if status >= 500:
        assert status == 503, (request[:300], response[:500])
        assert method == b"HEAD" or b"MAX_CONSUMERS" in body, (request[:300], response[:500])
    if status >= 400 and method != b"HEAD":
        assert body, (request[:300], response[:300])
        if b"application/json" in final(response).partition(b"\r\n\r\n")[0].lower():
            assert "error" in json.loads(body), response[:300]


def battery(url: str, examples: int) -> Counter[int]:
    """Run the generated requests against url (in a thread); how many got each status."""
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(_any_requests, _likely_posts, _likely_gets))
    def one(case):
        method, path, query, headers, body, content_length = case
        request = build_request(method, path, query, headers, body, content_length)
        response = exchange(url, request, 10.0)
        check_answer(request, response, method)
        statuses[status_of(response)] += 1

    one()
    return statuses


@pytest_twisted.ensureDeferred
async def test_generated_requests_never_get_a_5xx(make_server, broker):
    await produce_direct(broker.address, TOPICS[0], [(None, b"seed")])
    await produce_direct(broker.address, TOPICS[1], [(None, b"seed")])
    running = await make_server(
        AUTO_CREATE_TOPICS=False,
        MAX_CONSUMERS=1,
        CONSUMER_MAX_LIMIT=50,
        CONSUMER_LIMIT=10,
        CONSUMER_TIMEOUT=0.0,
        MAX_BODY_SIZE=64 * 1024,
        HTTP_IDLE_TIMEOUT=1.0,
    )
    status, body, _ = await get(running.url, f"/{FILLER[0]}/{FILLER[1]}/")
    assert status == 200, body
    statuses = await threads.deferToThread(battery, running.url, 500)
    assert sum(statuses.values()) >= 500
    # The battery reached every layer: HTTP parsing, routing, validation and Kafka. (Its
    # random paths meet a missing topic only by chance now that router errors are 405/308:
    # the Kafka layer's 404 is asked for once, here.)
    assert {200, 204, 400} <= set(statuses), statuses
    status, body, _ = await get(running.url, "/battery-missing-topic/")
    assert (status, body["status"]) == (404, 404), body
    # The server still serves: a POST is stored, a GET answers.
    await post_messages(running.url, f"/{TOPICS[1]}/after/", ["still here"])
    assert (b"after", b"still here") in await read_topic(broker.address, TOPICS[1])
    status, body, _ = await get(running.url, f"/{FILLER[0]}/{FILLER[1]}/")
    assert status == 200, body


_FIXED_CASES = [
    b"\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET /\xff\xfe/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /battery-a/\xff\xfe/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /battery-a/\xc3\x28/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /battery-a/%ff%fe/ HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n"
    + b'{"messages": []}',
    b"POST /battery-a/%ed%a0%80/ HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"
    + b'{"messages": ["ok"]}',
    b"GET /battery-a/%ed%a0%80/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /battery-a/%ff/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /battery-a/x/?limit=%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GARBAGE\x00\x01\x02 / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"h" * 20000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(600)) + b"\r\n",
    b"POST /battery-a/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /battery-a/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /battery-a/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST /battery-a/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3"
    b"\r\n\r\n0\r\n\r\n",
    b"POST /battery-a/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{}",
]


@pytest_twisted.ensureDeferred
async def test_broken_requests_get_a_readable_answer(make_server, broker):
    await produce_direct(broker.address, TOPICS[0], [(None, b"seed")])
    running = await make_server(AUTO_CREATE_TOPICS=False, MAX_CONSUMERS=1, HTTP_IDLE_TIMEOUT=1.5)
    answers = await defer.gatherResults(
        [threads.deferToThread(exchange, running.url, raw, 6.0) for raw in _FIXED_CASES]
    )
    for raw, answer in zip(_FIXED_CASES, answers, strict=True):
        check_answer(raw, answer, b"GET")
        assert status_of(answer) < 500 or b"MAX_CONSUMERS" in answer, (raw, answer)


@pytest_twisted.ensureDeferred
async def test_groups_and_keys_with_any_characters(server, broker):
    topic = unique()
    names = [
        "sp ace",
        "sl/ash",
        "émoji😀",
        "\u202eRTL",
        "nul\x00byte",
        "x" * 255,
        "%41",
        "q?uery",
        "tab\tnew\nline",
    ]
    await post_messages(server.url, f"/{topic}/", ["m"])
    for name in names:
        await post_messages(server.url, f"/{topic}/{quote(name, safe='')}/", [f"keyed {name}"])
    stored = await read_topic(broker.address, topic)
    assert {key for key, _ in stored} == {None} | {name.encode() for name in names}
    results = await defer.gatherResults(
        [
            defer.ensureDeferred(get(server.url, f"/{topic}/{quote(name, safe='')}/?limit=50"))
            for name in names
        ]
    )
    for name, (status, body, _) in zip(names, results, strict=True):
        assert status == 200, (name, body)
        assert body["group"] == name
        assert "m" in body["messages"], (name, body)


@pytest_twisted.ensureDeferred
async def test_an_absolute_form_request_target_is_served(server):
    """RFC 9112: a server accepts ``GET http://host/path``; it is the path and query."""
    topic, group = unique(), unique("g")
    await post_messages(server.url, f"/{topic}/", ["a", "b"])
    request = (
        f"GET http://example.com/{topic}/{group}/?limit=1 HTTP/1.1\r\n"
        "Host: example.com\r\nConnection: close\r\n\r\n"
    ).encode()
    response = final(await threads.deferToThread(exchange, server.url, request, 10.0))
    assert status_of(response) == 200, response
    assert json.loads(body_of(response)) == {"group": group, "messages": ["a"]}
