"""flasfka's own endpoints: /, /healthz, /readyz, /metrics and /openapi.json.

None ends in '/', so every legal topic name stays reachable as ``/<name>/``.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from twisted.web.iweb import IRequest

from flasfka import __version__
from flasfka.errors import Unavailable
from flasfka.gateway import Gateway
from flasfka.http.openapi import openapi_document
from flasfka.http.rendering import JSON as _JSON
from flasfka.metrics import CONTENT_TYPE, GatewayMetrics
from flasfka.reactor import ReactorLike


class OpsRoutes:
    """Handlers of the ops rows of the route table: what an operator or a newcomer asks."""

    def __init__(
        self,
        gateway: Gateway,
        metrics: GatewayMetrics,
        is_draining: Callable[[], bool],
        clock: ReactorLike,
        probe_timeout: float = 2.0,
        stall_window: float = 60.0,
        max_limit: int = 10000,
    ) -> None:
        self._gateway = gateway
        self._metrics = metrics
        self._is_draining = is_draining
        self._clock = clock
        self._probe_timeout = probe_timeout
        self._stall_window = stall_window
        bounds: dict[str, dict[str, float]] = {
            "limit": {"maximum": max_limit},
            "lease": {"maximum": gateway.lease_max},
        }
        self._openapi = orjson.dumps(openapi_document(bounds))

    def index(self, request: IRequest) -> bytes:
        """What this server is and where to go next."""
        request.setHeader(b"Content-Type", _JSON)
        return orjson.dumps(
            {
                "service": "flasfka",
                "version": __version__,
                "description": "HTTP gateway for Kafka: POST /{topic}/ to produce, "
                "GET /{topic}/[{group}/] to consume",
                "links": {
                    "openapi": "/openapi.json",
                    "healthz": "/healthz",
                    "readyz": "/readyz",
                    "metrics": "/metrics",
                },
            }
        )

    def openapi(self, request: IRequest) -> bytes:
        """The OpenAPI 3.1 description of every endpoint, from the route table."""
        request.setHeader(b"Content-Type", _JSON)
        return self._openapi

    def healthz(self, request: IRequest) -> bytes:
        """200 while the process serves HTTP."""
        request.setHeader(b"Content-Type", _JSON)
        return b'{"status": "ok"}'

    async def readyz(self, request: IRequest) -> bytes:
        """200 while the broker answers and the producer can send; else 503 and why."""
        reason = await self.not_ready_reason()
        request.setHeader(b"Content-Type", _JSON)
        if reason is None:
            return b'{"status": "ready"}'
        request.setResponseCode(503)
        request.setHeader(b"Retry-After", b"5")
        return orjson.dumps({"status": "unavailable", "reason": reason})

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
