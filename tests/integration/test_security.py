"""Security over real HTTP and real Tansu: Basic, bearer tokens, client certificates, ACLs,
throttling, CORS; denied requests write and commit nothing; no secret reaches a log line.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter

import pytest_twisted
import treq
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import ssl, threads
from twisted.web.client import Agent, ResponseNeverReceived
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from flasfka.app.broker import free_port
from flasfka.app.logs import event_as_json_line
from flasfka.security.hashing import hash_password, hash_token, new_token
from tests.support.certs import TestCA
from tests.support.helpers import produce_direct, read_topic, sleep
from tests.support.ops import captured_logs
from tests.support.rawhttp import exchange, status_of
from tests.support.servers import start_server, test_config, unique

PASSWORDS = {"alice": "alice-Pw-7c1e9", "bob": "bob-Pw-40d2a", "carol": "carol-Pw-93be1"}
USERS = {name: hash_password(password) for name, password in PASSWORDS.items()}
TOKEN = new_token()
TOKENS = {"svc": hash_token(TOKEN)}
ACL = [
    {"principal": "alice", "topics": "sec-*", "allow": ["produce", "create"]},
    {"principal": "bob", "topics": "sec-*", "groups": "bob-*", "allow": ["consume"]},
    {"principal": "bob", "topics": "sec-*", "groups": "flasfka", "allow": ["consume"]},
    {"principal": "svc", "topics": "*", "allow": ["produce", "consume", "create"]},
    {"principal": "certclient", "topics": "*", "allow": ["produce", "consume", "create"]},
]
SECURE = {"USERS": USERS, "TOKENS": TOKENS, "ACL": ACL, "AUTH_MAX_FAILURES": 10**6}


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


CREDENTIALS = {
    "none": None,
    "wrong-password": basic("alice", "not-alice-pw"),
    "unknown-user": basic("mallory", "mallory-Pw-1"),
    "no-right": basic("carol", PASSWORDS["carol"]),
    "alice": basic("alice", PASSWORDS["alice"]),
    "bob": basic("bob", PASSWORDS["bob"]),
    "token": b"Bearer " + TOKEN.encode(),
}
SECRETS = [
    *PASSWORDS.values(),
    "not-alice-pw",
    "mallory-Pw-1",
    TOKEN,
    *USERS.values(),
    *TOKENS.values(),
    *(c.decode().split(" ", 1)[1] for c in CREDENTIALS.values() if c),
]


async def call(url, method, path, auth=None, body=None, headers=None, client=treq):
    """(status, body, response) of one request with an optional Authorization header."""
    sent = dict(headers or {})
    if auth is not None:
        sent[b"Authorization"] = [auth]
    response = await client.request(method, url + path, data=body, headers=sent)
    return response.code, await response.content(), response


async def wait_ready(url, client=treq):
    deadline = time.monotonic() + 15
    while True:
        status, body, _ = await call(url, "GET", "/readyz", client=client)
        if status == 200:
            return
        assert time.monotonic() < deadline, body
        await sleep(0.2)


def _topics(address):
    admin = AdminClient({"bootstrap.servers": address})
    return set(admin.list_topics(timeout=10).topics)


def _routes(topic, case):
    """(name, method, path, body) of every route, the topic ones on topic."""
    produce = json.dumps({"messages": [f"{case}-p"]}).encode()
    keyed = json.dumps({"messages": [f"{case}-pk"]}).encode()
    return [
        ("produce", "POST", f"/{topic}/", produce),
        ("produce_keyed", "POST", f"/{topic}/k/", keyed),
        ("fetch", "GET", f"/{topic}/", None),
        ("fetch_group", "GET", f"/{topic}/bob-g/", None),
        ("index", "GET", "/", None),
        ("openapi", "GET", "/openapi.json", None),
        ("metrics", "GET", "/metrics", None),
        ("healthz", "GET", "/healthz", None),
        ("readyz", "GET", "/readyz", None),
    ]


_RIGHT = {"produce": "alice", "produce_keyed": "alice", "fetch": "bob", "fetch_group": "bob"}
_OK = {"produce": 204, "produce_keyed": 204}


def expected(case, route):
    """The status a route must answer to a credential case."""
    if route in ("healthz", "readyz"):
        return 200
    if case in ("none", "wrong-password", "unknown-user"):
        return 401
    if route not in _RIGHT:
        return 200  # ops: any authenticated principal
    if case == "token" or _RIGHT[route] == case:
        return _OK.get(route, 200)
    return 403


@pytest_twisted.ensureDeferred
async def test_every_route_under_every_credential_and_denied_requests_leave_kafka_untouched(
    broker,
):
    running = await start_server(test_config(broker.address, **SECURE))
    topic = unique("sec")
    await produce_direct(broker.address, topic, [(None, b"seed-1"), (None, b"seed-2")])
    try:
        await wait_ready(running.url)
        order = ["none", "wrong-password", "unknown-user", "no-right", "alice", "bob", "token"]
        seen = {}
        with captured_logs() as events:
            for case in order:
                for route, method, path, body in _routes(topic, case):
                    status, answer, response = await call(
                        running.url, method, path, CREDENTIALS[case], body
                    )
                    seen[(case, route)] = status
                    assert status == expected(case, route), (case, route, status, answer)
                    if status == 401:
                        challenges = response.headers.getRawHeaders("WWW-Authenticate")
                        assert [c.split()[0] for c in challenges] == ["Basic", "Bearer"]
                        assert json.loads(answer)["status"] == 401
                        assert b"mallory" not in answer and b"alice" not in answer
                    if status == 403:
                        error = json.loads(answer)["error"]
                        assert topic in error and ("produce" in error or "consume" in error)
                    if case == "bob" and route == "fetch_group":
                        # Nothing was taken or committed by the denied GETs before.
                        messages = json.loads(answer)["messages"]
                        assert {"seed-1", "seed-2"} <= set(messages), messages
                if case == "no-right":
                    assert len(running.gateway.consumers) == 0  # no GET got a consumer
            await sleep(0.1)
        assert len(seen) == len(order) * 9
        written = sorted(v.decode() for _, v in await read_topic(broker.address, topic))
        assert written == sorted(["seed-1", "seed-2", "alice-p", "alice-pk", "token-p", "token-pk"])
        lines = [event_as_json_line(event) for event in events]
        for line in lines:
            for secret in SECRETS:
                assert secret not in line, (secret, line)
        access = [json.loads(line) for line in lines if '"flasfka.access"' in line]
        assert len(access) == len(seen)
        principals = {a["principal"] for a in access}
        assert principals == {None, "carol", "alice", "bob", "svc"}
        assert any("principal=alice" in a["message"] for a in access)
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_topic_creation_needs_create_and_a_403_never_says_whether_a_topic_exists(broker):
    running = await start_server(test_config(broker.address, **SECURE))
    existing, missing, created = unique("sec"), unique("sec"), unique("sec")
    await produce_direct(broker.address, existing, [(None, b"x")])
    try:
        carol = CREDENTIALS["no-right"]
        answers = []
        for topic in (existing, missing):
            status, body, _ = await call(
                running.url, "POST", f"/{topic}/", carol, b'{"messages": ["c"]}'
            )
            assert status == 403
            answers.append(body.replace(topic.encode(), b"T"))
        assert answers[0] == answers[1]  # the same words for an existing and a missing topic
        # bob may consume sec-* but not create: a missing topic is 403, and stays missing.
        status, body, _ = await call(running.url, "GET", f"/{missing}/bob-g/", CREDENTIALS["bob"])
        assert status == 403 and "create" in json.loads(body)["error"], body
        # alice may create.
        status, body, _ = await call(
            running.url, "POST", f"/{created}/", CREDENTIALS["alice"], b'{"messages": ["a"]}'
        )
        assert status == 204, body
        topics = await threads.deferToThread(_topics, broker.address)
        assert created in topics and missing not in topics
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_repeated_failures_from_one_address_get_429_and_known_credentials_still_work(
    broker,
):
    running = await start_server(test_config(broker.address, **{**SECURE, "AUTH_MAX_FAILURES": 3}))
    try:
        status, _, _ = await call(running.url, "GET", "/", CREDENTIALS["alice"])
        assert status == 200  # verified once: remembered
        for _ in range(3):
            status, _, _ = await call(running.url, "GET", "/", CREDENTIALS["wrong-password"])
            assert status == 401
        status, body, response = await call(running.url, "GET", "/", CREDENTIALS["unknown-user"])
        assert status == 429, body
        assert response.phrase == b"Too Many Requests"  # twisted.web has no phrase for it
        assert 1 <= int(response.headers.getRawHeaders("Retry-After")[0]) <= 60
        status, _, _ = await call(running.url, "GET", "/", CREDENTIALS["token"])
        assert status == 429  # not verified before: refused unread while throttled
        status, _, _ = await call(running.url, "GET", "/", CREDENTIALS["alice"])
        assert status == 200
        status, _, _ = await call(running.url, "GET", "/healthz")
        assert status == 200
    finally:
        await running.stop()


@implementer(IPolicyForHTTPS)
class _ClientTLS:
    def __init__(self, trust, client_cert):
        self._trust, self._client_cert = trust, client_cert

    def creatorForNetloc(self, hostname, port):  # noqa: N802 (Twisted's name)
        return ssl.optionsForClientTLS(
            hostname.decode(), trustRoot=self._trust, clientCertificate=self._client_cert
        )


def _client(reactor, ca, key_path=None, cert_path=None):
    trust = ssl.Certificate.loadPEM(ca.path.read_bytes())
    own = None
    if cert_path is not None:
        own = ssl.PrivateCertificate.loadPEM(cert_path.read_bytes() + key_path.read_bytes())
    return treq.client.HTTPClient(Agent(reactor, contextFactory=_ClientTLS(trust, own)))


@pytest_twisted.ensureDeferred
async def test_client_certificate_subject_is_the_principal_over_tls(broker, tmp_path):
    from twisted.internet import reactor

    ca = TestCA(tmp_path)
    server_key, server_cert = ca.issue("localhost", server=True)
    port = free_port()
    endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={server_key}:certKey={server_cert}"
    config = test_config(broker.address, ACL=ACL, TLS_CLIENT_CA=str(ca.path))
    running = await start_server(config, endpoint=endpoint, scheme="https")
    url = f"https://localhost:{port}"
    good = _client(reactor, ca, *ca.issue("certclient"))
    stranger = _client(reactor, ca, *ca.issue("stranger"))
    topic = unique("sec")
    try:
        await wait_ready(url, good)
        status, body, _ = await call(
            url, "POST", f"/{topic}/", None, b'{"messages": ["m"]}', client=good
        )
        assert status == 204, body
        status, body, _ = await call(url, "GET", f"/{topic}/g/", client=good)
        assert status == 200 and json.loads(body)["messages"] == ["m"]
        for method, path, payload in [
            ("POST", f"/{topic}/", b'{"messages": ["no"]}'),
            ("POST", f"/{topic}/k/", b'{"messages": ["no"]}'),
            ("GET", f"/{topic}/", None),
            ("GET", f"/{topic}/g2/", None),
        ]:
            status, body, _ = await call(url, method, path, None, payload, client=stranger)
            assert status == 403, (path, body)
        status, _, _ = await call(url, "GET", "/metrics", client=stranger)
        assert status == 200  # authenticated: ops routes need no ACL right
        # A wrong Basic header on top of a certificate is not ignored.
        status, _, _ = await call(url, "GET", "/", basic("x", "y"), client=good)
        assert status == 401
        anonymous = _client(reactor, ca)
        try:
            await call(url, "GET", "/healthz", client=anonymous)
        except ResponseNeverReceived:
            pass  # the handshake fails without a client certificate
        else:
            raise AssertionError("a client without a certificate was served")
        assert [v for _, v in await read_topic(broker.address, topic)] == [b"m"]
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_cors_preflight_and_simple_requests_for_allowed_and_other_origins(broker, server):
    allowed, other = "https://app.example", "https://evil.example"
    running = await start_server(test_config(broker.address, **SECURE, CORS_ORIGINS=[allowed]))
    topic = unique("sec")
    try:
        preflight = {
            b"Origin": [allowed.encode()],
            b"Access-Control-Request-Method": [b"POST"],
            b"Access-Control-Request-Headers": [b"authorization, content-type"],
        }
        status, body, response = await call(running.url, "OPTIONS", f"/{topic}/", headers=preflight)
        assert status == 204 and body == b""
        h = response.headers
        assert h.getRawHeaders("Access-Control-Allow-Origin") == [allowed]
        assert "POST" in h.getRawHeaders("Access-Control-Allow-Methods")[0]
        allowed_headers = h.getRawHeaders("Access-Control-Allow-Headers")[0]
        for name in ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "Prefer"):
            assert name in allowed_headers
        status, _, response = await call(
            running.url, "OPTIONS", f"/{topic}/", headers={**preflight, b"Origin": [other.encode()]}
        )
        assert status == 204
        assert not [
            k for k, _ in response.headers.getAllRawHeaders() if k.startswith(b"Access-Control")
        ]
        # Simple requests: the allowed origin may read the answer (a 401 too), the other not.
        for auth, want in ((CREDENTIALS["alice"], 200), (None, 401)):
            status, _, response = await call(
                running.url, "GET", "/", auth, headers={b"Origin": [allowed.encode()]}
            )
            assert status == want
            assert response.headers.getRawHeaders("Access-Control-Allow-Origin") == [allowed]
            exposed = response.headers.getRawHeaders("Access-Control-Expose-Headers")[0]
            assert "X-Flasfka-Version" in exposed and "Retry-After" in exposed
        status, _, response = await call(
            running.url, "GET", "/", CREDENTIALS["alice"], headers={b"Origin": [other.encode()]}
        )
        assert status == 200
        assert not [
            k for k, _ in response.headers.getAllRawHeaders() if k.startswith(b"Access-Control")
        ]
        # Off by default: the shared server (no CORS_ORIGINS, no USERS) adds nothing.
        status, _, response = await call(server.url, "OPTIONS", f"/{topic}/", headers=preflight)
        assert status == 204
        assert not [
            k for k, _ in response.headers.getAllRawHeaders() if k.startswith(b"Access-Control")
        ]
    finally:
        await running.stop()


_b64 = st.binary(max_size=60).map(base64.b64encode)
_authorization = st.one_of(
    st.binary(max_size=80),
    st.tuples(
        st.sampled_from([b"Basic", b"basic", b"BASIC", b"Bearer", b"bearer", b"Digest", b"", b"B"]),
        st.sampled_from([b" ", b"  ", b"\t", b""]),
        st.one_of(
            _b64,
            st.binary(max_size=60),
            st.text(max_size=30).map(lambda t: base64.b64encode(f"alice:{t}".encode())),
            st.text(max_size=30).map(lambda t: base64.b64encode(f"{t}:{t}".encode())),
            st.sampled_from(
                [
                    b"=",
                    b"====",
                    base64.b64encode(b":"),
                    base64.b64encode(b"alice"),
                    base64.b64encode(b"alice:" + PASSWORDS["alice"].encode())[:-2],
                    base64.b64encode(b"\xff\xfe:\x00"),
                    TOKEN[:-1].encode(),
                    (TOKEN + "A").encode(),
                    hash_token(TOKEN).encode(),
                    USERS["alice"].encode(),
                ]
            ),
            st.integers(1000, 20000).map(lambda n: b"A" * n),
        ),
    ).map(b"".join),
).filter(lambda value: b"\r" not in value and b"\n" not in value)
_targets = st.sampled_from(
    [
        (b"POST", b"/sec-battery/", b'{"messages": ["never"]}'),
        (b"POST", b"/sec-battery/k/", b'{"messages": ["never"]}'),
        (b"GET", b"/sec-battery/bob-g/", b""),
        (b"GET", b"/", b""),
        (b"GET", b"/metrics", b""),
        (b"GET", b"/openapi.json", b""),
    ]
)


def _raw(method, path, body, authorization):
    return (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: battery\r\nAuthorization: "
        + authorization
        + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


def auth_battery(url, examples):
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(_targets, _authorization)
    def one(target, authorization):
        method, path, body = target
        response = exchange(url, _raw(method, path, body, authorization), 10.0)
        status = status_of(response)
        assert 400 <= status < 500, (authorization[:100], response[:300])
        statuses[status] += 1

    one()
    # The same requests with valid credentials do get through (the battery can see a 2xx).
    good = basic("svc", "x")  # not a user: 401
    assert status_of(exchange(url, _raw(b"GET", b"/", b"", good))) == 401
    token = b"Bearer " + TOKEN.encode()
    assert status_of(exchange(url, _raw(b"GET", b"/", b"", token))) == 200
    return statuses


@pytest_twisted.ensureDeferred
async def test_generated_authorization_headers_never_get_a_5xx_or_a_2xx(broker):
    running = await start_server(test_config(broker.address, **SECURE))
    try:
        statuses = await threads.deferToThread(auth_battery, running.url, 200)
        assert 401 in statuses, statuses
        assert await read_topic(broker.address, "sec-battery", timeout=2) == []
    finally:
        await running.stop()
