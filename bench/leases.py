"""The at-least-once cycle against the at-most-once GET, measured in the same run.

The cycle is GET ?limit=1000&ack=explicit then POST .../ack of its cursor (bench/leases.lua
interleaves them on 16 connections); its msg/s divides by the at-most-once GET's of the same
round. Run alone: ``python -m bench.leases [--seconds 5] [--repeats 3]``.
"""

from __future__ import annotations

import time
import urllib.request
import uuid

import orjson

from bench.procs import Servers, kafka_direct, run_alone
from bench.wrk import BenchFailure, WrkResult, run_wrk

CONNECTIONS = 16
#: Messages put in each topic the GETs read (both runs read the same amount at most).
PREFILL = 5_000_000


def _first_message(url: str) -> None:
    """Wait for the group join: GET until a message comes (acknowledging it if leased)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = orjson.loads(response.read())
        if body["messages"]:
            if "cursor" in body:
                ack, _, _ = url.partition("?")
                request = urllib.request.Request(
                    ack + "ack", data=orjson.dumps({"cursor": body["cursor"]}), method="POST"
                )
                with urllib.request.urlopen(request, timeout=30) as answer:
                    assert answer.status == 204, answer.status
            time.sleep(1)  # let the consumer fill its buffer, as a long-lived one would have
            return
    raise BenchFailure(f"{url}: nothing returned for 60 s")


def _prefilled(servers: Servers, name: str) -> str:
    topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    kafka_direct("produce", servers.broker, topic, PREFILL)
    return topic


def bench_at_most_once(servers: Servers, seconds: float, limit: int) -> WrkResult:
    """GET ?limit= (commit before answer) on a pre-filled topic."""
    topic = _prefilled(servers, "amo")
    path = f"/{topic}/bench/"
    _first_message(f"{servers.flasfka}{path}?limit=1")
    return run_wrk(servers.flasfka, "GET", f"{path}?limit={limit}", "-", CONNECTIONS, seconds)


def bench_lease_cycle(servers: Servers, seconds: float, limit: int) -> WrkResult:
    """GET ?ack=explicit + POST ack cycles; checks the committed offsets afterwards."""
    topic = _prefilled(servers, "alo")
    path = f"/{topic}/bench/"
    _first_message(f"{servers.flasfka}{path}?limit=1&ack=explicit")
    result = run_wrk(
        servers.flasfka,
        "GET",
        path,
        connections=CONNECTIONS,
        seconds=seconds,
        script="leases.lua",
        script_args=(f"{path}?limit={limit}&ack=explicit", f"{path}ack"),
    )
    returned = result.messages + 2  # kafka_direct's first message, and _first_message's
    # Nothing is committed past an unacknowledged message: at most what was returned, and
    # at least that less the leases still unacknowledged when wrk stopped.
    time.sleep(0.5)
    committed = kafka_direct("committed", servers.broker, topic, "bench")["committed"]
    if not returned - limit * CONNECTIONS * 2 <= committed <= returned:
        raise BenchFailure(f"{topic}: {returned} messages returned, {committed} committed")
    if result.messages >= PREFILL - limit * CONNECTIONS:
        print(f"warning: the lease benchmark drained {topic}; raise PREFILL")
    return result


def lease_round(servers: Servers, seconds: float, limit: int = 1000) -> dict[str, float]:
    """Both figures and their ratio, from one set of processes."""
    amo = bench_at_most_once(servers, seconds, limit)
    cycle = bench_lease_cycle(servers, seconds, limit)
    f = {
        "get_amo": amo.messages / amo.seconds,
        "get_amo_p99": amo.p99_ms,
        "lease_cycle": cycle.messages / cycle.seconds,
        "lease_cycle_p99": cycle.p99_ms,
    }
    f["lease_ratio"] = f["lease_cycle"] / f["get_amo"]
    return f


def main() -> None:
    """Run lease_round on fresh processes --repeats times; print the medians."""
    m, repeats, seconds = run_alone(__doc__.splitlines()[0], "leases", lease_round)
    print(
        f"\nmedians of {repeats} rounds, wrk -t1 -c{CONNECTIONS}, {seconds:g} s:\n"
        f"at-most-once GET limit=1000: {m['get_amo']:,.0f} msg/s (p99 {m['get_amo_p99']:.1f} ms)\n"
        f"at-least-once GET+ack cycle: {m['lease_cycle']:,.0f} msg/s "
        f"(p99 {m['lease_cycle_p99']:.1f} ms), {m['lease_ratio']:.0%} of at-most-once "
        "(target >= 60%)"
    )


if __name__ == "__main__":
    main()
