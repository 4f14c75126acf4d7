"""GET /healthz, /readyz and /metrics, beside the topic routes.

They have no trailing slash, so every legal topic name stays reachable as ``/<name>/``: only
the exact paths ``/healthz``, ``/readyz`` and ``/metrics`` are served here.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from flasfka.errors import Unavailable
from flasfka.gateway import Gateway
from flasfka.kafka import ReactorLike
from flasfka.metrics import CONTENT_TYPE, GatewayMetrics

_JSON = b"application/json"


class OpsWeb:
    """Liveness, readiness and Prometheus metrics of one flasfka instance."""

    app = Klein()

    def __init__(
        self,
        gateway: Gateway,
        metrics: GatewayMetrics,
        is_draining: Callable[[], bool],
        clock: ReactorLike,
        probe_timeout: float = 2.0,
        stall_window: float = 60.0,
    ) -> None:
        self._gateway = gateway
        self._metrics = metrics
        self._is_draining = is_draining
        self._clock = clock
        self._probe_timeout = probe_timeout
        self._stall_window = stall_window

    def resource(self) -> IResource:
        """The twisted.web resource of these three routes."""
        return self.app.resource()

    @app.route("/healthz", methods=["GET", "HEAD"])
    def healthz(self, request: IRequest) -> bytes:
        """200 while the process serves HTTP."""
        request.setHeader(b"Content-Type", _JSON)
        return b'{"status": "ok"}'

    @app.route("/readyz", methods=["GET", "HEAD"])
    async def readyz(self, request: IRequest) -> bytes:
        """200 while the broker answers and the producer can send; else 503 and why."""
        reason = await self.not_ready_reason()
        request.setHeader(b"Content-Type", _JSON)
        if reason is None:
            return b'{"status": "ready"}'
        request.setResponseCode(503)
        request.setHeader(b"Retry-After", b"5")
        return orjson.dumps({"status": "unavailable", "reason": reason})

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        """Every metric in Prometheus text format."""
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode())
        return self._metrics.render()

    async def not_ready_reason(self) -> str | None:
        """None when ready, else a one-line reason."""
        gateway = self._gateway
        if gateway.stopping or self._is_draining():
            return "shutting down"
        producer, admin = gateway.producer, gateway.admin
        if producer is None or admin is None:
            return "not started"
        if producer.fatal_error is not None:
            return f"the producer failed and cannot send: {producer.fatal_error}"
        stalled_for = self._clock.seconds() - gateway.produce_stalled_at
        if gateway.produce_stalled is not None and stalled_for < self._stall_window:
            # Forgotten after a while, so that traffic comes back and tries again.
            return f"the broker is connected but the last POST failed: {gateway.produce_stalled}"
        if not producer.connected:
            detail = f" ({producer.last_error})" if producer.last_error else ""
            return f"the producer has no connection to a broker{detail}"
        try:
            await admin.probe(self._probe_timeout)
        except Unavailable as e:
            return e.message
        return None


class OpsAndTopics(Resource):
    """The root resource: /healthz, /readyz, /metrics exactly, every other path to the API."""

    _OPS = frozenset({b"healthz", b"readyz", b"metrics"})

    def __init__(self, api: IResource, ops: IResource) -> None:
        super().__init__()
        self._api = api
        self._ops = ops

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:  # noqa: N802
        """Route one path segment: an ops name with nothing after it, or the API."""
        child = self._ops if path in self._OPS and not request.postpath else self._api
        # Both are Klein resources, which route on the whole path: hand it back unconsumed.
        request.postpath.insert(0, request.prepath.pop())
        return child
