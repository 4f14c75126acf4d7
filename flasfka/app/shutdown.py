"""Graceful shutdown: services stop one after another, the listener drains first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger

from flasfka.http.site import ObservedSite

log = Logger(namespace="flasfka")


class OrderedMultiService(MultiService):
    """A MultiService whose children stop one at a time, last added first.

    Twisted's MultiService calls every child's stopService at once; flasfka needs the
    listener to finish its in-flight requests before consumers close and the producer
    flushes. A child that fails to stop is logged and the others still stop.
    """

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        """Stop the children in reverse order, each after the previous one stopped."""
        Service.stopService(self)
        return ensureDeferred(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                log.failure("stopping service {name}", name=child.name)


class GracefulListener(StreamServerEndpointService):
    """The HTTP listener: logs where it listens; on stop, drains the Site for up to grace."""

    name = "http"

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        site: ObservedSite,
        grace: float,
        scheme: str,
        on_drain: Callable[[], object] = lambda: None,
    ) -> None:
        super().__init__(endpoint, site)
        self._on_drain = on_drain
        self._site = site
        self._grace = grace
        self._scheme = scheme

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted's name)
        """Listen, and log the address once the port is open."""
        super().privilegedStartService()
        assert self._waitingForPort is not None  # set by privilegedStartService
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        address: Any = port.getHost()
        host = getattr(address, "host", str(address))
        if ":" in host:
            host = f"[{host}]"
        url = f"{self._scheme}://{host}:{getattr(address, 'port', '')}"
        log.info("flasfka listening on {url}", url=url)
        return port

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        """Stop accepting connections, then let in-flight requests finish (bounded)."""
        d = super().stopService()
        d.addErrback(lambda f: f.trap(CancelledError))  # stopped before it listened
        d.addCallback(lambda _: self._drain())
        return d

    def _drain(self) -> Deferred[None]:
        """Drain the Site (busy connections answer with Connection: close), then have the
        waiting long polls answer now rather than at the grace's end."""
        drained = self._site.drain(self._grace)
        self._on_drain()
        return drained
