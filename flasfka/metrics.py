"""Prometheus metrics of one flasfka instance, in a registry of its own (not the global one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: The Content-Type of GET /metrics.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Methods that are labels of their own; clients may send any token, counted as "other".
_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"})

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    """Counters, histograms and gauges of one flasfka instance.

    The hot path calls one method per request or per batch of messages, never per message.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = Counter(
            "flasfka_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._request_seconds = Histogram(
            "flasfka_http_request_duration_seconds",
            "Time from the request line to the end of the response.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._produced = Counter(
            "flasfka_messages_produced",
            "Messages acknowledged by the broker, by topic.",
            ["topic"],
            registry=registry,
        )
        self._consumed = Counter(
            "flasfka_messages_consumed",
            "Messages returned to GET requests (and committed), by topic.",
            ["topic"],
            registry=registry,
        )
        self._produce_errors = Counter(
            "flasfka_produce_errors",
            "POST requests whose messages the broker did not acknowledge, by HTTP status.",
            ["topic", "status"],
            registry=registry,
        )
        self._delivery_seconds = Histogram(
            "flasfka_delivery_latency_seconds",
            "Time from queueing a POST's messages to the broker's acknowledgement of all.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumers_open = Gauge(
            "flasfka_consumers_open",
            "Consumer group members open (one per topic and group).",
            registry=registry,
        )
        self.read_ahead_bytes = Gauge(
            "flasfka_read_ahead_bytes",
            "Bytes fetched ahead of GETs by every consumer, not yet taken.",
            registry=registry,
        )
        self.broker_connected = Gauge(
            "flasfka_broker_connected",
            "1 while the producer has a connection to some broker, else 0.",
            registry=registry,
        )
        self._leased = Gauge(
            "flasfka_leased_messages",
            "Messages leased by GETs with ack=explicit and not yet acknowledged, by topic.",
            ["topic"],
            registry=registry,
        )
        self._lease_events = {
            kind: Counter(
                f"flasfka_{kind}_messages",
                f"Leased messages {what}, by topic.",
                ["topic"],
                registry=registry,
            )
            for kind, what in (
                ("acked", "acknowledged (POST .../ack)"),
                ("released", "released (POST .../ack with release)"),
                ("expired", "whose lease ran out before an ack"),
                ("revoked", "whose lease a rebalance or close ended"),
                ("redelivered", "delivered again (second delivery or later)"),
                ("dead_lettered", "written to the dead-letter topic"),
            )
        }
        self._request_children: dict[tuple[str, bytes, int], tuple[Any, Any]] = {}
        #: Per-topic children of the counters, as labels() would find them (see _by_topic).
        self._topic_children: dict[tuple[Any, str], Any] = {}
        self.requests_in_flight = Gauge(
            "flasfka_http_requests_in_flight",
            "HTTP requests received and not yet answered.",
            registry=registry,
        )

    def watch(
        self,
        consumers_open: Callable[[], float],
        broker_connected: Callable[[], float],
        read_ahead_bytes: Callable[[], float],
    ) -> None:
        """Read these gauges from callables whenever /metrics is scraped."""
        self.consumers_open.set_function(consumers_open)
        self.read_ahead_bytes.set_function(read_ahead_bytes)
        self.broker_connected.set_function(broker_connected)

    def request_done(self, route: str, method: bytes, status: int, seconds: float) -> None:
        """Count one answered request on route (a route table template, or "other")."""
        if method not in _METHODS:
            method = b"other"
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:  # first time: a few dozen (route, method, status) at most
            verb = method.decode()
            counter = self._requests.labels(route, verb, str(status))
            children = self._request_children[key] = (
                counter,
                self._request_seconds.labels(route, verb),
            )
        children[0].inc()
        children[1].observe(seconds)

    def produced(self, topic: str, count: int, seconds: float) -> None:
        """Count count messages of one POST acknowledged after seconds."""
        self._by_topic(self._produced, topic).inc(count)
        self._delivery_seconds.observe(seconds)

    def _by_topic(self, counter: Counter | Gauge, topic: str) -> Any:
        """counter.labels(topic), from a dict after the first time (labels() costs ~1 us)."""
        key = (counter, topic)
        child = self._topic_children.get(key)
        if child is None:
            child = self._topic_children[key] = counter.labels(topic)
        return child

    def produce_failed(self, topic: str, status: int) -> None:
        """Count a POST whose messages were not all acknowledged."""
        self._produce_errors.labels(topic, str(status)).inc()

    def consumed(self, topic: str, count: int) -> None:
        """Count count messages returned by one GET."""
        if count:
            self._by_topic(self._consumed, topic).inc(count)

    def leases_changed(self, topic: str, records: int) -> None:
        """records more (or, negative, fewer) messages are leased on topic."""
        self._by_topic(self._leased, topic).inc(records)

    def lease_event(self, kind: str, topic: str, records: int) -> None:
        """Count records leased messages that were acked, released, expired, revoked,
        redelivered or dead-lettered."""
        self._by_topic(self._lease_events[kind], topic).inc(records)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
