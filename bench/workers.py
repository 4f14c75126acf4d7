"""`python -m bench --workers`: flasfka with 1 and with 2 worker processes, compared.

For each worker count: requests per second at full speed (POST 1, POST 100, GET limit=1000,
wrk closed loop), then the CPU time of every flasfka process (parent and workers, from
/proc/<pid>/stat) per request at one offered rate that both counts sustain (well below
saturation), then the CPU each process costs when idle. On a 2-core machine wrk and Tansu
share the cores with the workers: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

from bench.procs import BENCH, VENV_BIN, Children, kafka_direct
from bench.wrk import BenchFailure, run_wrk
from flasfka.app.broker import free_port, tansu_binary, tansu_command
from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS

CONNECTIONS = 16
SECONDS = 5.0
MESSAGE = "bench-" + "x" * 94
#: Messages in the topic the GET runs read (each run reads it as a group of its own).
PREFILL = 3_000_000
#: Offered rates for the CPU-per-request runs (req/s), far below either count's maximum.
PACED = {"post1": 1000, "post100": 150, "get1000": 40}
_TICK = os.sysconf("SC_CLK_TCK")
#: Seconds the idle CPU is measured over (/proc counts in ticks of 10 ms).
IDLE_SECONDS = 10.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by pids (those still running)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / _TICK


def process_tree(parent: int) -> list[int]:
    """parent and its child processes (the workers)."""
    pids = [parent]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204, response.status


def _get(url: str) -> tuple[list, str]:
    with urllib.request.urlopen(url, timeout=60) as response:
        worker = response.headers.get("X-Flasfka-Worker", "1")
        return orjson.loads(response.read())["messages"], worker


def _joined(base: str, path: str, workers: int) -> None:
    """GET until every worker's member of the group returned messages (group join)."""
    seen: set[str] = set()
    deadline = time.monotonic() + 90
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise BenchFailure(f"{path}: only workers {seen} returned messages in 90 s")
        messages, worker = _get(f"{base}{path}?limit=1")
        if messages:
            seen.add(worker)
    time.sleep(1)  # let the members fill their buffers, as long-lived ones would have


def _access_lines(log: Path) -> dict[str, int]:
    """Access log lines per worker so far."""
    text = log.read_text(errors="replace")
    counts: dict[str, int] = {}
    for worker in re.findall(r"\[worker (\d+) flasfka\.access#", text):
        counts[worker] = counts.get(worker, 0) + 1
    return counts


def measure(workers: int, broker: str, topic: str, bodies: dict[str, str], logs: Path) -> dict:
    """Every figure for one worker count, on a fresh flasfka."""
    children = Children(logs)
    port = free_port()
    config = logs / f"bench-{workers}.py"
    config.write_text(
        f"HOSTS = [{broker!r}]\nCONSUMER_CONFIG = {dict(TANSU_CONSUMER_SETTINGS)!r}\n"
        "TOPIC_PARTITIONS = 4\n"
    )
    name = f"flasfka-{workers}w"
    argv = [str(VENV_BIN / "flasfka-serve"), "-p", str(port), "--config", str(config)]
    children.start(name, [*argv, "--workers", str(workers)], port, PYTHONPATH=str(BENCH.parent))
    base = f"http://127.0.0.1:{port}"
    f: dict[str, float] = {}
    try:
        parent = children.pids[-1]
        time.sleep(3)  # every worker up
        pids = process_tree(parent)
        f["processes"] = len(pids)
        before = cpu_seconds(pids)
        time.sleep(IDLE_SECONDS)
        f["idle_ms_per_s"] = (cpu_seconds(pids) - before) * 1000 / IDLE_SECONDS
        post_topic = f"bench-w{workers}-{uuid.uuid4().hex[:6]}"
        _post(f"{base}/{post_topic}/", b'{"messages": ["bench-first"]}')
        for key, n in (("post1", 1), ("post100", 100)):
            start = _access_lines(logs / f"{name}.log")
            full = run_wrk(base, "POST", f"/{post_topic}/", bodies[key], CONNECTIONS, SECONDS)
            f[f"{key}_rps"] = full.rate
            f[f"{key}_msgs"] = full.rate * n
            if key == "post1":
                end = _access_lines(logs / f"{name}.log")
                split = sorted(end.get(w, 0) - start.get(w, 0) for w in end)
                f["post1_split"] = split[0] / max(1, sum(split)) if workers > 1 else 1.0
        for key in ("post1", "post100"):
            rate = PACED[key]
            before = cpu_seconds(pids)
            paced = run_wrk(
                base,
                "POST",
                f"/{post_topic}/",
                bodies[key],
                CONNECTIONS,
                SECONDS,
                CONNECTIONS * 1000 / rate,
            )
            f[f"{key}_cpu_us"] = (cpu_seconds(pids) - before) * 1e6 / paced.ok
            f[f"{key}_paced_rps"] = paced.rate
        # Groups of their own each run: a group of an earlier run would start where it
        # stopped, and on a fast machine two full-speed runs read the whole topic.
        run = uuid.uuid4().hex[:6]
        groups = ((f"full{workers}-{run}", 0), (f"paced{workers}-{run}", PACED["get1000"]))
        for group, paced_rate in groups:
            path = f"/{topic}/{group}/"
            _joined(base, path, workers)
            before = cpu_seconds(pids)
            delay = CONNECTIONS * 1000 / paced_rate if paced_rate else 0
            got = run_wrk(base, "GET", f"{path}?limit=1000", "-", CONNECTIONS, SECONDS, delay)
            if paced_rate:
                f["get1000_cpu_us"] = (cpu_seconds(pids) - before) * 1e6 / got.ok
                f["get1000_paced_rps"] = got.rate
            else:
                f["get1000_msgs"] = got.messages / got.seconds
                f["get1000_rps"] = got.rate
    finally:
        children.stop()
    return f


def table(results: dict[int, dict]) -> str:
    """The two worker counts side by side, with the ratio 2 workers / 1 worker."""
    one, two = results[1], results[2]
    rows = [("measure", "1 worker", "2 workers", "2w / 1w")]

    def row(label: str, key: str, fmt: str = "{:,.0f}") -> None:
        rows.append(
            (label, fmt.format(one[key]), fmt.format(two[key]), f"{two[key] / one[key]:.2f}")
        )

    row("POST 1 msg, req/s", "post1_rps")
    row("POST 100 msgs, req/s", "post100_rps")
    row("POST 100 msgs, msg/s", "post100_msgs")
    row("GET limit=1000, req/s", "get1000_rps")
    row("GET limit=1000, msg/s", "get1000_msgs")
    row(f"CPU us per POST 1 at {PACED['post1']} req/s", "post1_cpu_us")
    row(f"CPU us per POST 100 at {PACED['post100']} req/s", "post100_cpu_us")
    row(f"CPU us per GET 1000 at {PACED['get1000']} req/s", "get1000_cpu_us")
    row("CPU ms per s, idle (all processes)", "idle_ms_per_s", "{:.1f}")
    rows.append(("smaller worker's share of POST 1", "-", f"{two['post1_split']:.0%}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(repeats: int = 2) -> None:
    """Tansu, a pre-filled topic, then flasfka with 1 and with 2 workers; print the table."""
    work = Path(tempfile.mkdtemp(prefix="flasfka-bench-workers-"))
    bodies = {}
    for key, n in (("post1", 1), ("post100", 100)):
        bodies[key] = str(work / f"{key}.json")
        Path(bodies[key]).write_bytes(orjson.dumps({"messages": [MESSAGE] * n}))
    children = Children(work)
    kafka_port = free_port()
    children.start("tansu", tansu_command(tansu_binary(), kafka_port), kafka_port)
    broker = f"127.0.0.1:{kafka_port}"
    results = {}
    try:
        topic = f"bench-workers-get-{uuid.uuid4().hex[:6]}"
        # The topic gets 4 partitions (TOPIC_PARTITIONS) from a flasfka POST, then is filled.
        probe = Children(work)
        probe_port = free_port()
        config = work / "create.py"
        config.write_text(
            f"HOSTS = [{broker!r}]\nCONSUMER_CONFIG = {dict(TANSU_CONSUMER_SETTINGS)!r}\n"
            "TOPIC_PARTITIONS = 4\n"
        )
        serve = [str(VENV_BIN / "flasfka-serve"), "-p", str(probe_port), "--config", str(config)]
        probe.start("create", serve, probe_port, PYTHONPATH=str(BENCH.parent))
        try:
            _post(f"http://127.0.0.1:{probe_port}/{topic}/", b'{"messages": ["bench-first"]}')
        finally:
            probe.stop()
        kafka_direct("produce", broker, topic, PREFILL)
        # ABBA order, so that a drift of the machine's load weighs on both counts alike.
        order = [1, 2, 2, 1] * (repeats // 2) + [1, 2] * (repeats % 2)
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for i, workers in enumerate(order):
            logs = work / f"run{i + 1}"
            logs.mkdir()
            runs[workers].append(measure(workers, broker, topic, bodies, logs))
            figures = ", ".join(f"{k}={v:.4g}" for k, v in runs[workers][-1].items())
            print(f"{workers} worker(s): {figures}", flush=True)
        for workers, measured in runs.items():
            results[workers] = {k: statistics.median(m[k] for m in measured) for k in measured[0]}
    finally:
        children.stop()
    print(f"\nflasfka with worker processes: medians of {repeats} runs each (ABBA order),")
    print(f"wrk -t1 -c{CONNECTIONS}, {SECONDS:g} s per run, {os.cpu_count()} CPUs shared")
    print(f"with wrk and Tansu (logs: {work})")
    print(table(results))
