"""The produce forms against the seed's: record objects vs strings, octet-stream vs JSON.

``python -m bench.produce_forms [--repeats 2] [--seconds 5]`` starts Tansu and flasfka (its own
process, this tree's code), drives each POST form with wrk -c16 on a fresh topic, checks with
a direct consumer that every acknowledged message is in Kafka, and prints the medians with
the issue's targets: 100 record objects >= 70 % of 100 strings (msg/s), a 1-message
octet-stream POST >= 90 % of a 1-string JSON POST (req/s). ``python -m bench --forms`` runs
it after the main benchmark's rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from bench.procs import VENV_BIN, Children
from bench.wrk import BenchFailure, run_wrk
from flasfka.app.broker import free_port, tansu_binary, tansu_command

CONNECTIONS = 16
MESSAGE = "bench-" + "x" * 94

#: name -> (body, Content-Type, messages per POST)
FORMS: dict[str, tuple[bytes, str, int]] = {
    "json100": (orjson.dumps({"messages": [MESSAGE] * 100}), "application/json", 100),
    "records100": (
        orjson.dumps({"messages": [{"value": MESSAGE}] * 100}),
        "application/json",
        100,
    ),
    "records100_kh": (
        orjson.dumps(
            {
                "messages": [
                    {"value": MESSAGE, "key": f"k{i % 10}", "headers": [{"key": "h", "value": "v"}]}
                    for i in range(100)
                ]
            }
        ),
        "application/json",
        100,
    ),
    "json1": (orjson.dumps({"messages": [MESSAGE]}), "application/json", 1),
    "octet1": (MESSAGE.encode(), "application/octet-stream", 1),
}


def count_records(broker: str, topic: str, timeout: float = 60.0) -> int:
    """How many records topic holds, read to the end with a direct consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": "bench-forms-count",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        done: set[int] = set()
        count = 0
        deadline = time.monotonic() + timeout
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(100_000, 0.2):
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    done.add(message.partition())
        return count
    finally:
        consumer.close()


def start(children: Children, work: Path) -> tuple[str, str]:
    """Start Tansu and flasfka on it; (broker address, flasfka URL)."""
    kafka_port, flasfka_port = free_port(), free_port()
    children.start("tansu", tansu_command(tansu_binary(), kafka_port), kafka_port)
    broker = f"127.0.0.1:{kafka_port}"
    config = work / "forms.conf.py"
    config.write_text(f"HOSTS = [{broker!r}]\n")
    children.start(
        "flasfka",
        [str(VENV_BIN / "flasfka-serve"), "-p", str(flasfka_port), "--config", str(config)],
        flasfka_port,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return broker, f"http://127.0.0.1:{flasfka_port}"


def measure(
    broker: str, url: str, work: Path, seconds: float, only: tuple[str, ...] = ()
) -> dict[str, float]:
    """Each form once on a fresh topic: msg/s and req/s, p50/p99; counts checked."""
    import urllib.request

    figures: dict[str, float] = {}
    for name, (body, content_type, per_post) in FORMS.items():
        if only and name not in only:
            continue
        topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        body_file = work / f"{name}.body"
        body_file.write_bytes(body)
        request = urllib.request.Request(
            f"{url}/{topic}/",
            data=body,
            method="POST",
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # creates the topic
            assert response.status == 204, response.status
        result = run_wrk(
            url, "POST", f"/{topic}/", str(body_file), CONNECTIONS, seconds, 0, content_type
        )
        counted = (result.ok + 1) * per_post
        records = count_records(broker, topic)
        if not counted <= records <= counted + CONNECTIONS * per_post:
            raise BenchFailure(f"{topic}: {counted} messages acknowledged, {records} in Kafka")
        figures[f"{name}_req"] = result.rate
        figures[f"{name}_msg"] = result.rate * per_post
        figures[f"{name}_p50"], figures[f"{name}_p99"] = result.p50_ms, result.p99_ms
    return figures


def table(rounds: list[dict[str, float]]) -> str:
    """Medians of the rounds, one line per form."""
    m = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    lines = [f"{'form':<34} {'req/s':>8} {'msg/s':>9} {'p50 ms':>7} {'p99 ms':>7}  ratio / target"]
    labels = {
        "json100": ("POST 100 strings (seed)", ""),
        "records100": ("POST 100 record objects", f"{m['records100_ratio']:.0%} / >= 70%"),
        "records100_kh": (
            "POST 100 objects, key + header",
            f"{m['records100_kh_ratio']:.0%} / (none)",
        ),
        "json1": ("POST 1 string (seed)", ""),
        "octet1": ("POST 1 octet-stream message", f"{m['octet1_ratio']:.0%} / >= 90%"),
    }
    for name, (label, ratio) in labels.items():
        lines.append(
            f"{label:<34} {m[name + '_req']:>8,.0f} {m[name + '_msg']:>9,.0f} "
            f"{m[name + '_p50']:>7.1f} {m[name + '_p99']:>7.1f}  {ratio}"
        )
    return "\n".join(lines)


def run(repeats: int, seconds: float, only: tuple[str, ...] = ()) -> str:
    """The table of medians. Each form runs on fresh processes (Tansu keeps every record in
    memory and slows as it fills, which would favour whichever form runs first), in
    reversed order every other round."""
    work = Path(tempfile.mkdtemp(prefix="flasfka-bench-forms-"))
    names = [name for name in FORMS if not only or name in only]
    rounds = []
    for i in range(repeats):
        figures: dict[str, float] = {}
        for name in names if i % 2 == 0 else reversed(names):
            logs = work / f"round{i + 1}-{name}"
            logs.mkdir()
            children = Children(logs)
            try:
                broker, url = start(children, logs)
                figures.update(measure(broker, url, logs, seconds, (name,)))
            finally:
                children.stop()
        if not only:
            figures["records100_ratio"] = figures["records100_msg"] / figures["json100_msg"]
            figures["records100_kh_ratio"] = figures["records100_kh_msg"] / figures["json100_msg"]
            figures["octet1_ratio"] = figures["octet1_req"] / figures["json1_req"]
        rounds.append(figures)
        print(f"forms round {i + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    if only:
        return "\n".join(
            f"{k}: median {statistics.median(r[k] for r in rounds):,.1f}" for k in rounds[0]
        )
    return (
        f"produce forms: medians of {repeats} rounds, wrk -t1 -c{CONNECTIONS}, {seconds:g} s "
        f"per run, fresh Tansu + flasfka per run (logs: {work})\n" + table(rounds)
    )


def main() -> None:
    """Parse options, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--only", default="", help="comma-separated forms (e.g. json100,json1: seed forms only)"
    )
    args = parser.parse_args()
    print(run(args.repeats, args.seconds, tuple(filter(None, args.only.split(",")))))


if __name__ == "__main__":
    main()
