"""The HTTP API: Klein routes over the Gateway, and the Site that serves them."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import orjson
from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.routing import PathConverter

from flasfka import __version__
from flasfka.errors import GatewayError
from flasfka.gateway import Gateway
from flasfka.kafka import Message
from flasfka.validation import check_group, check_topic, parse_limit, parse_messages

VERSION_HEADER = b"X-Flasfka-Version"
_JSON = b"application/json"
#: A path segment HotRoutes serves: a legal topic name with nothing for Klein to decode.
_HOT_TOPIC = re.compile(rb"(?!\.\.?$)[a-zA-Z0-9._-]{1,249}")
#: A key or group segment HotRoutes serves (anything else, e.g. UTF-8 or "/", goes to Klein).
_HOT_NAME = re.compile(rb"(?!\.\.?$)[a-zA-Z0-9._-]{1,255}")

log = Logger(namespace="flasfka.web")


def render_values(records: list[Message]) -> list[Any]:
    """Message values for JSON: UTF-8 text as a string, other bytes as {"base64": ...}, null."""
    try:
        return [record.value().decode() for record in records]
    except (UnicodeDecodeError, AttributeError):
        pass
    values: list[Any] = []
    for record in records:
        value = record.value()
        if value is None:
            values.append(None)
            continue
        try:
            values.append(value.decode())
        except UnicodeDecodeError:
            values.append({"base64": base64.b64encode(value).decode("ascii")})
    return values


def json_error(request: IRequest, error: GatewayError) -> bytes:
    """Answer a GatewayError: its status, headers and {"error": message}."""
    request.setResponseCode(error.status)
    request.setHeader(b"Content-Type", _JSON)
    for name, value in error.headers().items():
        request.setHeader(name, value)
    return orjson.dumps({"error": error.message, "status": error.status})


class TextConverter(PathConverter):
    """A key or group in the path: any characters once percent-decoded, '/' and newlines too.

    werkzeug's path converter stops at a newline ('.' without DOTALL), so a key holding
    %0A got 404.
    """

    regex = "(?s:.+?)"
    part_isolating = False


class FlasfkaWeb:
    """The Klein application: POST and GET on topics, over a Gateway."""

    app = Klein()
    app.url_map.converters["text"] = TextConverter

    def __init__(self, gateway: Gateway, default_group: str, default_limit: int, max_limit: int):
        self._gateway = gateway
        self._default_group = default_group
        self._default_limit = default_limit
        self._max_limit = max_limit

    def resource(self) -> IResource:
        """The twisted.web resource serving this app (hot routes first, then Klein)."""
        return HotRoutes(self, self.app.resource())

    @app.handle_errors(GatewayError)
    def _gateway_error(self, request: IRequest, failure: Failure) -> bytes:
        return json_error(request, failure.value)

    @app.route("/<topic>/", methods=["POST"])
    async def post(self, request: IRequest, topic: str) -> bytes:
        """POST /{topic}/: send the body's messages, 204 once all are acknowledged."""
        return await self._post(request, topic, None)

    @app.route("/<topic>/<text:key>/", methods=["POST"])
    async def post_keyed(self, request: IRequest, topic: str, key: str) -> bytes:
        """POST /{topic}/{key}/: the same, every message with this record key."""
        return await self._post(request, topic, key.encode())

    async def _post(self, request: IRequest, topic: str, key: bytes | None) -> bytes:
        check_topic(topic)
        values = parse_messages(request.content.read())
        await self._gateway.produce(topic, values, key)
        request.setResponseCode(204)
        return b""

    @app.route("/<topic>/", methods=["GET"])
    async def get(self, request: IRequest, topic: str) -> bytes:
        """GET /{topic}/: the next messages for the default group."""
        return await self._get(request, topic, self._default_group)

    @app.route("/<topic>/<text:group>/", methods=["GET"])
    async def get_group(self, request: IRequest, topic: str, group: str) -> bytes:
        """GET /{topic}/{group}/: the next messages for a named group."""
        return await self._get(request, topic, group)

    async def _get(self, request: IRequest, topic: str, group: str) -> bytes:
        check_topic(topic)
        check_group(group)
        raw_limit = request.args.get(b"limit")
        limit = parse_limit(
            raw_limit[-1] if raw_limit else None, self._default_limit, self._max_limit
        )
        records = await self._gateway.fetch(topic, group, limit)
        request.setHeader(b"Content-Type", _JSON)
        return orjson.dumps({"group": group, "messages": render_values(records)})


class HotRoutes(Resource):
    """POST and GET on /{topic}/ and /{topic}/{key or group}/ without Klein's routing.

    The routes that carry the load run the same coroutines as their Klein routes and
    answer the same way (GatewayError as JSON, anything else as Twisted's 500, a
    disconnect cancels the request), but skip werkzeug's URL matching and Klein's
    renderer, and send a Content-Length instead of a chunked body. A path Klein would
    decode differently or reject (an invalid topic, a key or group beyond [a-zA-Z0-9._-])
    is left to Klein, as is any other request.
    """

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, web: FlasfkaWeb, fallback: IResource) -> None:
        super().__init__()
        self._web = web
        self._fallback = fallback

    def render(self, request: IRequest) -> Any:
        """Serve a hot route, or hand the request to Klein."""
        postpath = request.postpath  # path segments, already percent-decoded by Twisted
        method = request.method
        if (
            2 <= len(postpath) <= 3
            and not postpath[-1]
            and (method == b"POST" or method == b"GET")
            and _HOT_TOPIC.fullmatch(postpath[0])
            and (len(postpath) == 2 or _HOT_NAME.fullmatch(postpath[1]))
        ):
            topic = postpath[0].decode("ascii")
            name = postpath[1] if len(postpath) == 3 else None
            if method == b"POST":
                work = self._web._post(request, topic, name)
            else:
                group = name.decode("ascii") if name else self._web._default_group
                work = self._web._get(request, topic, group)
            self._respond(request, Deferred.fromCoroutine(work))
            return NOT_DONE_YET
        return self._fallback.render(request)

    @staticmethod
    def _respond(request: IRequest, d: Deferred[bytes]) -> None:
        finished = False

        def on_finish(result: object) -> None:
            nonlocal finished
            finished = True
            if isinstance(result, Failure):  # the connection was lost first
                d.cancel()

        request.notifyFinish().addBoth(on_finish)

        def write(body: bytes) -> None:
            if finished:
                return
            if body:
                request.setHeader(b"Content-Length", b"%d" % len(body))
                request.write(body)
            request.finish()

        def fail(failure: Failure) -> None:
            if finished:
                if not failure.check(CancelledError):
                    log.failure("Unhandled error processing request", failure)
                return
            if failure.check(GatewayError):
                write(json_error(request, failure.value))
            else:
                request.processingFailed(failure)

        d.addCallbacks(write, fail).addErrback(
            lambda f: log.failure("Unhandled error writing response", f)
        )


class GatewayRequest(server.Request):
    """A Request that carries X-Flasfka-Version and refuses bodies over max_body_size with 413.

    An over-long body is never stored: the 413 is written as soon as the Content-Length (or
    the running total of a chunked body) passes the limit, and the connection is closed.
    """

    max_body_size = 10 * 1024 * 1024
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
        if self.content.tell() + len(data) > self.max_body_size:
            self.content.close()
            self._refuse("chunked body")
            return
        super().handleContentChunk(data)

    def _refuse(self, what: str) -> None:
        self._refused = True
        self.content = io.BytesIO()
        self.requestHeaders.removeHeader(b"Expect")
        body = orjson.dumps(
            {
                "error": f"{what} is over the limit of {self.max_body_size} bytes (MAX_BODY_SIZE)",
                "status": 413,
            }
        )
        head = (
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Connection: close\r\n" + VERSION_HEADER + b": " + __version__.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        self.channel.transport.write(head + body)
        self.channel.transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        """Route the request, unless it was already answered with 413."""
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def process(self) -> None:
        """Stamp the version header on every response, then render."""
        self.responseHeaders.setRawHeaders(VERSION_HEADER, [__version__.encode()])
        super().process()


class GatewayChannel(http.HTTPChannel):
    """An HTTPChannel that gives each request a total deadline to arrive.

    HTTPChannel's idle timeout restarts on every byte, so a client sending its headers or
    body one byte a second (slowloris) would hold the connection forever. Here a request's
    head and body must arrive within request_timeout seconds of its first byte, else the
    client gets 408 and the connection is closed. A client that stops reading its response
    is cut by the idle timeout, then aborted after abortTimeout seconds.
    """

    request_timeout = 60.0
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

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802 (Twisted's name)
        """Stop the deadline with the connection."""
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
        body = orjson.dumps({"error": message, "status": status})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n" % (status, reason.encode())
            + b"Connection: close\r\n"
            + VERSION_HEADER
            + b": "
            + __version__.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def _too_slow(self) -> None:
        self._deadline = None
        if self._handlingRequest:
            return
        self._log.info("request not received in time from {peer}", peer=self.transport.getPeer())
        self._answer(
            408,
            "Request Timeout",
            f"the request did not arrive within {self.request_timeout:g} s (HTTP_IDLE_TIMEOUT)",
        )
        self.timeoutConnection()  # close, and abort if the client does not read


def make_site(
    resource: IResource,
    max_body_size: int,
    idle_timeout: float,
    site_class: type[server.Site] = server.Site,
    **site_options: Any,
) -> server.Site:
    """A Site (of site_class, given site_options) with flasfka's request and channel classes.

    idle_timeout (HTTP_IDLE_TIMEOUT) bounds both the idle time of a connection and the time
    a request may take to arrive; a client that stops reading is aborted after as long again.
    """
    request_factory = type("FlasfkaRequest", (GatewayRequest,), {"max_body_size": max_body_size})
    site = site_class(
        resource, requestFactory=request_factory, timeout=idle_timeout, **site_options
    )
    site.protocol = type(
        "FlasfkaChannel",
        (GatewayChannel,),
        {"request_timeout": idle_timeout, "abortTimeout": idle_timeout},
    )
    site.displayTracebacks = False
    site.noisy = False
    return site
