"""librdkafka's log lines into twisted.logger: levels, and repeated warnings counted."""

from __future__ import annotations

import logging

from twisted.internet.task import Clock
from twisted.logger import Logger

from flasfka.kafka.log_bridge import WARN_EVERY, RdkafkaLogBridge


def bridge() -> tuple[RdkafkaLogBridge, Clock, list[dict]]:
    clock = Clock()
    events: list[dict] = []
    made = RdkafkaLogBridge(lambda f, *args: f(*args), clock.seconds)
    made._log = Logger(namespace="flasfka.librdkafka", observer=events.append)
    return made, clock, events


def fail(bridge: RdkafkaLogBridge, client: str, ms: int) -> None:
    text = f"127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed (after {ms}ms)"
    bridge.log(logging.ERROR, "%s [%s] %s", "FAIL", client, text)


def test_a_repeated_warning_is_counted_into_the_next_one_logged():
    log, clock, events = bridge()
    for ms in range(40):  # a second of a broker that refuses connections
        fail(log, "consumer-1", ms)
        clock.advance(1 / 40)
    assert [e["text"] for e in events] == [
        "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed (after 0ms)"
    ]
    clock.advance(WARN_EVERY)
    fail(log, "consumer-1", 7)
    assert len(events) == 2
    assert events[1]["text"].endswith("(after 7ms) (39 more like it left out since the last)")
    assert events[1]["log_level"].name == "warn" and events[1]["rdkafka_level"] == "error"


def test_other_clients_other_texts_and_info_lines_are_not_held_back():
    log, _, events = bridge()
    fail(log, "consumer-1", 1)
    fail(log, "producer-1", 1)  # another client
    log.log(logging.WARNING, "%s [%s] %s", "FAIL", "consumer-1", "Receive failed: reset")
    for _ in range(3):
        log.log(logging.INFO, "%s [%s] %s", "JOIN", "consumer-1", "joined")
    assert len(events) == 6
    assert [e["log_level"].name for e in events] == ["warn"] * 3 + ["info"] * 3
