"""The systemd unit and twistd as a process: verify, run ExecStart as written, SIGTERM."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest_twisted
import treq
from twisted.internet import defer, threads

from flasfka.app.broker import free_port
from tests.support.helpers import get, post_messages, sleep
from tests.support.ops import ROOT, spawn, wait_exit, wait_ready, write_config
from tests.support.servers import unique

UNIT = ROOT / "contrib" / "systemd" / "flasfka.service"
#: The config path and listener the unit names; the tests put theirs in their place.
UNIT_CONFIG = "/etc/flasfka/flasfka.conf.py"
UNIT_PORT = "tcp:5000:interface=127.0.0.1"


def unit_settings() -> dict[str, list[str]]:
    """The [Service] settings of the unit: {key: [values in order]}."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def exec_start(config: Path, port: int) -> list[str]:
    """The unit's ExecStart argv with the test config and port in place of the unit's."""
    (command,) = unit_settings()["ExecStart"]
    argv = shlex.split(command)
    assert argv.count(UNIT_CONFIG) == 1 and argv.count(UNIT_PORT) == 1, argv
    return [
        {UNIT_CONFIG: str(config), UNIT_PORT: f"tcp:{port}:interface=127.0.0.1"}.get(a, a)
        for a in argv
    ]


def assert_clean_exit(code: int | None, output: str) -> None:
    """twistd ended its shutdown, then exited 0 or re-raised SIGTERM (Twisted >= 21.2 does:
    the exit status names the signal; systemd counts a SIGTERM death as a clean stop)."""
    assert code in (0, -signal.SIGTERM), (code, output)
    assert "Server Shut Down." in output, output
    assert "Traceback" not in output, output


def test_systemd_analyze_verify_accepts_the_unit():
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian/Ubuntu package: systemd)"
    result = subprocess.run(
        [analyze, "verify", str(UNIT)], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    settings = unit_settings()
    assert settings["Type"] == ["simple"]
    assert settings["Restart"] == ["on-failure"]
    for hardening in ("DynamicUser", "NoNewPrivileges", "PrivateTmp"):
        assert settings[hardening] == ["yes"], hardening
    assert settings["ProtectSystem"] == ["strict"]
    command = settings["ExecStart"][0]
    assert "--nodaemon" in command and "--pidfile=" in command.split()


@pytest_twisted.ensureDeferred
async def test_the_unit_command_serves_a_round_trip_and_logs_to_stdout(own_broker, tmp_path):
    # A broker of its own: the unit reads the shipped default group, which on the session
    # broker has members (of the session server) on every topic the suite read.
    broker = own_broker
    port = free_port()
    config = write_config(tmp_path / "flasfka.conf.py", broker.address)
    log_path = tmp_path / "stdout.log"
    process = spawn(exec_start(config, port), log_path)
    url = f"http://127.0.0.1:{port}"
    topic = unique()
    try:
        await wait_ready(url, process)
        await post_messages(url, f"/{topic}/", ["through the unit"])
        status, body, _ = await get(url, f"/{topic}/")
        assert (status, body) == (200, {"group": "flasfka", "messages": ["through the unit"]})
    finally:
        process.send_signal(signal.SIGTERM)
        code = await wait_exit(process, 30)
    output = log_path.read_text()
    assert_clean_exit(code, output)
    assert f"flasfka listening on http://127.0.0.1:{port}" in output
    assert f"Kafka brokers: {broker.address}" in output
    assert f'"POST /{topic}/" 204 0 ' in output
    assert f'"GET /{topic}/" 200 ' in output
    assert "%3|" not in output and "%6|" not in output  # librdkafka's raw stderr format


@pytest_twisted.ensureDeferred
async def test_sigterm_finishes_in_flight_requests_loses_no_acknowledged_message_and_leaves_groups(
    broker, server, tmp_path
):
    grace = 5.0
    port = free_port()
    config = write_config(
        tmp_path / "flasfka.conf.py", broker.address, SHUTDOWN_GRACE=grace, CONSUMER_TIMEOUT=2.0
    )
    log_path = tmp_path / "stdout.log"
    argv = [*exec_start(config, port), "--log-format", "json"]
    process = spawn(argv, log_path)
    url = f"http://127.0.0.1:{port}"
    topic, held, group = unique(), unique(), unique("g")
    acknowledged: list[str] = []
    sending = True

    async def poster(name: str) -> None:
        n = 0
        while sending:
            value = f"{name}-{n}"
            n += 1
            try:
                response = await treq.post(
                    f"{url}/{topic}/", data=json.dumps({"messages": [value]}).encode()
                )
                await response.content()
            except Exception:
                await sleep(0.01)  # refused or cut: the port is closed
                continue
            if response.code == 204:
                acknowledged.append(value)

    try:
        await wait_ready(url, process)
        # flasfka holds a member of `group` on `held` (its first GET waits for the join).
        await post_messages(url, f"/{held}/", ["held"])
        assert (await get(url, f"/{held}/{group}/"))[1]["messages"] == ["held"]
        posters = [defer.ensureDeferred(poster(f"p{i}")) for i in range(4)]
        await sleep(1.0)
        # A GET that waits CONSUMER_TIMEOUT (2 s) for messages is in flight at SIGTERM.
        in_flight = defer.ensureDeferred(get(url, f"/{held}/{group}/"))
        await sleep(0.3)
        assert not in_flight.called
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await wait_exit(process, grace + 10)
        took = time.monotonic() - stopped_at
    finally:
        sending = False
        if process.poll() is None:
            process.kill()
            process.wait(10)
    await defer.gatherResults(posters)
    output = log_path.read_text()
    assert_clean_exit(code, output)
    assert took < grace, (took, output)
    # The in-flight GET was answered, not cut.
    status, body, _ = await in_flight
    assert (status, body) == (200, {"group": group, "messages": []})
    # Every POST that got its 204 is in the topic, fetched here through another flasfka.
    assert len(acknowledged) > 20
    fetched: set[str] = set()
    deadline = time.monotonic() + 30
    check = unique("check")
    while not set(acknowledged) <= fetched and time.monotonic() < deadline:
        status, body, _ = await get(server.url, f"/{topic}/{check}/?limit=1000")
        assert status == 200
        fetched.update(body["messages"])
    assert set(acknowledged) <= fetched, len(set(acknowledged) - fetched)
    # The member left its group: a new member of it gets every partition promptly (one
    # join round, ~3 s on Tansu; a member that had not left holds them for good).
    assigned = await threads.deferToThread(_join_and_wait, broker.address, held, group, 20.0)
    partitions = await threads.deferToThread(_partitions, broker.address, held)
    assert assigned == partitions
    # JSON log lines, one object each, with the shutdown steps.
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(records) == len(output.splitlines()), output
    messages = [r["message"] for r in records]
    assert any(m.startswith(f"flasfka listening on http://127.0.0.1:{port}") for m in messages)
    assert any(r.get("namespace") == "flasfka.access" and r.get("status") == 204 for r in records)
    assert any("waiting up to 5 s" in m for m in messages), messages[-20:]


def _partitions(address: str, topic: str) -> set[int]:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": address}).list_topics(topic, timeout=10)
    return set(metadata.topics[topic].partitions)


def _join_and_wait(address: str, topic: str, group: str, timeout: float) -> set[int]:
    """Join group on topic with a plain consumer; the partitions it holds after timeout/early."""
    from confluent_kafka import Consumer

    from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS

    wanted = _partitions(address, topic)
    assigned: set[int] = set()
    consumer = Consumer(
        {
            "bootstrap.servers": address,
            "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky",
            "log_level": 0,
            **TANSU_CONSUMER_SETTINGS,
        }
    )
    consumer.subscribe([topic], on_assign=lambda c, ps: assigned.update(p.partition for p in ps))
    deadline = time.monotonic() + timeout
    try:
        while assigned != wanted and time.monotonic() < deadline:
            consumer.consume(10, 0.1)
    finally:
        consumer.close()
    return assigned


@pytest_twisted.ensureDeferred
async def test_flasfka_serve_logs_json_lines_from_the_config_and_exits_0_on_sigterm(
    broker, tmp_path
):
    port = free_port()
    config = write_config(tmp_path / "flasfka.conf.py", broker.address, LOG_FORMAT="json")
    log_path = tmp_path / "stdout.log"
    process = spawn(["flasfka-serve", "--config", str(config), "-p", str(port)], log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, process)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await wait_exit(process, 30)
    output = log_path.read_text()
    assert code == 0, output
    records = [json.loads(line) for line in output.splitlines()]
    assert {"time", "level", "namespace", "message"} <= set(records[0])
    assert any(r["message"] == f"flasfka listening on {url}" for r in records)
    ready = [r for r in records if r.get("path") == "/readyz" and r.get("status") == 200]
    assert ready and ready[0]["namespace"] == "flasfka.access" and ready[0]["method"] == "GET"
