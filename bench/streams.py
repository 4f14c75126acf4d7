"""One NDJSON stream reader against the direct confluent-kafka consumer, in the same round.

The stream is ``GET /{topic}/{group}/`` with ``Accept: application/x-ndjson`` (at-most-once)
on a pre-filled topic, read by curl; its rate is clocked from the first byte (the group join
is not counted) until STREAMED lines or the run's seconds, whichever comes first. The direct
consumer then reads the same topic (assigned, no group) in its own process. Afterwards the
group's committed offsets must cover every line read: what a stream writes is committed
first. Run alone: ``python -m bench.streams [--seconds 5] [--repeats 3]``.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import orjson

from bench.procs import Servers, kafka_direct, run_alone
from bench.wrk import BenchFailure

#: Messages put in the topic the stream reads.
PREFILL = 3_000_000
#: Most lines one stream run reads.
STREAMED = 2_500_000
#: Messages the direct consumer reads for the ceiling.
DIRECT = 1_000_000


def read_stream(url: str, seconds: float, most: int) -> tuple[int, float, bytes]:
    """(lines, seconds from the first byte, the first line) of an NDJSON stream."""
    reader = subprocess.Popen(
        ["curl", "-sN", "--max-time", str(seconds + 60), "-H", "Accept: application/x-ndjson", url],
        stdout=subprocess.PIPE,
    )
    assert reader.stdout is not None
    lines, first, started = 0, b"", 0.0
    try:
        while lines < most:
            data = reader.stdout.read1(1 << 20)
            if not data:
                break
            if not first:
                started = time.perf_counter()
                first = data.split(b"\n", 1)[0]
            lines += data.count(b"\n")
            if time.perf_counter() - started >= seconds:
                break
        elapsed = time.perf_counter() - started
    finally:
        reader.kill()
        reader.wait()
    return lines, elapsed, first


def stream_round(servers: Servers, seconds: float) -> dict[str, float]:
    """One stream run and one direct consumer run on the same topic."""
    topic = f"bench-stream-{uuid.uuid4().hex[:8]}"
    group = "bench-stream"
    kafka_direct("produce", servers.broker, topic, PREFILL)
    url = f"{servers.flasfka}/{topic}/{group}/"
    lines, elapsed, first = read_stream(url, seconds, STREAMED)
    if not lines or not orjson.loads(first).startswith("bench-"):
        raise BenchFailure(f"{topic}: the stream wrote {lines} lines, the first {first[:80]!r}")
    committed = kafka_direct("committed", servers.broker, topic, group)["committed"]
    if committed < lines:
        raise BenchFailure(f"{topic}: {lines} messages streamed, only {committed} committed")
    direct = kafka_direct("consume", servers.broker, topic, DIRECT)["rate"]
    rate = lines / elapsed
    return {"ndjson": rate, "ndjson_direct": direct, "ndjson_ratio": rate / direct}


def main() -> None:
    """Run stream_round on fresh processes --repeats times; print the medians."""
    m, repeats, _ = run_alone(__doc__.splitlines()[0], "streams", stream_round)
    print(
        f"\nmedians of {repeats} rounds: one NDJSON stream {m['ndjson']:,.0f} msg/s, "
        f"direct consumer {m['ndjson_direct']:,.0f} msg/s, {m['ndjson_ratio']:.0%} of it "
        "(target >= 800k and >= 60%)"
    )


if __name__ == "__main__":
    main()
