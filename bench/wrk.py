"""Drive load with wrk and bench/load.lua; refuse any run with a non-2xx or a socket error."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from bench.procs import BENCH, wrk_binary


class BenchFailure(SystemExit):
    """A run whose results cannot be trusted (non-2xx, socket errors, lost messages)."""


@dataclass
class WrkResult:
    """What one wrk run measured; only 2xx responses count."""

    seconds: float
    ok: int
    messages: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """2xx responses per second."""
        return self.ok / self.seconds


def run_wrk(
    base: str,
    method: str,
    path: str,
    body_file: str = "-",
    connections: int = 16,
    seconds: float = 5,
    delay_ms: float = 0,
    script: str = "load.lua",
    script_args: tuple[str, ...] | None = None,
    content_type: str = "application/json",
) -> WrkResult:
    """One wrk run (one thread, connections open); fail loudly on anything but 2xx.

    script (in bench/) gets METHOD PATH BODY_FILE DELAY_MS, or script_args if given.
    """
    argv = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / script),
        base,
        "--",
        *(script_args or (method, path, body_file, f"{delay_ms:.3f}")),
    ]
    env = {
        **os.environ,
        "BENCH_DELAY_MS": f"{delay_ms:.3f}",
        "BENCH_CONTENT_TYPE": content_type,
        # The scripts require "results" (bench/results.lua); ";;" keeps Lua's default path.
        "LUA_PATH": f"{BENCH}/?.lua;{os.environ.get('LUA_PATH', ';')}",
    }
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode:
        raise BenchFailure(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    out = done.stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise BenchFailure(f"wrk printed no result:\n{out}")
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    statuses = {int(k): v for k, v in result["statuses"].items()}
    bad = {k: v for k, v in statuses.items() if not 200 <= k < 300}
    errors = {k: v for k, v in result["errors"].items() if v}
    if bad or errors:
        raise BenchFailure(f"{method} {base}{path}: non-2xx {bad}, socket errors {errors}")
    ok = sum(statuses.values())
    if ok == 0:
        raise BenchFailure(f"{method} {base}{path}: no response at all")
    return WrkResult(
        seconds=result["duration_us"] / 1e6,
        ok=ok,
        messages=result["messages"],
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
    )
