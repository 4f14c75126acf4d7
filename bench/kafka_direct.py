"""The Kafka ceiling and the benchmark's checks: plain confluent-kafka, flasfka's settings.

``python -m bench.kafka_direct produce BROKER TOPIC COUNT``  produce COUNT messages, print msg/s
``python -m bench.kafka_direct consume BROKER TOPIC COUNT``  read COUNT messages as a new group
``python -m bench.kafka_direct count BROKER TOPIC``          count the records of TOPIC by reading
``python -m bench.kafka_direct committed BROKER TOPIC GROUP`` sum of GROUP's committed offsets

Each prints one JSON line. Tansu's watermarks are wrong, so records are counted by reading.
"""

from __future__ import annotations

import sys
import time
import uuid

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from flasfka.app.config import Config
from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS, client_settings

#: A ~100-byte benchmark message; the GET script counts values starting with "bench-".
VALUE = b"bench-" + b"x" * 94


def _settings(broker: str) -> tuple[dict, dict]:
    producer, consumer, _ = client_settings(Config(HOSTS=[broker]))
    consumer = {**consumer, **TANSU_CONSUMER_SETTINGS}
    return producer, consumer


def produce(broker: str, topic: str, count: int) -> dict:
    """Produce count messages (acks=all, as flasfka) and wait for every acknowledgement."""
    producer = Producer(_settings(broker)[0])
    failed = 0

    def report(error: KafkaError | None, _message: object) -> None:
        nonlocal failed
        if error is not None:
            failed += 1

    producer.produce(topic, VALUE, on_delivery=report)  # metadata and connection first
    producer.flush(30)
    start = time.perf_counter()
    sent = 0
    while sent < count:
        try:
            producer.produce(topic, VALUE, on_delivery=report)
            sent += 1
        except BufferError:
            producer.poll(0.001)
        if sent % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise SystemExit(f"direct produce: {left} unflushed, {failed} failed")
    return {"messages": count, "seconds": elapsed, "rate": count / elapsed}


def consume(broker: str, topic: str, count: int) -> dict:
    """Read count messages of every partition (assigned: no group join); clock from the first."""
    consumer = Consumer({**_settings(broker)[1], "group.id": f"direct-{uuid.uuid4().hex[:8]}"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    got = 0
    start = None
    deadline = time.monotonic() + 60
    try:
        while got < count and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.1):
                if message.error() is None:
                    if start is None:
                        start = time.perf_counter()
                    got += 1
        elapsed = time.perf_counter() - (start or time.perf_counter())
    finally:
        consumer.close()
    if got < count:
        raise SystemExit(f"direct consume: only {got} of {count} messages")
    return {"messages": got, "seconds": elapsed, "rate": got / elapsed}


def count_records(broker: str, topic: str, quiet: float = 1.5) -> dict:
    """Count the records of topic: read every partition from the start until nothing comes."""
    settings = {**_settings(broker)[1], "group.id": "bench-counter", "enable.partition.eof": True}
    consumer = Consumer(settings)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records = 0
        ended: set[int] = set()
        last_record = time.monotonic()
        while len(ended) < len(partitions) or time.monotonic() - last_record < quiet:
            for message in consumer.consume(10000, 0.2):
                error = message.error()
                if error is None:
                    records += 1
                    last_record = time.monotonic()
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                else:
                    raise SystemExit(f"count {topic}: {error}")
            if time.monotonic() - last_record > 30:
                break
    finally:
        consumer.close()
    return {"records": records}


def committed(broker: str, topic: str, group: str) -> dict:
    """The sum over partitions of group's committed offsets (records it consumed from 0)."""
    consumer = Consumer({**_settings(broker)[1], "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    finally:
        consumer.close()
    return {"committed": sum(max(tp.offset, 0) for tp in offsets)}


def main() -> None:
    """Run one command and print its JSON result."""
    command, broker, topic, *rest = sys.argv[1:]
    if command == "produce":
        result = produce(broker, topic, int(rest[0]))
    elif command == "consume":
        result = consume(broker, topic, int(rest[0]))
    elif command == "committed":
        result = committed(broker, topic, rest[0])
    elif command == "count":
        result = count_records(broker, topic)
    else:
        raise SystemExit(f"unknown command {command}")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
