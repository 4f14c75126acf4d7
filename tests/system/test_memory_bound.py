"""flasfka's read-ahead memory is bounded by its config, however many groups clients open.

Each consumer fetches ahead of GETs, up to CONSUMER_BUFFER_BYTES; all of them together share
CONSUMER_BUFFER_BUDGET. The test opens many consumers on large topics with one small GET each
and measures the RSS of a flasfka process (a child process, so nothing else is counted).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest_twisted
import treq
from confluent_kafka import Producer
from twisted.internet import defer, threads

from flasfka.app.broker import free_port
from flasfka.kafka.budget import MIN_SHARE
from tests.support.helpers import sleep
from tests.support.ops import VENV_BIN, spawn, wait_exit, wait_ready, write_config
from tests.support.servers import unique

MIB = 1024 * 1024
CONSUMERS = 16
#: Each topic holds more than a consumer may buffer, so a consumer that ignored its bound
#: would hold CONSUMER_BUFFER_BYTES (16 MiB): 256 MiB for all.
TOPIC_BYTES = 24 * MIB
VALUE = b"v" * (10 * 1024)
BUDGET = 32 * MIB
#: librdkafka's own fetch queue per consumer, set in the config below.
RDKAFKA_QUEUE = 2 * MIB
#: The most one fetch response of librdkafka's holds beyond its queue (by default up to a
#: partition's max.partition.fetch.bytes, 1 MiB, for each of a topic's partitions).
RDKAFKA_FETCH = MIB


def rss(pid: int) -> int:
    """Resident set size of pid in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def spawn_measured(
    tmp_path: Path, address: str, **config: object
) -> tuple[subprocess.Popen[bytes], str]:
    """A flasfka-serve child with config and a small librdkafka queue and fetch (so that
    what flasfka holds stands out); the process and its URL."""
    port = free_port()
    consumer = {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "queued.max.messages.kbytes": RDKAFKA_QUEUE // 1024,
        "fetch.max.bytes": RDKAFKA_FETCH,
    }
    path = write_config(tmp_path / "flasfka.conf.py", address, CONSUMER_CONFIG=consumer, **config)
    argv = [str(VENV_BIN / "flasfka-serve"), "-p", str(port), "--config", str(path)]
    return spawn(argv, tmp_path / "flasfka.log"), f"http://127.0.0.1:{port}"


def fill(address: str, topics: list[str]) -> None:
    """TOPIC_BYTES of 10 KiB values in each topic (thread only)."""
    producer = Producer({"bootstrap.servers": address, "linger.ms": 5})
    for topic in topics:
        for _ in range(TOPIC_BYTES // len(VALUE)):
            while True:
                try:
                    producer.produce(topic, VALUE)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


@pytest_twisted.ensureDeferred
async def test_read_ahead_of_many_consumers_stays_within_the_budget(broker, tmp_path):
    topics = [unique("mem") for _ in range(CONSUMERS)]
    await threads.deferToThread(fill, broker.address, topics)
    process, url = spawn_measured(tmp_path, broker.address, CONSUMER_BUFFER_BUDGET=BUDGET)
    try:
        await wait_ready(url, process)
        before = rss(process.pid)
        answers = await defer.gatherResults(
            [defer.ensureDeferred(first_message(url, topic)) for topic in topics]
        )
        assert all(answer == [VALUE.decode()] for answer in answers)
        # Let every consumer fetch ahead as far as it may, then take the highest RSS seen.
        peak = 0
        for _ in range(20):
            await sleep(0.5)
            peak = max(peak, rss(process.pid))
        metrics = await (await treq.get(url + "/metrics")).text()
    finally:
        process.send_signal(signal.SIGTERM)
        await wait_exit(process, 30)
    read_ahead = next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("flasfka_read_ahead_bytes ")
    )
    # Each member may hold MIN_SHARE whatever the others hold, and overshoot by a record.
    assert 0 < read_ahead <= BUDGET + CONSUMERS * (MIN_SHARE + 2 * len(VALUE))
    grown = peak - before
    # The budget, librdkafka's queue, one fetch and its own megabyte per consumer, and room
    # for threads and allocator slack; 16 consumers at their own bound alone would be 256 MiB.
    bound = BUDGET + CONSUMERS * (RDKAFKA_QUEUE + RDKAFKA_FETCH + MIB) + 48 * MIB
    print(f"RSS before {before / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, grown {grown / MIB:.0f}")
    assert grown < bound, (grown / MIB, bound / MIB)


async def first_message(url: str, topic: str) -> list[str]:
    response = await treq.get(f"{url}/{topic}/?limit=1")
    assert response.code == 200
    return (await response.json())["messages"]
