"""flasfka-serve --workers 2 on the real broker: both serve, one dies, SIGTERM, groups, metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer

from flasfka.app.broker import free_port
from tests.support.helpers import read_topic, sleep
from tests.support.ops import sample, spawn, wait_exit, wait_ready, write_config
from tests.support.servers import unique

GRACE = 10.0


@dataclass
class Instance:
    """A flasfka-serve --workers 2 process, its URL and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self, worker_id: int) -> list[int]:
        """Pids of every process that was worker worker_id, in start order."""
        found = re.findall(rf"worker {worker_id} started \(pid (\d+)\)", self.log())
        return [int(pid) for pid in found]

    def listening(self, worker_id: int) -> int:
        """How many times worker worker_id logged that it listens."""
        pattern = rf"\[worker {worker_id} flasfka#info\] flasfka listening"
        return len(re.findall(pattern, self.log()))


async def start_instance(tmp_path: Path, broker_address: str, **settings: Any) -> Instance:
    """flasfka-serve with two workers on a free port, once both workers listen."""
    config = write_config(
        tmp_path / f"flasfka-{unique()}.py",
        broker_address,
        SHUTDOWN_GRACE=GRACE,
        TOPIC_PARTITIONS=4,
        **settings,
    )
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    argv = ["flasfka-serve", "--config", str(config), "-p", str(port), "--workers", "2"]
    instance = Instance(f"http://127.0.0.1:{port}", spawn(argv, log_path), log_path)
    await wait_ready(instance.url, instance.process)
    await until(lambda: instance.listening(1) and instance.listening(2), "both workers listen")
    return instance


async def stop_instance(instance: Instance) -> int | None:
    if instance.process.poll() is None:
        instance.process.send_signal(signal.SIGTERM)
    code = await wait_exit(instance.process, 3 * GRACE)
    if code is None:
        instance.process.kill()
        instance.process.wait(10)
    return code


async def until(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Poll condition() until true (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await sleep(0.1)


@pytest.fixture(scope="module")
def instance(broker, tmp_path_factory) -> Iterator[Instance]:
    """One two-worker instance shared by the tests that do not stop or kill it."""
    tmp = tmp_path_factory.mktemp("workers")
    running = pytest_twisted.blockon(defer.ensureDeferred(start_instance(tmp, broker.address)))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(stop_instance(running)))


def parse_metrics(text: str) -> dict:
    """A /metrics body as {(sample name, sorted labels): value} (as tests.support.ops.metrics)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def request(method: str, url: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    """One request on a new connection (so the kernel may hand it to either worker)."""
    response = await treq.request(method, url, data=body, persistent=False)
    content = await response.content()
    worker = (response.headers.getRawHeaders("X-Flasfka-Worker") or ["-"])[0]
    return response.code, worker, content


async def post_values(url: str, topic: str, values: list[str], parallel: int = 4) -> list[str]:
    """POST each value alone, parallel at a time; the worker id of each answer (all 204)."""
    workers: list[str] = []
    for start in range(0, len(values), parallel):
        batch = values[start : start + parallel]
        answers = await defer.gatherResults(
            [
                defer.ensureDeferred(
                    request("POST", f"{url}/{topic}/", b'{"messages": ["%s"]}' % v.encode())
                )
                for v in batch
            ]
        )
        for code, worker, body in answers:
            assert code == 204, body
            workers.append(worker)
    return workers


@pytest_twisted.ensureDeferred
async def test_both_workers_answer_and_say_so(instance, broker):
    topic = unique()
    values = [f"m{i}" for i in range(200)]
    workers = await post_values(instance.url, topic, values)
    assert set(workers) == {"1", "2"}, workers
    assert min(workers.count("1"), workers.count("2")) > 0
    log = instance.log()
    for worker_id in (1, 2):
        assert re.search(rf'\[worker {worker_id} flasfka.access#info\] .*"POST /{topic}/" 204', log)
    assert sorted(v for _, v in await read_topic(broker.address, topic)) == sorted(
        v.encode() for v in values
    )
    code, worker, body = await request("GET", f"{instance.url}/healthz")
    assert (code, body) == (200, b'{"status": "ok"}') and worker in ("1", "2")


@pytest_twisted.ensureDeferred
async def test_two_workers_in_one_group_return_every_message_once(instance, broker):
    topic, group = unique(), unique("g")
    path = f"{instance.url}/{topic}/{group}/?limit=7"
    # Both workers join the group first (a GET on each), so the partitions are split.
    members: set[str] = set()
    deadline = time.monotonic() + 60
    while members != {"1", "2"}:
        assert time.monotonic() < deadline, members
        answers = await defer.gatherResults(
            [defer.ensureDeferred(request("GET", path)) for _ in range(4)]
        )
        for code, worker, body in answers:
            assert code == 200, body
            members.add(worker)
    values = [f"v{i}" for i in range(60)]
    await post_values(instance.url, topic, values)
    seen: list[str] = []
    answered_by: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < len(values) and time.monotonic() < deadline:
        answers = await defer.gatherResults(
            [defer.ensureDeferred(request("GET", path)) for _ in range(2)]
        )
        for code, worker, body in answers:
            assert code == 200, body
            messages = json.loads(body)["messages"]
            if messages:
                answered_by.add(worker)
            seen.extend(messages)
    assert sorted(seen) == sorted(values)  # every message, none twice
    assert answered_by == {"1", "2"}


@pytest_twisted.ensureDeferred
async def test_metrics_count_what_both_workers_did(instance):
    topic, group = unique(), unique("g")
    values = [f"c{i}" for i in range(40)]
    workers = await post_values(instance.url, topic, values)
    assert set(workers) == {"1", "2"}
    consumed: list[str] = []
    deadline = time.monotonic() + 60
    while len(consumed) < len(values) and time.monotonic() < deadline:
        code, _, body = await request("GET", f"{instance.url}/{topic}/{group}/?limit=1000")
        assert code == 200, body
        consumed.extend(json.loads(body)["messages"])
    assert sorted(consumed) == sorted(values)
    scraped_by: set[str] = set()
    scrapes = 0
    while scraped_by != {"1", "2"} or scrapes < 6:  # whichever worker answers reports both
        scrapes += 1
        assert scrapes < 200, scraped_by
        response = await treq.get(instance.url + "/metrics", persistent=False)
        scraped_by.add(response.headers.getRawHeaders("X-Flasfka-Worker")[0])
        samples = parse_metrics((await response.content()).decode())
        assert sample(samples, "flasfka_messages_produced_total", topic=topic) == len(values)
        assert sample(samples, "flasfka_messages_consumed_total", topic=topic) == len(values)
        posts = sample(
            samples,
            "flasfka_http_requests_total",
            route="/{topic}/",
            method="POST",
            status="204",
        )
        assert posts >= len(values)
        assert sample(samples, "flasfka_broker_connected") == 1
    assert scraped_by == {"1", "2"}


async def hammer(
    url: str, results: list[tuple[float, Any]], stop: list[bool], path: str = "/healthz"
) -> None:
    """GET path on new connections until stop; (time, status or exception) each."""
    while not stop:
        try:
            code, worker, _ = await request("GET", url + path)
            results.append((time.monotonic(), (code, worker)))
        except Exception as e:
            results.append((time.monotonic(), e))
        await sleep(0.01)


@pytest_twisted.ensureDeferred
async def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(broker, tmp_path):
    instance = await start_instance(tmp_path, broker.address)
    try:
        results: list[tuple[float, Any]] = []
        stop: list[bool] = []
        loops = [defer.ensureDeferred(hammer(instance.url, results, stop)) for _ in range(2)]
        await sleep(1.0)
        (first,) = instance.pids(1)
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        await until(lambda: len(instance.pids(1)) == 2, "worker 1 restarted")
        await until(lambda: instance.listening(1) == 2, "the new worker 1 listens")
        await sleep(1.0)
        stop.append(True)
        await defer.gatherResults(loops)
    finally:
        assert await stop_instance(instance) == 0
    log = instance.log()
    assert re.search(rf"worker 1 \(pid {first}\) died \(killed by signal 9\)", log), log
    failures = [r for _, r in results if isinstance(r, Exception)]
    # A request the killed worker had accepted is lost with it; no connection is refused.
    assert len(failures) <= 2, failures
    assert not [f for f in failures if "refused" in str(f).lower()], failures
    assert all(r[0] == 200 for _, r in results if not isinstance(r, Exception))
    after = [r[1] for t, r in results if t > killed_at and not isinstance(r, Exception)]
    assert "2" in after and after[-20:].count("1") > 0  # the survivor, then the new worker 1


@pytest_twisted.ensureDeferred
async def test_sighup_replaces_workers_one_at_a_time_without_refusing(broker, tmp_path):
    instance = await start_instance(tmp_path, broker.address)
    try:
        results: list[tuple[float, Any]] = []
        stop: list[bool] = []
        # /readyz answers for the instance: a worker being replaced stays ready while it drains.
        loops = [
            defer.ensureDeferred(hammer(instance.url, results, stop, "/readyz")) for _ in range(2)
        ]
        await sleep(0.5)
        old = instance.pids(1) + instance.pids(2)
        instance.process.send_signal(signal.SIGHUP)
        await until(lambda: "rolling restart done" in instance.log(), "rolling restart", 60)
        await sleep(0.5)
        stop.append(True)
        await defer.gatherResults(loops)
        assert instance.process.poll() is None
    finally:
        assert await stop_instance(instance) == 0
    assert len(instance.pids(1)) == len(instance.pids(2)) == 2
    for pid in old:
        assert re.search(rf"\(pid {pid}\) stopping: replaced by a new worker", instance.log())
    assert [r for _, r in results if isinstance(r, Exception) or r[0] != 200] == []
    assert len(results) > 20


@pytest_twisted.ensureDeferred
async def test_sigterm_under_load_loses_no_acknowledged_message(broker, tmp_path):
    instance = await start_instance(tmp_path, broker.address)
    topic = unique()
    acknowledged: list[str] = []
    stop: list[bool] = []

    async def produce(loop: int) -> None:
        n = 0
        while not stop:
            value = f"{loop}-{n}"
            n += 1
            try:
                code, _, _ = await request(
                    "POST", f"{instance.url}/{topic}/", b'{"messages": ["%s"]}' % value.encode()
                )
            except Exception:
                await sleep(0.05)  # refused once the port closed: keep trying until stop
                continue
            if code == 204:
                acknowledged.append(value)

    loops = [defer.ensureDeferred(produce(i)) for i in range(6)]
    try:
        await until(lambda: len(acknowledged) >= 100, "100 messages acknowledged")
        started = time.monotonic()
        instance.process.send_signal(signal.SIGTERM)
        code = await wait_exit(instance.process, 3 * GRACE)
        took = time.monotonic() - started
    finally:
        stop.append(True)
        await defer.gatherResults(loops)
        await stop_instance(instance)
    assert code == 0, instance.log()
    assert took < GRACE, took
    assert "all workers stopped" in instance.log()
    written = {v.decode() for _, v in await read_topic(broker.address, topic)}
    assert set(acknowledged) <= written
    assert len(acknowledged) >= 100


@pytest_twisted.ensureDeferred
async def test_a_single_process_names_no_worker(server):
    for path in ("/healthz", "/metrics", f"/{unique()}/"):
        response = await treq.get(server.url + path, persistent=False)
        await response.content()
        assert response.headers.getRawHeaders("X-Flasfka-Worker") is None, path
        assert response.headers.getRawHeaders("X-Flasfka-Version")


@pytest_twisted.ensureDeferred
async def test_sigint_stops_every_worker_and_the_parent_exits_0(broker, tmp_path):
    instance = await start_instance(tmp_path, broker.address)
    pids = instance.pids(1) + instance.pids(2)
    instance.process.send_signal(signal.SIGINT)
    assert await wait_exit(instance.process, 3 * GRACE) == 0
    log = instance.log()
    for pid in pids:
        assert re.search(rf"\(pid {pid}\) stopping: SIGTERM", log), log
        assert not os.path.exists(f"/proc/{pid}")
    assert "all workers stopped" in log and "Traceback" not in log


@pytest_twisted.ensureDeferred
async def test_two_workers_in_one_group_deliver_every_message_at_least_once_with_acks(instance):
    from twisted.internet import reactor
    from twisted.web.client import HTTPConnectionPool

    topic, group = unique(), unique("g")
    path = f"{instance.url}/{topic}/{group}/?ack=explicit&limit=5"
    # One keep-alive connection per client is one worker: GET and its ack reach the same one.
    clients: dict[str, HTTPConnectionPool] = {}
    deadline = time.monotonic() + 60
    while len(clients) < 2:
        assert time.monotonic() < deadline, list(clients)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 1
        response = await treq.get(path, pool=pool)  # also joins that worker's member
        body = json.loads(await response.content())
        assert response.code == 200 and body["messages"] == [], body
        worker = response.headers.getRawHeaders("X-Flasfka-Worker")[0]
        if worker in clients:
            await pool.closeCachedConnections()
        else:
            clients[worker] = pool
    values = [f"a{i}" for i in range(40)]
    await post_values(instance.url, topic, values)
    seen: list[str] = []
    delivered_by: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while set(seen) != set(values) and time.monotonic() < deadline:
            for worker, pool in clients.items():
                response = await treq.get(path, pool=pool)
                body = json.loads(await response.content())
                assert response.code == 200, body
                assert response.headers.getRawHeaders("X-Flasfka-Worker") == [worker]
                if not body["messages"]:
                    continue
                delivered_by.add(worker)
                seen.extend(body["messages"])
                ack = await treq.post(
                    f"{instance.url}/{topic}/{group}/ack",
                    data=json.dumps({"cursor": body["cursor"]}).encode(),
                    pool=pool,
                )
                assert ack.code == 204, await ack.text()
    finally:
        for pool in clients.values():
            await pool.closeCachedConnections()
    assert set(seen) == set(values)  # at least once: every message, duplicates allowed
    assert delivered_by == {"1", "2"}
