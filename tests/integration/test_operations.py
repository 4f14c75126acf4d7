"""Operations, in process: flasfka built by makeService (as twistd builds it), real Tansu.

/healthz, /readyz, /metrics, the access log, idle consumer expiry, HTTPS on the listener.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import time

import pytest_twisted
import treq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, ssl, threads
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseNeverReceived

from flasfka.app.broker import free_port
from flasfka.app.logs import event_as_json_line
from tests.support.helpers import collect, get, post, post_messages, sleep
from tests.support.ops import captured_logs, metrics, sample, start_app, write_config
from tests.support.servers import unique


async def wait_ready(url: str, timeout: float = 15.0) -> None:
    """Poll /readyz until 200 (the producer reports its connection within ~1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = await get(url, "/readyz")
        if status == 200:
            assert body == {"status": "ready"}
            return
        assert time.monotonic() < deadline, body
        await sleep(0.2)


@pytest_twisted.ensureDeferred
async def test_ops_endpoints_are_exact_paths_and_topics_of_those_names_still_work(broker, tmp_path):
    app = await start_app(write_config(tmp_path / "flasfka.conf.py", broker.address))
    try:
        status, body, response = await get(app.url, "/healthz")
        assert (status, body) == (200, {"status": "ok"})
        assert response.headers.getRawHeaders("X-Flasfka-Version")
        await wait_ready(app.url)
        samples = await metrics(app.url)
        assert sample(samples, "flasfka_broker_connected") == 1
        # A topic named "healthz" is /healthz/ (and "metrics" is /metrics/).
        group = unique("g")
        await post_messages(app.url, "/healthz/", ["to the topic"])
        await post_messages(app.url, "/metrics/k/", ["keyed"])
        status, body, _ = await get(app.url, f"/healthz/{group}/")
        assert status == 200
        assert "to the topic" in body["messages"]
        # Only GET (and HEAD) are served on the ops paths.
        response = await post(app.url, "/readyz", {"messages": ["x"]})
        await response.content()
        assert response.code == 405
    finally:
        await app.stop()


@pytest_twisted.ensureDeferred
async def test_metrics_move_by_exactly_the_requests_and_messages_of_the_test(broker, tmp_path):
    app = await start_app(write_config(tmp_path / "flasfka.conf.py", broker.address))
    topic, group = unique(), unique("g")
    try:
        await post_messages(app.url, f"/{topic}/", ["a", "b", "c"])
        await post_messages(app.url, f"/{topic}/key/", ["d", "e"])
        await post_messages(app.url, f"/{topic}/", [])
        response = await post(app.url, f"/{topic}/", b"not json")
        await response.content()
        assert response.code == 400
        received: list[str] = []
        gets = 0
        deadline = time.monotonic() + 30
        while len(received) < 5 and time.monotonic() < deadline:
            status, body, _ = await get(app.url, f"/{topic}/{group}/?limit=2")
            assert status == 200
            gets += 1
            received += body["messages"]
        assert sorted(received) == ["a", "b", "c", "d", "e"]

        samples = await metrics(app.url)
        assert sample(samples, "flasfka_messages_produced_total", topic=topic) == 5
        assert sample(samples, "flasfka_messages_consumed_total", topic=topic) == 5
        assert sample(samples, "flasfka_delivery_latency_seconds_count") == 2
        assert sample(samples, "flasfka_produce_errors_total", topic=topic, status="503") == 0
        requests = "flasfka_http_requests_total"
        assert sample(samples, requests, route="/{topic}/", method="POST", status="204") == 2
        assert sample(samples, requests, route="/{topic}/{key}/", method="POST", status="204") == 1
        assert sample(samples, requests, route="/{topic}/", method="POST", status="400") == 1
        assert sample(samples, requests, route="/{topic}/{group}/", method="GET", status="200") == (
            gets
        )
        duration = "flasfka_http_request_duration_seconds_count"
        assert sample(samples, duration, route="/{topic}/{group}/", method="GET") == gets
        assert sample(samples, "flasfka_consumers_open") == 1
        assert sample(samples, "flasfka_broker_connected") == 1
        assert sample(samples, "flasfka_http_requests_in_flight") == 1  # this scrape
        # Nothing is labelled with a topic name except the message counters.
        assert all(
            dict(labels).get("route") in (None, "/{topic}/", "/{topic}/{key}/", "/{topic}/{group}/")
            or dict(labels)["route"] in ("/healthz", "/readyz", "/metrics", "other")
            for _, labels in samples
        )
        # A second instance in the same process has its own registry.
        other = await start_app(write_config(tmp_path / "other.conf.py", broker.address))
        try:
            fresh = await metrics(other.url)
            assert sample(fresh, "flasfka_messages_produced_total", topic=topic) == 0
        finally:
            await other.stop()
    finally:
        await app.stop()


@pytest_twisted.ensureDeferred
async def test_one_access_line_per_request_with_method_path_status_bytes_duration(broker, tmp_path):
    app = await start_app(write_config(tmp_path / "flasfka.conf.py", broker.address))
    topic = unique()
    try:
        with captured_logs() as events:
            await post_messages(app.url, f"/{topic}/", ["x"])
            response = await post(app.url, f"/{topic}/?a=1", b"[]")
            body = await response.content()
            await sleep(0.05)
        access = [e for e in events if e.get("log_namespace") == "flasfka.access"]
        assert [(e["method"], e["path"], e["status"]) for e in access] == [
            ("POST", f"/{topic}/", 204),
            ("POST", f"/{topic}/?a=1", 400),
        ]
        assert access[0]["bytes"] == 0 and access[1]["bytes"] == len(body)
        assert all(0 <= e["duration"] < 10 for e in access)
        # twisted.web's own combined-log line is gone.
        assert not [e for e in events if "HTTP/1.1" in str(e.get("message", e.get("format")))]
        # The JSON form of the same event: one object per line, fields kept.
        line = event_as_json_line(access[1])
        assert line.endswith("\n") and line.count("\n") == 1
        record = json.loads(line)
        assert record["level"] == "info"
        assert record["namespace"] == "flasfka.access"
        assert record["status"] == 400 and record["path"] == f"/{topic}/?a=1"
        assert f'"POST /{topic}/?a=1" 400' in record["message"]
    finally:
        await app.stop()


@pytest_twisted.ensureDeferred
async def test_idle_consumer_is_closed_and_a_later_get_recreates_it(broker, tmp_path):
    config = write_config(tmp_path / "flasfka.conf.py", broker.address, CONSUMER_IDLE_TIMEOUT=1.0)
    app = await start_app(config)
    topic, group = unique(), unique("g")
    try:
        await post_messages(app.url, f"/{topic}/", ["first"])
        assert await collect(app.url, f"/{topic}/{group}/", 1) == ["first"]
        assert sample(await metrics(app.url), "flasfka_consumers_open") == 1
        with captured_logs() as events:
            deadline = time.monotonic() + 10
            while sample(await metrics(app.url), "flasfka_consumers_open") != 0:
                assert time.monotonic() < deadline, "the idle consumer was not closed"
                await sleep(0.2)
            idle_for = time.monotonic() - deadline + 10
        assert len(app.gateway.consumers) == 0
        closing = [e for e in events if e.get("log_namespace") == "flasfka.consumers"]
        assert closing and "idle" in closing[0]["log_format"]
        assert closing[0]["idle"] >= 1.0 and idle_for < 5
        # A later GET opens a new member of the group: it resumes after the committed offset.
        await post_messages(app.url, f"/{topic}/", ["second"])
        assert await collect(app.url, f"/{topic}/{group}/", 1) == ["second"]
        assert sample(await metrics(app.url), "flasfka_consumers_open") == 1
    finally:
        await app.stop()


def _self_signed(tmp_path):
    """A key and a self-signed certificate for localhost / 127.0.0.1, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest_twisted.ensureDeferred
async def test_https_listener_serves_a_round_trip(broker, tmp_path):
    from twisted.internet import reactor

    key_path, cert_path = _self_signed(tmp_path)
    port = free_port()
    endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    app = await start_app(
        write_config(tmp_path / "flasfka.conf.py", broker.address),
        endpoint=endpoint,
        scheme="https",
        port=port,
    )
    trust = ssl.Certificate.loadPEM(cert_path.read_bytes())
    client = treq.client.HTTPClient(
        Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust))
    )
    url = f"https://localhost:{port}"
    topic, group = unique(), unique("g")
    try:
        response = await client.post(f"{url}/{topic}/", data=b'{"messages": ["secret"]}')
        assert response.code == 204, await response.text()
        response = await client.get(f"{url}/{topic}/{group}/")
        assert response.code == 200
        assert json.loads(await response.content()) == {"group": group, "messages": ["secret"]}
        response = await client.get(f"{url}/healthz")
        assert response.code == 200
        await response.content()
    finally:
        await app.stop()


@pytest_twisted.ensureDeferred
async def test_broker_trouble_is_logged_through_twisted_logger_not_raw_stderr(tmp_path, capfd):
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    with captured_logs() as events:
        app = await start_app(write_config(tmp_path / "flasfka.conf.py", nobody))
        try:
            deadline = time.monotonic() + 10
            while not any(e.get("log_namespace") == "flasfka.librdkafka" for e in events):
                assert time.monotonic() < deadline, "no librdkafka log line"
                await sleep(0.1)
            status, body, _ = await get(app.url, "/readyz")
        finally:
            await app.stop()
    assert status == 503
    assert body["reason"].startswith("the producer has no connection to a broker")
    rdkafka = [e for e in events if e.get("log_namespace") == "flasfka.librdkafka"]
    assert any(e["facility"] == "FAIL" and nobody in e["text"] for e in rdkafka)
    assert all(e["log_level"].name == "warn" for e in rdkafka if e["facility"] == "FAIL")
    warnings = [e for e in events if e.get("log_namespace") == "flasfka.kafka.producer"]
    assert any("brokers are down" in e.get("error", "") for e in warnings)
    assert "%3|" not in capfd.readouterr().err  # librdkafka's own stderr format


@pytest_twisted.ensureDeferred
async def test_stop_cuts_requests_still_running_after_the_grace_time(broker, tmp_path):
    config = write_config(
        tmp_path / "flasfka.conf.py", broker.address, SHUTDOWN_GRACE=1.0, CONSUMER_TIMEOUT=10.0
    )
    app = await start_app(config)
    topic, group = unique(), unique("g")
    # A GET on a new group waits for the join (~3.6 s) and then up to CONSUMER_TIMEOUT.
    pending = defer.ensureDeferred(get(app.url, f"/{topic}/{group}/"))
    pending.addErrback(lambda failure: failure.value)  # the error as the result
    await sleep(0.5)
    assert not pending.called
    with captured_logs() as events:
        started = time.monotonic()
        await app.stop()
        took = time.monotonic() - started
    assert 1.0 <= took < 3.0, took
    result = await pending
    assert isinstance(result, ResponseNeverReceived), result  # cut: no response at all
    cut = [e for e in events if "still in flight after" in e.get("log_format", "")]
    assert [(e["count"], e["grace"]) for e in cut] == [(1, 1.0)]


def _exchange(port: int, path: str) -> tuple[bytes, float]:
    """Send one keep-alive GET on a raw socket; read until the server closes (thread).

    Returns everything received and when (time.monotonic()) the connection was closed.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received, time.monotonic()


@pytest_twisted.ensureDeferred
async def test_stop_closes_idle_connections_and_answers_busy_ones_with_connection_close(
    broker, tmp_path
):
    port = free_port()
    app = await start_app(write_config(tmp_path / "flasfka.conf.py", broker.address), port=port)
    topic, group = unique(), unique("g")
    idle = threads.deferToThread(_exchange, port, "/healthz")
    busy = threads.deferToThread(_exchange, port, f"/{topic}/{group}/")  # ~3.6 s join
    await sleep(1.0)
    assert not idle.called and not busy.called  # keep-alive: both connections stay open
    stop = time.monotonic()
    await app.stop()
    idle_reply, idle_closed = await idle
    busy_reply, _ = await busy
    assert idle_reply.startswith(b"HTTP/1.1 200") and idle_closed - stop < 0.5
    head, _, body = busy_reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), busy_reply
    assert b"\r\nConnection: close" in head
    assert b'"messages":[]' in body
