"""Request hardening: body size limits, request deadlines, JSON for broken HTTP.

twisted.web has no request-size limit and its idle timeout restarts on every byte; these
classes close both gaps, and answer what twisted.web would answer in HTML or not at all.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server

from flasfka.http.rendering import VERSION, VERSION_HEADER, raw_error


class GatewayRequest(server.Request):
    """A Request that carries X-Flasfka-Version and refuses bodies over max_body_size with 413.

    An over-long body is never stored: the 413 is written as soon as the Content-Length (or
    the running total of a chunked body) passes the limit, and the connection is closed.
    """

    max_body_size = 10 * 1024 * 1024
    #: (header, worker id) stamped on every response with WORKERS > 1, else None.
    worker_header: tuple[bytes, list[bytes]] | None = None
    _refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No route reads form arguments from a POST body: skip Twisted's parse of the
        # Content-Type (email.headerregistry, ~15 % of a POST's CPU time).
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (Twisted's name)
        """Refuse a declared length over the limit before reading any of the body."""
        if length is not None and length > self.max_body_size:
            self._refuse(f"body of {length} bytes")
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        """Store a chunk unless the body has passed the limit."""
        if self._refused:
            return
        content = self.content
        assert content is not None  # Request.gotLength made it
        if content.tell() + len(data) > self.max_body_size:
            content.close()
            self._refuse("chunked body")
            return
        super().handleContentChunk(data)

    def _refuse(self, what: str) -> None:
        self._refused = True
        self.content = io.BytesIO()
        self.requestHeaders.removeHeader(b"Expect")
        transport = self.channel.transport
        assert transport is not None  # a request being received has its connection
        transport.write(
            raw_error(
                413,
                "Payload Too Large",
                f"{what} is over the limit of {self.max_body_size} bytes (MAX_BODY_SIZE)",
            )
        )
        transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        """Route the request, unless it was already answered with 413."""
        if self._refused:
            return
        super().requestReceived(command, _origin_form(path), version)

    def process(self) -> None:
        """Stamp the version header (and the worker's) on every response, then render."""
        self.responseHeaders.setRawHeaders(VERSION_HEADER, [VERSION])
        if self.worker_header is not None:
            self.responseHeaders.setRawHeaders(*self.worker_header)
        super().process()


def _origin_form(target: bytes) -> bytes:
    """The path and query of a request target in absolute form (``GET http://host/t/``,
    which RFC 9112 says a server must accept); any other target as it is."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return target
    _authority, slash, path = rest.partition(b"/")
    return b"/" + path if slash else b"/"


class GatewayChannel(http.HTTPChannel):
    """An HTTPChannel that gives each request a total deadline to arrive.

    HTTPChannel's idle timeout restarts on every byte, so a client sending its headers or
    body one byte a second (slowloris) would hold the connection forever. Here a request's
    head and body must arrive within request_timeout seconds of its first byte, else the
    client gets 408 and the connection is closed. A client that stops reading its response
    is cut by the idle timeout, then aborted after abortTimeout seconds.
    """

    request_timeout = 60.0
    #: Set once the connection is gone (the last response bytes are out): drain waits for it.
    connection_closed = False
    _deadline: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        """Start the request's deadline with its first byte."""
        if self._deadline is None and not self._handlingRequest:
            self._deadline = self.callLater(self.request_timeout, self._too_slow)
        super().dataReceived(data)

    def allContentReceived(self) -> None:  # noqa: N802 (Twisted's name)
        """The request arrived in time: stop its deadline."""
        self._stop_deadline()
        super().allContentReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        """Stop the deadline with the connection."""
        self.connection_closed = True
        self._stop_deadline()
        super().connectionLost(reason)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802 (Twisted's name)
        """Answer a request HTTP cannot parse with 400 and a JSON body, then close."""
        self._answer(400, "Bad Request", "the request is not valid HTTP/1.1")
        self.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802 (Twisted's name)
        """Answer a request line or header over the line limit with 431, then close."""
        self._answer(
            431,
            "Request Header Fields Too Large",
            f"a request line or header is over {self.MAX_LENGTH} bytes",
        )
        self.loseConnection()

    def _answer(self, status: int, reason: str, message: str) -> None:
        assert self.transport is not None  # only called while connected
        self.transport.write(raw_error(status, reason, message))

    def _too_slow(self) -> None:
        self._deadline = None
        if self._handlingRequest:
            return
        peer = self.transport.getPeer() if self.transport is not None else "-"
        self._log.info("request not received in time from {peer}", peer=peer)
        self._answer(
            408,
            "Request Timeout",
            f"the request did not arrive within {self.request_timeout:g} s (HTTP_IDLE_TIMEOUT)",
        )
        self.timeoutConnection()  # close, and abort if the client does not read
