"""Long-poll wake-up: from a POST's 204 to the answer of the GET it woke, 100 GETs waiting.

The scenario is a job queue: 100 workers long-poll one group (``GET /{topic}/{group}/
?timeout=30&limit=1``, one connection each), and each POST of one message wakes one of them.
The client then sends one POST at a time (after a random pause of 5-25 ms, so that POSTs fall
at random points of the consumer's fetch cycle) and notes when its 204 arrives and when the
GET that got its message answers; that GET's worker polls again at once, so 100 stay waiting.
The sample is the time between the two. With --fan-out, also 100 groups with one GET waiting
each, every POST waking all of them (fan_out_round; not in ``make bench``'s table).

Baseline (the client's own cost, same process, same loop): the bare Klein app's POST, then on
its 204 a GET on one of 100 open connections, which that server answers at once.

The client is a small asyncio HTTP/1.1 client in its own process (one connection per poll,
no library in the way). Run alone:
``python -m bench.longpoll [--repeats 3] [--samples 300] [--fan-out]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from bench.procs import BENCH, Servers, fresh_rounds
from bench.wrk import BenchFailure

#: GETs waiting at once.
POLLS = 100
#: POSTs measured per run.
SAMPLES = 300
#: Seconds to wait for a GET to answer before the run fails.
ANSWER_TIMEOUT = 10.0


class _Connection:
    """One keep-alive HTTP/1.1 connection (answers with a Content-Length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, method: str, path: str, body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        if method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self._writer.write(head.encode() + b"\r\n" + body)

    async def answer(self) -> tuple[int, bytes]:
        """The next response's status and body."""
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
        if not chunked:
            return status, await self._reader.readexactly(length) if length else b""
        parts = []
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        await self._reader.readuntil(b"\r\n")  # no trailers
        return status, b"".join(parts)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.send(method, path, body)
        return await self.answer()

    def close(self) -> None:
        self._writer.close()


def _host_port(base: str) -> tuple[str, int]:
    host, _, port = base.removeprefix("http://").partition(":")
    return host, int(port)


async def _first_message(connection: _Connection, topic: str, group: str) -> None:
    """GET (topic, group) until a message comes: the group was joined."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = await connection.request("GET", f"/{topic}/{group}/?timeout=5&limit=1")
        if status != 200:
            raise BenchFailure(f"GET {status}: {body[:200]!r}")
        if orjson.loads(body)["messages"]:
            return
    raise BenchFailure(f"{topic}/{group}: the group join took over 60 s")


class _Arrivals:
    """The GETs' answers, by message: when each arrived (one per group that got it)."""

    def __init__(self) -> None:
        self.answered: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self._arrived = asyncio.Event()

    async def poll(self, connection: _Connection, path: str) -> None:
        """GET path on connection again and again, noting what each answer brought."""
        while True:
            status, body = await connection.request("GET", path)
            now = time.perf_counter()
            if status != 200:
                self.failures.append(f"GET {status}: {body[:200]!r}")
                self._arrived.set()
                return
            for message in orjson.loads(body)["messages"]:
                self.answered.setdefault(message, []).append(now)
            self._arrived.set()

    async def post(
        self, poster: _Connection, topic: str, message: str, answers: int
    ) -> list[float]:
        """POST message to topic; seconds from its 204 to each of its first answers GETs."""
        status, body = await poster.request(
            "POST", f"/{topic}/", orjson.dumps({"messages": [message]})
        )
        posted = time.perf_counter()
        if status != 204:
            raise BenchFailure(f"POST {status}: {body[:200]!r}")
        deadline = posted + ANSWER_TIMEOUT
        while len(self.answered.get(message, ())) < answers and not self.failures:
            self._arrived.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchFailure(
                    f"{message}: {answers} GETs did not answer in {ANSWER_TIMEOUT} s"
                )
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
        if self.failures:
            raise BenchFailure(self.failures[0])
        return sorted(t - posted for t in self.answered.pop(message))


async def _measure(
    poster: _Connection,
    connections: list[_Connection],
    pollers: list[asyncio.Task[None]],
    arrivals: _Arrivals,
    topic: str,
    answers: int,
    samples: int,
    settle: float,
) -> list[float]:
    """One POST at a time (random 5-25 ms apart) once the pollers have settled; the seconds
    to each of its answers, in order; closes everything."""
    await asyncio.sleep(settle)  # every GET is waiting on the server
    latencies: list[float] = []
    try:
        for i in range(samples):
            await asyncio.sleep(random.uniform(0.005, 0.025))
            latencies.extend(await arrivals.post(poster, topic, f"lp-{i}", answers))
    finally:
        for task in pollers:
            task.cancel()
        for c in [*connections, poster]:
            c.close()
    return latencies


async def _wake_ups(base: str, topic: str, group: str, polls: int, samples: int) -> list[float]:
    """POST one message at a time to topic; seconds from each 204 to its GET's answer."""
    host, port = _host_port(base)
    path = f"/{topic}/{group}/?timeout=30&limit=1"
    arrivals = _Arrivals()
    connections = [await _Connection.open(host, port) for _ in range(polls)]
    poster = await _Connection.open(host, port)
    pollers = [asyncio.create_task(arrivals.poll(c, path)) for c in connections]
    return await _measure(poster, connections, pollers, arrivals, topic, 1, samples, 1.0)


async def _immediate(base: str, polls: int, samples: int) -> list[float]:
    """The baseline: seconds from a bare POST's 204 to a bare GET's answer, sent on its 204."""
    host, port = _host_port(base)
    connections = [await _Connection.open(host, port) for _ in range(polls)]
    poster = await _Connection.open(host, port)
    latencies = []
    body = orjson.dumps({"messages": ["x"]})
    try:
        for i in range(samples):
            await asyncio.sleep(random.uniform(0.005, 0.025))
            status, _ = await poster.request("POST", "/bare/", body)
            posted = time.perf_counter()
            status_get, _ = await connections[i % polls].request("GET", "/bare/g/?limit=1")
            latencies.append(time.perf_counter() - posted)
            if (status, status_get) != (204, 200):
                raise BenchFailure(f"bare Klein answered {status} and {status_get}")
    finally:
        for c in [*connections, poster]:
            c.close()
    return latencies


async def _fan_out(base: str, topic: str, groups: int, samples: int) -> list[float]:
    """One GET waiting in each of groups groups; per POST, seconds to each group's answer.

    Returns groups samples per POST, in order (so the last of each run of groups is the
    slowest GET of that POST only after sorting; see fan_out_round).
    """
    host, port = _host_port(base)
    arrivals = _Arrivals()

    async def joined(group: str) -> _Connection:
        connection = await _Connection.open(host, port)
        await _first_message(connection, topic, group)
        return connection

    names = [f"fan-{i}" for i in range(groups)]
    connections = list(await asyncio.gather(*[joined(name) for name in names]))
    poster = await _Connection.open(host, port)
    pollers = [
        asyncio.create_task(arrivals.poll(c, f"/{topic}/{n}/?timeout=30&limit=1"))
        for c, n in zip(connections, names, strict=True)
    ]
    return await _measure(poster, connections, pollers, arrivals, topic, groups, samples, 2.0)


def _client_main(argv: list[str]) -> None:
    """In the client process: run one measurement and print its samples (ms) as JSON."""
    kind, base, polls, samples = argv[0], argv[1], int(argv[2]), int(argv[3])
    if kind == "bare":
        seconds = asyncio.run(_immediate(base, polls, samples))
    elif kind == "fan-out":
        seconds = asyncio.run(_fan_out(base, argv[4], polls, samples))
    else:
        topic, group = argv[4], argv[5]
        seconds = asyncio.run(_wake_ups(base, topic, group, polls, samples))
    print(json.dumps([s * 1000 for s in seconds]))


def _client(*args: str | int) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.longpoll", "--client", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=BENCH.parent,
    )
    if done.returncode:
        raise BenchFailure(f"long-poll client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of samples (nearest rank)."""
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": ordered[-1]}


def _joined(servers: Servers, topic: str, group: str) -> None:
    """Create the topic and let (topic, group) join its group before the polls start."""
    host, port = _host_port(servers.flasfka)

    async def join() -> None:
        c = await _Connection.open(host, port)
        try:
            status, body = await c.request("POST", f"/{topic}/", b'{"messages": ["first"]}')
            if status != 204:
                raise BenchFailure(f"POST {status}: {body[:200]!r}")
            await _first_message(c, topic, group)
        finally:
            c.close()

    asyncio.run(join())


def longpoll_round(
    servers: Servers, samples: int = SAMPLES, polls: int = POLLS
) -> dict[str, float]:
    """The one-group wake-up and the bare baseline, from one set of processes (ms)."""
    topic, group = f"bench-lp-{uuid.uuid4().hex[:8]}", "workers"
    _joined(servers, topic, group)
    f: dict[str, float] = {}
    wake = percentiles(_client("flasfka", servers.flasfka, polls, samples, topic, group))
    bare = percentiles(_client("bare", servers.bare, polls, samples))
    for name, value in wake.items():
        f[f"longpoll_{name}"] = value
    for name, value in bare.items():
        f[f"longpoll_bare_{name}"] = value
    return f


def fan_out_round(servers: Servers, samples: int, groups: int = POLLS) -> dict[str, float]:
    """groups groups with a GET waiting each, all woken by each POST (ms): every GET's
    wake-up, and the slowest of each POST's (all groups served)."""
    topic = f"bench-fan-{uuid.uuid4().hex[:8]}"
    host, port = _host_port(servers.flasfka)

    async def create() -> None:
        c = await _Connection.open(host, port)
        status, body = await c.request("POST", f"/{topic}/", b'{"messages": ["first"]}')
        c.close()
        if status != 204:
            raise BenchFailure(f"POST {status}: {body[:200]!r}")

    asyncio.run(create())
    every = _client("fan-out", servers.flasfka, groups, samples, topic)
    slowest = [max(every[i : i + groups]) for i in range(0, len(every), groups)]
    f = {f"fan_{k}": v for k, v in percentiles(every).items()}
    f.update({f"fan_last_{k}": v for k, v in percentiles(slowest).items()})
    return f


def report(rounds: list[dict[str, float]]) -> str:
    """Medians of the rounds, and each round's p99, as text."""
    m = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    each = ", ".join(f"{r['longpoll_p99']:.1f}" for r in rounds)
    return (
        f"long-poll wake-up, {POLLS} GETs waiting on one group, POST 204 -> GET answer:\n"
        f"  flasfka   p50 {m['longpoll_p50']:.1f}  p90 {m['longpoll_p90']:.1f}  "
        f"p99 {m['longpoll_p99']:.1f}  max {m['longpoll_max']:.1f} ms "
        f"(p99 of each round: {each}; target p99 < 20 ms)\n"
        f"  baseline  p50 {m['longpoll_bare_p50']:.1f}  p90 {m['longpoll_bare_p90']:.1f}  "
        f"p99 {m['longpoll_bare_p99']:.1f}  max {m['longpoll_bare_max']:.1f} ms "
        "(bare Klein answering at once: the client's own cost)"
    ) + (
        f"\n{POLLS} groups with a GET waiting each, every POST wakes all of them:\n"
        f"  every GET p50 {m['fan_p50']:.1f}  p90 {m['fan_p90']:.1f}  p99 {m['fan_p99']:.1f}  "
        f"max {m['fan_max']:.1f} ms\n"
        f"  all {POLLS} answered  p50 {m['fan_last_p50']:.1f}  p90 {m['fan_last_p90']:.1f}  "
        f"p99 {m['fan_last_p99']:.1f}  max {m['fan_last_max']:.1f} ms"
        if "fan_p50" in m
        else ""
    )


def run(repeats: int = 3, samples: int = SAMPLES, fan_out: bool = False) -> str:
    """longpoll_round on fresh processes, repeats times; the report of their medians.

    fan_out: also fan_out_round, repeats times, on processes of its own (100 members).
    """
    work = Path(tempfile.mkdtemp(prefix="flasfka-bench-longpoll-"))
    rounds = fresh_rounds(work, repeats, lambda servers: longpoll_round(servers, samples))
    if fan_out:
        (work / "fan-out").mkdir()
        fans = fresh_rounds(
            work / "fan-out", repeats, lambda servers: fan_out_round(servers, samples // 3)
        )
        for figures, fan in zip(rounds, fans, strict=True):
            figures.update(fan)
    return "\n" + report(rounds) + f"\n(logs: {work})"


def main() -> None:
    """The client process (--client ...), or run() with its options."""
    if sys.argv[1:2] == ["--client"]:
        _client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument(
        "--fan-out", action="store_true", help=f"also {POLLS} groups woken by each POST"
    )
    args = parser.parse_args()
    print(run(args.repeats, args.samples, args.fan_out))


if __name__ == "__main__":
    main()
