"""Child processes of the benchmark: the broker, flasfka, the bare Klein app, wrk."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flasfka.app.broker import free_port, tansu_binary, tansu_command
from tests.support.servers import wait_for_port

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


class Children:
    """Long-running child processes, all killed on exit."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the children, in start order."""
        return [proc.pid for proc in self._procs]

    def start(self, name: str, argv: list[str], port: int, **env: str) -> None:
        """Start argv (output to logs/name.log) and wait until it listens on port."""
        log = open(self._logs / f"{name}.log", "wb")  # kept open for the child
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=BENCH.parent
        )
        self._procs.append(proc)
        wait_for_port(port, timeout=15.0)
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at start; see {self._logs / name}.log")

    def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL)."""
        for proc in reversed(self._procs):
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class Servers:
    """Where the broker, flasfka and the bare Klein app listen."""

    broker: str
    flasfka: str
    bare: str


def start_all(children: Children) -> Servers:
    """Start Tansu, flasfka (its own process, on Tansu) and the bare Klein app."""
    kafka_port, flasfka_port, bare_port = free_port(), free_port(), free_port()
    children.start("tansu", tansu_command(tansu_binary(), kafka_port), kafka_port)
    broker = f"127.0.0.1:{kafka_port}"
    serve = str(VENV_BIN / "flasfka-serve")
    children.start(
        "flasfka",
        [serve, "-p", str(flasfka_port), "--config", "bench/benchconf.py"],
        flasfka_port,
        BENCH_KAFKA=broker,
        PYTHONPATH=str(BENCH.parent),  # this tree's code, even if the venv's copy is older
    )
    children.start(
        "bare_klein", [sys.executable, "-m", "bench.bare_klein", str(bare_port)], bare_port
    )
    return Servers(broker, f"http://127.0.0.1:{flasfka_port}", f"http://127.0.0.1:{bare_port}")


def fresh_rounds(
    work: Path, repeats: int, measure: Callable[[Servers], dict[str, float]]
) -> list[dict[str, float]]:
    """measure() on fresh processes (start_all, logs in work/roundN) repeats times; prints
    each round's figures as it ends.

    Fresh processes each round: Tansu keeps every record in memory, and its produce path
    slows as it fills (a round leaves millions of records behind).
    """
    rounds = []
    for i in range(repeats):
        logs = work / f"round{i + 1}"
        logs.mkdir()
        children = Children(logs)
        try:
            rounds.append(measure(start_all(children)))
        finally:
            children.stop()
        print(f"round {i + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in rounds[-1].items()))
    return rounds


def run_alone(
    description: str, name: str, measure: Callable[[Servers, float], dict[str, float]]
) -> tuple[dict[str, float], int, float]:
    """A bench module run on its own: parse --repeats and --seconds, run measure on fresh
    processes that many times; (the medians of its figures, repeats, seconds)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"flasfka-bench-{name}-"))
    rounds = fresh_rounds(work, args.repeats, lambda servers: measure(servers, args.seconds))
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    return medians, args.repeats, args.seconds


def kafka_direct(*args: str | int) -> dict:
    """Run bench.kafka_direct (its own process) and return its JSON result."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.kafka_direct", *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        cwd=BENCH.parent,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def wrk_binary() -> str:
    """wrk's path, or exit with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does it)")
    return path
