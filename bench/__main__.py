"""`make bench`: flasfka against its HTTP and Kafka ceilings, measured in one run.

Starts Tansu, flasfka (its own process) and a bare Klein app, drives each with wrk from a
separate process, checks every counted message is in Kafka, and prints one table of medians.
Usage: ``python -m bench [--repeats 3] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

from bench.leases import lease_round
from bench.longpoll import longpoll_round
from bench.procs import Servers, fresh_rounds, kafka_direct
from bench.streams import stream_round
from bench.wrk import BenchFailure, WrkResult, run_wrk

CONNECTIONS = 16
#: A ~100-byte message; the GET script counts values that start with "bench-".
MESSAGE = "bench-" + "x" * 94
#: Messages put in the topic the GET benchmark reads.
PREFILL = 6_000_000
#: Messages the direct producer sends for the Kafka ceiling.
DIRECT_PRODUCE = 500_000
#: Messages the direct consumer reads for the Kafka ceiling.
DIRECT_CONSUME = 1_000_000


def _post_once(base: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(base + path, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204, response.status


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return orjson.loads(response.read())


def _topic(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


def bench_post(
    servers: Servers, body_file: str, per_request: int, seconds: float, delay_ms: float = 0
) -> WrkResult:
    """POST a body to a fresh topic; check that every acknowledged message is in Kafka."""
    topic = _topic(f"post{per_request}")
    body = Path(body_file).read_bytes()
    _post_once(servers.flasfka, f"/{topic}/", body)  # creates the topic
    result = run_wrk(
        servers.flasfka, "POST", f"/{topic}/", body_file, CONNECTIONS, seconds, delay_ms
    )
    counted = (result.ok + 1) * per_request
    records = kafka_direct("count", servers.broker, topic)["records"]
    # Requests still in flight when wrk stopped may have been written without being counted.
    if not counted <= records <= counted + CONNECTIONS * per_request:
        raise BenchFailure(f"{topic}: {counted} messages acknowledged, {records} in Kafka")
    return result


def bench_get(servers: Servers, seconds: float, limit: int) -> tuple[WrkResult, float]:
    """GET ?limit= on a pre-filled topic; returns (wrk result, direct consumer msg/s)."""
    topic = _topic("get")
    kafka_direct("produce", servers.broker, topic, PREFILL)
    path = f"/{topic}/bench/"
    deadline = time.monotonic() + 60
    while not _get_json(f"{servers.flasfka}{path}?limit=1")["messages"]:  # group join
        if time.monotonic() > deadline:
            raise BenchFailure(f"{topic}: flasfka returned nothing for 60 s")
    time.sleep(1)  # let the consumer fill its buffer, as a long-lived one would have
    result = run_wrk(servers.flasfka, "GET", f"{path}?limit={limit}", "-", CONNECTIONS, seconds)
    if result.messages + 1 > PREFILL + 1:  # kafka_direct produces one message first
        raise BenchFailure(f"{topic}: {result.messages + 1} messages read of {PREFILL + 1}")
    # Every message returned was committed first, and none was skipped: the group's committed
    # offsets add up to what was returned (plus GETs answered after wrk stopped counting).
    returned = result.messages + 1
    committed = kafka_direct("committed", servers.broker, topic, "bench")["committed"]
    if not returned <= committed <= returned + limit * CONNECTIONS:
        raise BenchFailure(f"{topic}: {returned} messages returned, {committed} committed")
    if result.messages >= PREFILL - limit * CONNECTIONS:
        print(f"warning: the GET benchmark drained {topic}; raise PREFILL")
    direct = kafka_direct("consume", servers.broker, topic, DIRECT_CONSUME)["rate"]
    return result, direct


def one_round(
    servers: Servers, bodies: dict[int, str], seconds: float, posts_only: bool = False
) -> dict[str, float]:
    """Every measurement once, baselines next to the flasfka figure they divide."""
    f: dict[str, float] = {}
    for n in (1, 100):
        bare = run_wrk(servers.bare, "POST", "/bare/", bodies[n], CONNECTIONS, seconds)
        flas = bench_post(servers, bodies[n], n, seconds)
        f[f"post{n}_bare"] = bare.rate * n
        f[f"post{n}"] = flas.rate * n
        f[f"post{n}_p50"], f[f"post{n}_p99"] = flas.p50_ms, flas.p99_ms
        f[f"post{n}_ratio"] = flas.rate / bare.rate
        if posts_only:
            continue
        # Latency at half the maximum rate: each connection waits between requests.
        # (wrk's delay() runs before each request: pace = connections / rate - latency.)
        half_rate = flas.rate / 2
        delay = max(0.0, CONNECTIONS * 1000 / half_rate - flas.p50_ms)
        paced = bench_post(servers, bodies[n], n, seconds, delay)
        f[f"post{n}_half_rate"] = paced.rate
        f[f"post{n}_half_p50"], f[f"post{n}_half_p99"] = paced.p50_ms, paced.p99_ms
    if posts_only:
        return f
    f["produce_direct"] = kafka_direct("produce", servers.broker, _topic("direct"), DIRECT_PRODUCE)[
        "rate"
    ]
    f["post100_kafka_ratio"] = f["post100"] / f["produce_direct"]
    bare = run_wrk(servers.bare, "GET", "/bare/g/?limit=1000", "-", CONNECTIONS, seconds)
    flas, direct = bench_get(servers, seconds, 1000)
    f["get"] = flas.messages / flas.seconds
    f["get_bare"] = bare.rate * 1000
    f["get_ratio"] = f["get"] / f["get_bare"]
    f["get_p50"], f["get_p99"] = flas.p50_ms, flas.p99_ms
    f["consume_direct"] = direct
    f["get_kafka_ratio"] = f["get"] / direct
    f.update(lease_round(servers, seconds))
    f.update(stream_round(servers, seconds))
    f.update(longpoll_round(servers))
    return f


def table(rounds: list[dict[str, float]]) -> str:
    """The medians of every figure as one text table."""
    m = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    rows = [
        ("measure", "flasfka", "baseline", "ratio", "p50 ms", "p99 ms", "target"),
        (
            "POST 1 msg, req/s",
            f"{m['post1']:,.0f}",
            f"bare Klein {m['post1_bare']:,.0f}",
            f"{m['post1_ratio']:.0%}",
            f"{m['post1_p50']:.1f}",
            f"{m['post1_p99']:.1f}",
            ">= 80% of bare",
        ),
        (
            "POST 100 msgs, msg/s",
            f"{m['post100']:,.0f}",
            f"bare Klein {m['post100_bare']:,.0f}",
            f"{m['post100_ratio']:.0%}",
            f"{m['post100_p50']:.1f}",
            f"{m['post100_p99']:.1f}",
            ">= 300k, >= 75% of bare",
        ),
        (
            "",
            "",
            f"Kafka direct {m['produce_direct']:,.0f}",
            f"{m['post100_kafka_ratio']:.0%}",
            "",
            "",
            "",
        ),
        (
            "GET limit=1000, msg/s",
            f"{m['get']:,.0f}",
            f"bare Klein {m['get_bare']:,.0f}",
            f"{m['get_ratio']:.0%}",
            f"{m['get_p50']:.1f}",
            f"{m['get_p99']:.1f}",
            ">= 500k",
        ),
        (
            "",
            "",
            f"Kafka direct {m['consume_direct']:,.0f}",
            f"{m['get_kafka_ratio']:.0%}",
            "",
            "",
            "",
        ),
        (
            "GET+ack cycle ack=explicit, msg/s",
            f"{m['lease_cycle']:,.0f}",
            f"at-most-once GET {m['get_amo']:,.0f}",
            f"{m['lease_ratio']:.0%}",
            "",
            f"{m['lease_cycle_p99']:.1f}",
            ">= 60% of at-most-once",
        ),
        (
            "NDJSON stream, 1 reader, msg/s",
            f"{m['ndjson']:,.0f}",
            f"Kafka direct {m['ndjson_direct']:,.0f}",
            f"{m['ndjson_ratio']:.0%}",
            "",
            "",
            ">= 800k, >= 60% of direct",
        ),
        (
            "long-poll wake-up, 100 waiting, ms",
            f"p90 {m['longpoll_p90']:.1f}",
            f"client alone: p50 {m['longpoll_bare_p50']:.1f}, p99 {m['longpoll_bare_p99']:.1f}",
            "",
            f"{m['longpoll_p50']:.1f}",
            f"{m['longpoll_p99']:.1f}",
            "p99 < 20 ms",
        ),
        (
            "POST 1 at half rate, req/s",
            f"{m['post1_half_rate']:,.0f}",
            "",
            "",
            f"{m['post1_half_p50']:.1f}",
            f"{m['post1_half_p99']:.1f}",
            "p99 < 20 ms",
        ),
        (
            "POST 100 at half rate, req/s",
            f"{m['post100_half_rate']:,.0f}",
            "",
            "",
            f"{m['post100_half_p50']:.1f}",
            f"{m['post100_half_p99']:.1f}",
            "p99 < 20 ms",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    """Parse options, start the processes, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--posts-only", action="store_true", help="only the full-speed POSTs (no table)"
    )
    parser.add_argument(
        "--auth", action="store_true", help="only POST 1 msg with Basic auth on vs off"
    )
    parser.add_argument(
        "--workers",
        action="store_true",
        help="compare 1 and 2 worker processes (bench/workers.py)",
    )
    parser.add_argument(
        "--longpoll",
        action="store_true",
        help="only the long-poll wake-up (bench/longpoll.py; --repeats applies)",
    )
    parser.add_argument(
        "--forms", action="store_true", help="also the produce forms (bench.produce_forms)"
    )
    args = parser.parse_args()
    if args.auth:
        from bench.auth import report

        print(report(args.seconds, args.repeats))
        return
    if args.longpoll:
        from bench import longpoll

        print(longpoll.run(args.repeats))
        return
    if args.workers:
        from bench import workers

        workers.main(args.repeats if args.repeats != 3 else 2)
        return
    work = Path(tempfile.mkdtemp(prefix="flasfka-bench-"))
    bodies = {}
    for n in (1, 100):
        bodies[n] = str(work / f"body{n}.json")
        Path(bodies[n]).write_bytes(orjson.dumps({"messages": [MESSAGE] * n}))
    started = time.monotonic()
    rounds = fresh_rounds(
        work,
        args.repeats,
        lambda servers: one_round(servers, bodies, args.seconds, args.posts_only),
    )
    if args.posts_only:
        return
    took = time.monotonic() - started
    print(f"\nflasfka benchmark: medians of {args.repeats} rounds, wrk -t1 -c{CONNECTIONS},")
    print(f"{args.seconds:g} s per run, {took:.0f} s in all (logs: {work})")
    print(table(rounds))
    if args.forms:
        from bench.produce_forms import run

        print("\n" + run(args.repeats, args.seconds))


if __name__ == "__main__":
    main()
