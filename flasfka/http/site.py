"""The HTTP Site: times every request, logs and counts it, and drains on shutdown."""

from __future__ import annotations

import weakref
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource

from flasfka.http.access_log import log_access
from flasfka.http.hardening import GatewayChannel, GatewayRequest
from flasfka.http.routes import route_label
from flasfka.metrics import GatewayMetrics
from flasfka.reactor import ReactorLike

log = Logger(namespace="flasfka.site")

#: Seconds a connection accepted just before draining gets to send its first request.
FIRST_REQUEST_SECONDS = 1.0
#: Set on a request once twisted.web logged it as finished (Site.log).
_LOGGED = "flasfka_logged"


class _TimedRequests:
    """The Site's request factory: stamps each new request and tracks it until it ends."""

    def __init__(self, site: ObservedSite, request_class: type[server.Request]) -> None:
        self._site = site
        self._class = request_class

    def __call__(self, *args: Any) -> server.Request:
        request = self._class(*args)
        self._site.request_started(request)
        return request


class Draining:
    """Whether the listener is draining: set by the Site, read by /readyz."""

    def __init__(self) -> None:
        self.is_set = False

    def __call__(self) -> bool:
        return self.is_set


class ObservedSite(server.Site):
    """A Site that logs one access line per request, counts it, and can drain.

    twisted.web's own access log (``Site.log`` to a log file) is replaced by ``log_access``.
    Connections speak HTTP/1.x (twisted.web's HTTPChannel, no HTTP/2 negotiation), so that
    each one can be seen and closed when draining.
    """

    protocol = HTTPChannel  # type: ignore[assignment]  # HTTP/1.x only, see above

    def __init__(
        self,
        resource: IResource,
        clock: ReactorLike,
        metrics: GatewayMetrics,
        draining: Draining | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, **kwargs)
        self._draining = draining if draining is not None else Draining()
        self._clock = clock
        self._metrics = metrics
        self.requestFactory = _TimedRequests(self, self.requestFactory)  # type: ignore[assignment]
        self._started: dict[server.Request, float] = {}
        self._connections: weakref.WeakSet[HTTPChannel] = weakref.WeakSet()
        #: Connections that have not sent a request yet.
        self._fresh: weakref.WeakSet[HTTPChannel] = weakref.WeakSet()
        self._drained: Deferred[None] | None = None
        metrics.watch_gauge(metrics.requests_in_flight, lambda: len(self._started))

    @property
    def draining(self) -> bool:
        """Set once drain() was called: no connection is kept alive any more."""
        return self._draining.is_set

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (or dropped)."""
        return len(self._started)

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 (Twisted's name)
        """Remember each connection, to close the idle ones when draining."""
        channel = super().buildProtocol(addr)
        self._connections.add(channel)
        self._fresh.add(channel)
        return channel

    def request_started(self, request: server.Request) -> None:
        """A request line arrived: time it until it is answered or its connection is lost."""
        self._started[request] = self._clock.seconds()
        self._fresh.discard(request.channel)
        request.notifyFinish().addBoth(self._ended, request)
        if self.draining:
            self._stop_keeping_alive(request)

    def _ended(self, result: object, request: server.Request) -> None:
        started = self._started.pop(request, None)
        if isinstance(result, Failure) and not getattr(request, _LOGGED, False):
            # The connection was lost before the answer was finished (a client that left a
            # long poll, a stream, a slow answer): twisted.web logs only finished requests.
            seconds = self._clock.seconds() - started if started is not None else 0.0
            log_access(request, seconds, client_left=True)
        if self._drained is not None and not self._started:
            self._check_drained()

    def log(self, request: server.Request) -> None:  # type: ignore[override]
        """Called by twisted.web when a response is finished: log and count it."""
        setattr(request, _LOGGED, True)
        started = self._started.get(request)
        seconds = self._clock.seconds() - started if started is not None else 0.0
        log_access(request, seconds)
        self._metrics.request_done(
            route_label(request.method, request.path), request.method, request.code, seconds
        )

    # --- shutdown --------------------------------------------------------------------------

    def _stop_keeping_alive(self, request: server.Request) -> None:
        channel = request.channel
        if channel is not None:
            channel.persistent = False
        if not request.startedWriting:
            request.setHeader(b"Connection", b"close")

    def drain(self, grace: float) -> Deferred[None]:
        """Close idle connections, let in-flight requests finish for up to grace seconds.

        Connections still busy after grace are aborted. Call it once the port stopped
        listening; fires when no connection is left. A connection accepted but without a
        request yet (it may be on its way: the client just connected, or the socket is
        shared with other worker processes) first gets FIRST_REQUEST_SECONDS to send it,
        answered with ``Connection: close``. Idle connections that already had a request are
        closed at once (HTTP clients retry a request on such a keep-alive connection).
        """
        self._draining.is_set = True
        waiting = [c for c in self._fresh if c.transport is not None]
        if waiting and grace > 0:
            self._close_idle(keep_fresh=True)
            window = min(FIRST_REQUEST_SECONDS, grace)
            d: Deferred[None] = Deferred()
            self._clock.callLater(window, d.callback, None)
            return d.addCallback(lambda _: self._drain_now(grace - window))
        return self._drain_now(grace)

    def _close_idle(self, keep_fresh: bool) -> None:
        busy = {request.channel for request in self._started}
        for channel in list(self._connections):
            if channel in busy or channel.transport is None:
                continue
            if not (keep_fresh and channel in self._fresh):
                channel.loseConnection()

    def _drain_now(self, grace: float) -> Deferred[None]:
        for request in list(self._started):
            self._stop_keeping_alive(request)
        self._close_idle(keep_fresh=False)
        if self._started:
            log.info(
                "waiting up to {grace:g} s for {count} requests in flight",
                grace=grace,
                count=len(self._started),
            )
        self._drained = Deferred()
        self._drained.addTimeout(grace, self._clock, onTimeoutCancel=self._cut)  # type: ignore[arg-type]
        self._check_drained()
        return self._drained

    def _check_drained(self) -> None:
        """Fire _drained once no request is in flight and every connection has closed.

        A finished request's last bytes may still sit in its transport's buffer: stopping the
        reactor now would drop them (its shutdown closes connections without flushing).
        """
        drained = self._drained
        if drained is None or drained.called or self._started:
            return
        if any(_is_open(channel) for channel in list(self._connections)):
            self._clock.callLater(0.01, self._check_drained)
            return
        drained.callback(None)

    def _cut(self, result: object, timeout: float) -> None:
        """Abort the connections that outlived the grace period."""
        log.warn(
            "{count} requests still in flight after {grace:g} s: closing their connections",
            count=len(self._started),
            grace=timeout,
        )
        for channel in list(self._connections):
            transport: Any = channel.transport
            if _is_open(channel) and transport is not None:
                transport.abortConnection()


def _is_open(channel: HTTPChannel) -> bool:
    """Whether channel's connection is still there."""
    transport: Any = channel.transport
    if transport is None:
        return False
    closed = getattr(channel, "connection_closed", None)
    if closed is not None:
        return not closed
    return not getattr(transport, "disconnected", True)


def make_site(
    resource: IResource,
    max_body_size: int,
    idle_timeout: float,
    worker_header: tuple[bytes, list[bytes]] | None = None,
    **site_options: Any,
) -> ObservedSite:
    """An ObservedSite (given site_options) with flasfka's request and channel classes.

    idle_timeout (HTTP_IDLE_TIMEOUT) bounds both the idle time of a connection and the time
    a request may take to arrive; a client that stops reading is aborted after as long again.
    worker_header, with worker processes, is stamped on every response.
    """
    request_factory = type(
        "FlasfkaRequest",
        (GatewayRequest,),
        {"max_body_size": max_body_size, "worker_header": worker_header},
    )
    site = ObservedSite(
        resource, requestFactory=request_factory, timeout=idle_timeout, **site_options
    )
    site.protocol = type(  # type: ignore[assignment]  # a subclass made here
        "FlasfkaChannel",
        (GatewayChannel,),
        {"request_timeout": idle_timeout, "abortTimeout": idle_timeout},
    )
    site.displayTracebacks = False
    site.noisy = False
    return site
