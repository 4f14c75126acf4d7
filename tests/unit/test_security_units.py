"""Security building blocks without a broker: hashes, the verified cache, ACL matching,
throttling bounds, the guard's decisions, CORS headers, config checks, the startup warning."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from flasfka.app.config import Config, ConfigError, config_from_mapping
from flasfka.http.auth import Guard, may_create, parse_basic, principal_of
from flasfka.http.cors import Cors
from flasfka.security.acl import Acl
from flasfka.security.hashing import (
    BadHash,
    check_password_hash,
    check_token_hash,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from flasfka.security.principals import Credentials, VerifiedCache
from flasfka.security.throttle import FailureThrottle
from tests.support.ops import captured_logs
from tests.support.servers import subprocess_env

HASH = hash_password("s3cret")
TOKEN = new_token()


def test_password_hash_is_salted_scrypt_and_verifies_only_its_password():
    assert HASH.startswith("scrypt$16384$8$1$")
    assert hash_password("s3cret") != HASH  # a fresh salt each time
    assert verify_password(b"s3cret", HASH)
    assert not verify_password(b"s3cret ", HASH)
    assert not verify_password(b"", HASH)
    check_password_hash(HASH)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "s3cret",
        "scrypt$16384$8$1$salt",
        "scrypt$16383$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
        "scrypt$16384$8$1$!!!$aGFzaGhhc2hoYXNoaGFzaA==",
        "scrypt$1048576$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
        "bcrypt$16384$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
    ],
)
def test_malformed_password_hashes_are_refused(bad):
    with pytest.raises(BadHash):
        check_password_hash(bad)


def test_tokens_are_random_and_hashed_with_sha256():
    assert len(base64.urlsafe_b64decode(TOKEN + "=")) == 32
    assert new_token() != TOKEN
    check_token_hash(hash_token(TOKEN))
    for bad in ("", TOKEN, "sha256$xyz", "sha256$" + "g" * 64):
        with pytest.raises(BadHash):
            check_token_hash(bad)
    credentials = Credentials({}, {"svc": hash_token(TOKEN), "other": hash_token("x")})
    assert credentials.token_principal(TOKEN.encode()) == "svc"
    assert credentials.token_principal(b"x") == "other"
    assert credentials.token_principal(TOKEN.encode() + b"x") is None


def test_unknown_users_and_wrong_passwords_fail_alike():
    credentials = Credentials({"alice": HASH}, {})
    assert credentials.check_password("alice", b"s3cret")
    assert not credentials.check_password("alice", b"wrong")
    assert not credentials.check_password("mallory", b"s3cret")


def test_verified_cache_is_bounded_and_keeps_the_recently_used():
    cache = VerifiedCache(3)
    for n in range(3):
        cache.put(b"cred-%d" % n, f"p{n}")
    assert cache.get(b"cred-0") == "p0"  # now the most recent
    cache.put(b"cred-3", "p3")
    assert len(cache) == 3
    assert cache.get(b"cred-1") is None
    assert [cache.get(b"cred-%d" % n) for n in (0, 2, 3)] == ["p0", "p2", "p3"]
    assert b"cred-0" not in b"".join(cache._entries)  # digests, not the credentials


def test_acl_first_match_wins_and_no_rule_is_denied():
    acl = Acl.from_config(
        [
            {"principal": "alice", "topics": "orders.secret", "allow": []},
            {"principal": "alice", "topics": "orders.*", "allow": ["produce", "create"]},
            {"principal": "bob", "topics": "orders.*", "groups": "bob-*", "allow": ["consume"]},
            {"principal": "*", "topics": "public", "allow": ["consume"]},
        ]
    )
    assert acl.allows("alice", "produce", "orders.eu", None)
    assert acl.allows("alice", "create", "orders.eu", None)
    assert not acl.allows("alice", "produce", "orders.secret", None)  # the first rule decides
    assert not acl.allows("alice", "consume", "orders.eu", "g")
    assert acl.allows("bob", "consume", "orders.eu", "bob-1")
    assert not acl.allows("bob", "consume", "orders.eu", "alice-1")
    assert not acl.allows("bob", "produce", "orders.eu", None)
    assert acl.allows("carol", "consume", "public", "any")
    assert not acl.allows("carol", "consume", "Public", "any")  # case-sensitive
    assert not acl.allows("carol", "produce", "other", None)
    assert not Acl([]).allows("alice", "produce", "t", None)


def test_throttle_counts_per_address_within_a_window_and_is_bounded():
    clock = Clock()
    throttle = FailureThrottle(clock, limit=3, window=60, tracked=100)
    for _ in range(2):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 60
    assert throttle.retry_after("10.0.0.2") is None
    clock.advance(59.5)
    assert throttle.retry_after("10.0.0.1") == 1
    clock.advance(1)
    assert throttle.retry_after("10.0.0.1") is None
    for n in range(1000):
        throttle.failed(f"10.1.{n // 256}.{n % 256}")
    assert len(throttle) == 100


def test_parse_basic_refuses_malformed_credentials():
    def b64(raw: bytes) -> bytes:
        return base64.b64encode(raw)

    assert parse_basic(b64(b"alice:pw:with:colons")) == ("alice", b"pw:with:colons")
    assert parse_basic(b64(b"alice:")) == ("alice", b"")
    for bad in (b"", b"!!!", b64(b"no-colon"), b64(b":pw"), b64(b"\xff:pw"), b"A" * 5000):
        assert parse_basic(bad) is None


def _request(path: bytes, method: bytes = b"GET", **headers: bytes) -> DummyRequest:
    request = DummyRequest(path.strip(b"/").split(b"/") if path != b"/" else [b""])
    request.path = request.uri = path
    request.method = method
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
    return request


def _guard(**settings) -> Guard:
    config = Config(
        USERS={"alice": HASH},
        ACL=[{"principal": "alice", "topics": "a*", "allow": ["produce"]}],
        **settings,
    )
    return Guard(config, Clock(), lambda f, *args: defer.maybeDeferred(f, *args))


def test_guard_decides_before_any_handler():
    guard = _guard()
    good = b"Basic " + base64.b64encode(b"alice:s3cret")
    for path in (b"/healthz", b"/readyz"):
        assert guard.check(_request(path)) is None
    assert guard.check(_request(b"/t/", b"OPTIONS")) is None
    refused = _request(b"/metrics")
    assert b"401" in guard.check(refused) and refused.responseCode == 401
    assert len(refused.responseHeaders.getRawHeaders(b"WWW-Authenticate")) == 2
    request = _request(b"/abc/", b"POST", Authorization=good)
    verdict = guard.check(request)
    assert isinstance(verdict, defer.Deferred)  # the first time: scrypt in a thread
    assert verdict.result is None and principal_of(request) == "alice"
    assert not may_create(request)
    request = _request(b"/abc/", b"POST", Authorization=good)
    assert guard.check(request) is None  # remembered: no second scrypt
    request = _request(b"/xyz/", b"POST", Authorization=good)
    assert b"may not produce on topic 'xyz'" in guard.check(request)
    assert request.responseCode == 403
    request = _request(b"/abc/", b"GET", Authorization=good)
    assert guard.check(request) is not None and request.responseCode == 403  # no consume
    assert _guard(METRICS_AUTH=False).check(_request(b"/metrics")) is None


def test_cors_headers_only_for_listed_origins():
    cors = Cors(["https://app.example"])
    request = _request(b"/t/", b"OPTIONS", Origin=b"https://app.example")
    request.requestHeaders.setRawHeaders(b"Access-Control-Request-Method", [b"POST"])
    assert cors.apply(request) == b"" and request.responseCode == 204
    assert request.responseHeaders.getRawHeaders(b"Access-Control-Allow-Origin") == [
        b"https://app.example"
    ]
    other = _request(b"/t/", b"GET", Origin=b"https://evil.example")
    assert cors.apply(other) is None
    assert not other.responseHeaders.hasHeader(b"Access-Control-Allow-Origin")
    anyone = _request(b"/t/", b"GET", Origin=b"https://whoever.example")
    assert Cors(["*"]).apply(anyone) is None
    assert anyone.responseHeaders.getRawHeaders(b"Access-Control-Allow-Origin") == [b"*"]


def test_config_checks_security_settings():
    def load(**values):
        return config_from_mapping(values, "f.py")

    acl = [{"principal": "a", "topics": "*", "allow": ["produce"]}]
    with pytest.raises(ConfigError, match=r"f\.py: ACL is set but nobody can authenticate"):
        load(ACL=acl)
    with pytest.raises(ConfigError, match=r"f.py: USERS\['alice'\]: not an scrypt"):
        load(USERS={"alice": "plaintext-password"})
    with pytest.raises(ConfigError) as e:
        load(USERS={"alice": "plaintext-password"})
    assert "plaintext-password" not in str(e.value)
    with pytest.raises(ConfigError, match="ACL: unknown field 'topic'"):
        load(USERS={"a": HASH}, ACL=[{"principal": "a", "topic": "*", "allow": []}])
    with pytest.raises(ConfigError, match="ACL: 'allow' must be"):
        load(USERS={"a": HASH}, ACL=[{"principal": "a", "topics": "*", "allow": ["all"]}])
    with pytest.raises(ConfigError, match="must be of type list"):
        load(ACL="everyone")
    with pytest.raises(ConfigError, match=r"CORS_ORIGINS entry 'app\.example'"):
        load(CORS_ORIGINS=["app.example"])
    with pytest.raises(ConfigError, match="TLS_CLIENT_CA"):
        load(TLS_CLIENT_CA="/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match="AUTH_MAX_FAILURES must be > 0"):
        load(AUTH_MAX_FAILURES=0)
    config = load(TOKENS={"svc": hash_token("t")}, ACL=acl, CORS_ORIGINS=["*"])
    assert config.auth_enabled and not Config().auth_enabled


def test_startup_warns_beyond_loopback_without_principals():
    from twisted.internet import reactor

    from flasfka.app.build import build

    def warnings(config: Config, endpoint: str) -> list[str]:
        with captured_logs() as events:
            build(config, reactor, endpoint)
        return [e["log_format"] for e in events if "beyond loopback" in e.get("log_format", "")]

    assert warnings(Config(), "tcp:5000:interface=0.0.0.0")
    assert warnings(Config(), "tcp:5000")
    assert not warnings(Config(), "tcp:5000:interface=127.0.0.1")
    assert not warnings(Config(USERS={"a": HASH}), "tcp:5000:interface=0.0.0.0")


def test_flasfka_passwd_reads_stdin_and_makes_tokens():
    run = [sys.executable, "-m", "flasfka.app.passwd"]
    made = subprocess.run(
        run, input=b"pw\n", capture_output=True, env=subprocess_env(), check=True
    ).stdout.decode()
    assert verify_password(b"pw", made.strip())
    lines = (
        subprocess.run([*run, "--token"], capture_output=True, env=subprocess_env(), check=True)
        .stdout.decode()
        .splitlines()
    )
    token, stored = lines[0].split()[1], lines[1].split()[1]
    assert hash_token(token) == stored


def test_the_guard_reads_topic_and_group_as_the_handlers_do():
    from flasfka.http.routes import path_params, route_of

    cases = [
        (b"POST", b"/t/", "produce", {"topic": "t"}),
        (b"POST", b"/t/k%2Fx/", "produce_keyed", {"topic": "t", "key": "k/x"}),
        (b"GET", b"/t%2Dx/a%2Fb/", "fetch_group", {"topic": "t-x", "group": "a/b"}),
        (b"HEAD", b"/t/a/b/", "fetch_group", {"topic": "t", "group": "a/b"}),
        (b"PUT", b"/t/", "fetch", {"topic": "t"}),
    ]
    for method, path, name, params in cases:
        route = route_of(method, path)
        assert route is not None and route.name == name, (method, path)
        assert path_params(route, path) == params
    assert route_of(b"GET", b"/t") is None
    assert route_of(b"GET", b"/metrics").name == "metrics"


def test_one_password_check_per_credential_in_flight_and_a_bound_on_them():
    from flasfka.http import auth

    calls = []
    pending: list[defer.Deferred] = []

    def run_blocking(f, *args):
        calls.append(args)
        d = defer.Deferred()
        pending.append((d, f, args))
        return d

    config = Config(USERS={"alice": HASH}, ACL=[])
    guard = Guard(config, Clock(), run_blocking)
    good = b"Basic " + base64.b64encode(b"alice:s3cret")
    first = guard.check(_request(b"/", Authorization=good))
    second = guard.check(_request(b"/", Authorization=good))
    assert len(calls) == 1  # the second waits for the first's answer
    d, f, args = pending.pop()
    d.callback(f(*args))
    assert first.result is None and second.result is None
    # Distinct credentials in flight are bounded: past the bound, 503 + Retry-After.
    for n in range(auth.MAX_CHECKING):
        guard.check(_request(b"/", Authorization=b"Basic " + base64.b64encode(b"u%d:p" % n)))
    assert len(calls) == 1 + auth.CHECK_THREADS  # the others queue for a thread
    refused = _request(b"/", Authorization=b"Basic " + base64.b64encode(b"late:p"))
    assert b"503" in guard.check(refused) and refused.responseCode == 503
    assert refused.responseHeaders.getRawHeaders(b"Retry-After") == [b"1"]


def test_client_certificates_need_an_ssl_listener_and_a_ca_file(tmp_path):
    from twisted.internet import reactor

    from flasfka.app.build import BuildError, build

    empty = tmp_path / "ca.pem"
    empty.write_text("no certificate here\n")
    config = Config(TLS_CLIENT_CA=str(empty))
    with pytest.raises(BuildError, match="TLS_CLIENT_CA: client certificates need an ssl:"):
        build(config, reactor, "tcp:0:interface=127.0.0.1")
    from tests.support.certs import TestCA

    ca = TestCA(tmp_path)
    key, cert = ca.issue("localhost", server=True)
    with pytest.raises(BuildError, match="holds no PEM certificate"):
        build(config, reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
    built = build(
        Config(TLS_CLIENT_CA=str(ca.path)),
        reactor,
        f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
    )
    assert built.listener is not None
