"""Helpers for the operations tests: flasfka built by makeService, metrics, logs, processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import threads
from twisted.logger import globalLogPublisher

from flasfka.app.broker import free_port
from flasfka.app.config import load_config
from flasfka.app.tap import Options, makeService
from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS
from tests.support.servers import Server, subprocess_env

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def write_config(path: Path, broker_address: str, **settings: Any) -> Path:
    """A flasfka config file for the test broker (test consumer settings) plus settings."""
    values: dict[str, Any] = {
        "HOSTS": [broker_address],
        "CONSUMER_CONFIG": dict(TANSU_CONSUMER_SETTINGS),
        "CONSUMER_TIMEOUT": 0.5,
    }
    values.update(settings)
    path.write_text("".join(f"{key} = {value!r}\n" for key, value in values.items()))
    return path


async def start_app(
    config_path: Path, endpoint: str | None = None, scheme: str = "http", port: int = 0
) -> Server:
    """Build flasfka with makeService from a config file and start it on a free port."""
    from twisted.internet import reactor

    port = port or free_port()
    options = Options()
    options.parseOptions(
        ["--config", str(config_path), "--port", endpoint or f"tcp:{port}:interface=127.0.0.1"]
    )
    service = makeService(options, reactor)
    service.startService()
    return Server(f"{scheme}://127.0.0.1:{port}", service, load_config(str(config_path)))


async def metrics(url: str, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    response = await treq.get(url + "/metrics", **kwargs)
    assert response.code == 200
    assert response.headers.getRawHeaders("Content-Type")[0].startswith("text/plain")
    text = (await response.content()).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 if absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Collect every twisted.logger event emitted inside the block."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


def process_env(**extra: str) -> dict[str, str]:
    """Environment for flasfka child processes: the venv's twistd first, this source tree."""
    env = subprocess_env(**extra)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start argv with stdout and stderr to log_path (no reactor work: Popen returns at once)."""
    out = open(log_path, "wb")
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=process_env())
    finally:
        out.close()


async def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait (in a thread) up to timeout for process to exit; its code, None if it did not."""

    def wait() -> int | None:
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    return await threads.deferToThread(wait)


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll GET /readyz until 200 (fail if the process exits or time runs out)."""
    from tests.support.helpers import sleep

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"flasfka exited with {process.returncode}"
        try:
            response = await treq.get(url + "/readyz", persistent=False)
            await response.content()
            if response.code == 200:
                return
        except Exception:
            pass
        await sleep(0.2)
    raise AssertionError(f"{url}/readyz not 200 within {timeout} s")
