"""POST 1 msg with HTTP Basic auth on vs off: the cost of the guard (``python -m bench --auth``).

Two flasfka processes on one Tansu, one without USERS (auth off), one with a user and an ACL
(auth on); wrk POSTs the same one-message body to each, in alternating runs, the "on" runs
with an Authorization header on every request (the verified-credential cache means one
scrypt per connection's first request at most). Every run must be all 2xx.
"""

from __future__ import annotations

import base64
import os
import re
import statistics
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bench.procs import VENV_BIN, Children, wrk_binary
from flasfka.app.broker import free_port, tansu_binary, tansu_command
from flasfka.security.hashing import hash_password

CONNECTIONS = 16
MESSAGE = "bench-" + "x" * 94
PASSWORD = "bench-password"

_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"messages": ["%(message)s"]}'
wrk.headers["Content-Type"] = "application/json"
%(auth)s
"""


def _config(path: Path, broker: str, auth: bool) -> Path:
    lines = [
        "from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS as _TANSU",
        f"HOSTS = [{broker!r}]",
        "CONSUMER_CONFIG = dict(_TANSU)",
    ]
    if auth:
        lines.append(f"USERS = {{'bench': {hash_password(PASSWORD)!r}}}")
        lines.append(
            "ACL = [{'principal': 'bench', 'topics': '*', 'allow': ['produce', 'create']}]"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process pid (all its threads) used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, script: Path, seconds: float, pid: int) -> tuple[float, float]:
    """(requests/s, flasfka CPU microseconds per request) of one run; all must be 2xx."""
    cpu = _cpu_seconds(pid)
    out = subprocess.run(
        [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"bench.auth: a run was not all 2xx:\n{out}")
    cpu = _cpu_seconds(pid) - cpu
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if found is None or count is None:
        raise SystemExit(f"bench.auth: wrk printed no rate:\n{out}")
    return float(found.group(1)), cpu * 1e6 / max(1, int(count.group(1)))


def _check_refused(url: str) -> None:
    """The "on" server really refuses a POST without credentials."""
    request = urllib.request.Request(url, data=b'{"messages": ["x"]}', method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as e:
        if e.code == 401:
            return
    raise SystemExit("bench.auth: the auth-on server accepted a POST without credentials")


def measure(seconds: float = 5, repeats: int = 3) -> dict[str, float]:
    """Median req/s of POST 1 msg with auth off and on, and their ratio."""
    work = Path(tempfile.mkdtemp(prefix="flasfka-bench-auth-"))
    children = Children(work)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpus: dict[str, list[float]] = {"off": [], "on": []}
    pids = {}
    try:
        kafka_port = free_port()
        children.start("tansu", tansu_command(tansu_binary(), kafka_port), kafka_port)
        broker = f"127.0.0.1:{kafka_port}"
        urls = {}
        for mode in ("off", "on"):
            port = free_port()
            config = _config(work / f"auth-{mode}.py", broker, mode == "on")
            serve = str(VENV_BIN / "flasfka-serve")
            children.start(
                f"flasfka-{mode}",
                [serve, "-p", str(port), "--config", str(config)],
                port,
                PYTHONPATH=str(Path(__file__).resolve().parents[1]),
            )
            urls[mode] = f"http://127.0.0.1:{port}/bench-auth-{mode}/"
            pids[mode] = children._procs[-1].pid  # the process just started
        _check_refused(urls["on"])
        credential = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        scripts = {}
        for mode in ("off", "on"):
            auth = f'wrk.headers["Authorization"] = "Basic {credential}"' if mode == "on" else ""
            scripts[mode] = work / f"auth-{mode}.lua"
            scripts[mode].write_text(_SCRIPT % {"message": MESSAGE, "auth": auth})
            _wrk(urls[mode], scripts[mode], 3, pids[mode])  # creates the topic, warms up
        for i in range(repeats):
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):  # no order bias
                rate, cpu = _wrk(urls[mode], scripts[mode], seconds, pids[mode])
                rates[mode].append(rate)
                cpus[mode].append(cpu)
    finally:
        children.stop()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    cpu_off, cpu_on = statistics.median(cpus["off"]), statistics.median(cpus["on"])
    return {
        "post1_auth_off": off,
        "post1_auth_on": on,
        "post1_auth_ratio": on / off,
        "post1_cpu_us_off": cpu_off,
        "post1_cpu_us_on": cpu_on,
    }


def report(seconds: float = 5, repeats: int = 3) -> str:
    """One line: the medians and the ratio (target >= 90 %)."""
    f = measure(seconds, repeats)
    return (
        f"POST 1 msg, req/s: auth off {f['post1_auth_off']:,.0f}, Basic auth on "
        f"{f['post1_auth_on']:,.0f} = {f['post1_auth_ratio']:.0%} (target >= 90%); flasfka "
        f"CPU per request {f['post1_cpu_us_off']:.0f} us off, {f['post1_cpu_us_on']:.0f} us on "
        f"({f['post1_cpu_us_off'] / f['post1_cpu_us_on']:.0%} as many requests per CPU second); "
        f"medians of {repeats} runs of {seconds:g} s, wrk -t1 -c{CONNECTIONS}"
    )


if __name__ == "__main__":
    print(report())
