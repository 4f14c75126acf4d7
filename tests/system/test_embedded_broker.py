"""flasfka-serve --embedded-broker as a process: how its Tansu child stops, and what its death does.

A Tansu that dies under flasfka took every message with it, so flasfka logs that and exits
(status 1) rather than answer 503 for ever; SIGTERM or a terminal's Ctrl-C stops Tansu
last, at once, with no SIGKILL; and a flasfka killed outright does not leave Tansu behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
import treq

from flasfka.app.broker import free_port
from tests.support.helpers import sleep
from tests.support.ops import process_env, wait_exit, wait_ready
from tests.support.servers import unique

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds Tansu through /proc"
)

#: A clean stop takes well under a second; the bug it guards against took 5 s.
STOP_SECONDS = 4.0


class Serving:
    """A flasfka-serve --embedded-broker child (in a session of its own), its URL and log."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = tmp_path / f"serve-{port}.log"
        argv = ["flasfka-serve", "--embedded-broker", "-p", str(port), *args]
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=process_env(**env),
                start_new_session=True,  # a process group of its own, as in a terminal
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tansu(self) -> int:
        """The pid of the Tansu child (children of every thread, from /proc)."""
        pid = self.process.pid
        found = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"--listener-url" in cmdline:
                    found.append(int(child))
        assert len(found) == 1, found
        return found[0]

    async def exit_code(self, timeout: float) -> int | None:
        """The exit status if it exits within timeout, else None."""
        return await wait_exit(self.process, timeout)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[list[Serving]]:
    """Started Servings go here; whichever still runs after the test is killed."""
    started: list[Serving] = []
    yield started
    for each in started:
        each.cleanup()


async def start(started: list[Serving], tmp_path: Path, *args: str) -> Serving:
    running = Serving(tmp_path, *args)
    started.append(running)
    await wait_ready(running.url, running.process, timeout=60)
    return running


def gone(pid: int) -> bool:
    """Whether pid exited (a zombie whose parent has not reaped it yet counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def until_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        await sleep(0.05)
    return True


@pytest.mark.parametrize(
    "sig, how",
    [
        (signal.SIGKILL, "signal 9 (SIGKILL)"),
        # Tansu waits up to 5 s for connected clients after a SIGTERM, then exits 0.
        (signal.SIGTERM, "exit code 0"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_dead_broker_is_logged_and_stops_flasfka(serving, tmp_path, sig, how):
    running = await start(serving, tmp_path)
    tansu = running.tansu()
    assert os.getpgid(tansu) == tansu != os.getpgid(running.process.pid)  # a group of its own
    os.kill(tansu, sig)
    assert await running.exit_code(20) == 1, running.log()
    log = running.log()
    assert (
        f"[flasfka.broker#error] embedded Tansu broker (pid {tansu}) exited unexpectedly "
        f"with {how}: it kept every topic, message and committed offset in memory, all of "
        "which are lost. Stopping flasfka" in log
    ), log
    assert "Main loop terminated." in log  # the graceful shutdown, not a crash


@pytest_twisted.ensureDeferred
async def test_sigterm_stops_tansu_at_once_without_sigkill(serving, tmp_path):
    running = await start(serving, tmp_path)
    tansu = running.tansu()
    response = await treq.post(f"{running.url}/{unique()}/", b'{"messages": ["m"]}')
    assert response.code == 204, await response.text()
    began = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    assert await running.exit_code(30) == 0, running.log()
    took = time.monotonic() - began
    log = running.log()
    assert took < STOP_SECONDS, log
    assert "[flasfka.broker#info] embedded Tansu broker stopped (exit code 0)" in log
    assert "signal 9" not in log and "still running" not in log, log
    assert "#error]" not in log and "unexpectedly" not in log, log
    assert gone(tansu)


@pytest_twisted.ensureDeferred
async def test_ctrl_c_reaches_flasfka_only_which_stops_tansu_last(serving, tmp_path):
    """A terminal's Ctrl-C signals the foreground process group, Tansu not included."""
    running = await start(serving, tmp_path)
    tansu = running.tansu()
    os.killpg(running.process.pid, signal.SIGINT)
    assert await running.exit_code(30) == 0, running.log()
    log = running.log()
    assert "[flasfka.broker#info] embedded Tansu broker stopped (exit code 0)" in log
    assert "unexpectedly" not in log and "lost its connection" not in log, log
    assert gone(tansu)


@pytest_twisted.ensureDeferred
async def test_a_broker_that_cannot_start_stops_flasfka(serving, tmp_path):
    failing = shutil.which("false")
    assert failing is not None
    running = Serving(tmp_path, CALF_TANSU_BIN=failing)
    serving.append(running)
    assert await running.exit_code(30) == 1, running.log()
    assert "exited unexpectedly with exit code 1" in running.log()


@pytest_twisted.ensureDeferred
async def test_a_dead_broker_stops_every_worker(serving, tmp_path):
    running = await start(serving, tmp_path, "--workers", "2")
    tansu = running.tansu()
    workers = [
        int(c)
        for c in Path(f"/proc/{running.process.pid}/task/{running.process.pid}/children")
        .read_text()
        .split()
        if int(c) != tansu
    ]
    assert len(workers) == 2
    os.kill(tansu, signal.SIGKILL)
    assert await running.exit_code(30) == 1, running.log()
    assert "exited unexpectedly with signal 9 (SIGKILL)" in running.log()
    assert all(gone(pid) for pid in workers)


@pytest_twisted.ensureDeferred
async def test_tansu_does_not_outlive_a_killed_flasfka(serving, tmp_path):
    running = await start(serving, tmp_path)
    tansu = running.tansu()
    running.process.kill()
    running.process.wait(10)
    assert await until_gone(tansu, 10), f"Tansu {tansu} outlived flasfka"
