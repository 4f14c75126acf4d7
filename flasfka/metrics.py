"""Prometheus metrics of one flasfka instance, in a registry of its own (not the global one).

With worker processes (WORKERS > 1) every worker writes its values to files in one directory
(prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR, set by the parent before the
worker imports prometheus_client), and whichever worker answers /metrics adds up the files of
all of them. Counters and histograms of a worker that died stay counted (its files stay);
gauges count live workers only (the parent removes a dead worker's gauge files).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

#: The Content-Type of GET /metrics.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Methods that are labels of their own; clients may send any token, counted as "other".
_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"})

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    """Counters, histograms and gauges of one flasfka instance.

    The hot path calls one method per request or per batch of messages, never per message.
    multiprocess_dir (a worker's PROMETHEUS_MULTIPROC_DIR) makes render() report every
    worker; gauges read from callables are then written by refresh() (each worker calls it
    every second and before it renders), since another worker cannot call them.
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._multiprocess_dir = multiprocess_dir
        self._all_workers: CollectorRegistry | None = None
        if multiprocess_dir is not None:
            if not getattr(values.ValueClass, "_multiprocess", False):
                raise RuntimeError("set PROMETHEUS_MULTIPROC_DIR before prometheus_client loads")
            self._all_workers = CollectorRegistry()
            MultiProcessCollector(self._all_workers, path=multiprocess_dir)
        self._watched: list[tuple[Gauge, Callable[[], float]]] = []
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
            multiprocess_mode="livesum",
        )
        self.read_ahead_bytes = Gauge(
            "flasfka_read_ahead_bytes",
            "Bytes fetched ahead of GETs by every consumer and not yet taken, or held by its "
            "streams until sent (keys, values and a record's overhead).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.broker_connected = Gauge(
            "flasfka_broker_connected",
            "1 while the producer has a connection to some broker, else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self._leased = Gauge(
            "flasfka_leased_messages",
            "Messages leased by GETs with ack=explicit and not yet acknowledged, by topic.",
            ["topic"],
            registry=registry,
            multiprocess_mode="livesum",
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
            multiprocess_mode="livesum",
        )

    def watch(
        self,
        consumers_open: Callable[[], float],
        broker_connected: Callable[[], float],
        read_ahead_bytes: Callable[[], float],
    ) -> None:
        """Read these gauges from callables whenever /metrics is scraped."""
        self.watch_gauge(self.consumers_open, consumers_open)
        self.watch_gauge(self.read_ahead_bytes, read_ahead_bytes)
        self.watch_gauge(self.broker_connected, broker_connected)

    def watch_gauge(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """gauge's value is read() (when scraped; with workers, also every refresh())."""
        if self._multiprocess_dir is None:
            gauge.set_function(read)
        else:
            self._watched.append((gauge, read))

    def refresh(self) -> None:
        """Write the gauges read from callables (workers only: for the other workers)."""
        for gauge, read in self._watched:
            gauge.set(read())

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
        """The Prometheus text exposition of every metric (of every worker, with workers)."""
        if self._all_workers is not None:
            self.refresh()
            return generate_latest(self._all_workers)
        return generate_latest(self.registry)
