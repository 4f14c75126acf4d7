"""The root resource: the route table served through the fast path, then Klein.

Rules that hold for every request are decided here, before any handler runs: OPTIONS is
answered from the route table, a path that is not UTF-8 and a path or method the table does
not serve get a JSON error saying what to send instead.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import PathConverter, RequestRedirect

from flasfka.errors import FlasfkaError
from flasfka.http.auth import Guard
from flasfka.http.cors import Cors
from flasfka.http.hot import HotPath
from flasfka.http.parsing import check_topic
from flasfka.http.rendering import JSON, error_body, json_error
from flasfka.http.routes import ROUTES, allowed_methods, is_own_path


class TextConverter(PathConverter):
    """A key or group in the path: any characters once percent-decoded, '/' and newlines too.

    werkzeug's path converter stops at a newline ('.' without DOTALL).
    """

    regex = "(?s:.+?)"
    part_isolating = False


def klein_app(handlers: dict[str, object]) -> Klein:
    """A Klein app with one route per row of the route table, and JSON for every error."""
    app = Klein()
    app.url_map.converters["text"] = TextConverter
    # werkzeug matches the decoded path: merged, "/t/a%2F%2Fb/" would be key "a/b" and
    # "/t/g%2F/" a redirect to key "g" (it is a 404 now: a key cannot end in '/').
    app.url_map.merge_slashes = False
    for route in ROUTES:
        owner, name = route.handler.split(".")
        endpoint = getattr(handlers[owner], name)
        app.route(route.klein_rule, methods=[route.method], endpoint=route.name)(endpoint)

    @app.handle_errors(FlasfkaError)
    def domain_error(request: IRequest, failure: Failure) -> bytes:
        return json_error(request, failure.value)  # type: ignore[arg-type]

    @app.handle_errors(RequestRedirect)
    def redirect(request: IRequest, failure: Failure) -> bytes:
        target = redirect_target(request, failure.value.new_url)  # type: ignore[union-attr]
        request.setResponseCode(308)
        request.setHeader(b"Location", target.encode())
        return _error(request, 308, f"a topic path ends in '/': use {target}")

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(request: IRequest, failure: Failure) -> bytes:
        return _not_allowed(request, allowed_methods(request.path))

    @app.handle_errors(NotFound)
    def not_found(request: IRequest, failure: Failure) -> bytes:
        return _error(
            request,
            404,
            "no such endpoint: a topic is /{topic}/ or /{topic}/{key or group}/; "
            "flasfka's own are listed at / and /openapi.json",
        )

    return app


#: A Host header that can stand in a URL as it is: a name or an address, with a port.
_HOST = re.compile(rb"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def redirect_target(request: IRequest, canonical: str) -> str:
    """Where a path without its trailing slash is redirected: the canonical path werkzeug
    found, with the request's query string (a redirect must not turn ?ack=explicit into an
    at-most-once read), on the scheme and Host the client used (werkzeug would name the
    listener's port, wrong behind a proxy); a path alone if the Host is unusable."""
    path = urlsplit(canonical).path
    _, question, query = request.uri.partition(b"?")
    if question:
        path += "?" + query.decode("ascii", "replace")
    host = request.getHeader(b"host")
    if host is None or not _HOST.fullmatch(host):
        return path
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{host.decode('ascii')}{path}"


def _encoded_slash_in_topic(path: bytes) -> str | None:
    """The topic of a path whose first segment holds an encoded '/' (which Klein, matching
    the decoded path, would split into a topic and a key), else None."""
    first = path[1:].split(b"/", 1)[0]
    if b"%2f" not in first.lower():
        return None
    return unquote_to_bytes(first).decode("utf-8")


def _not_allowed(request: IRequest, methods: list[str]) -> bytes:
    request.setHeader(b"Allow", ", ".join(methods).encode())
    return _error(
        request,
        405,
        f"{request.method.decode('ascii', 'replace')} is not served here; "
        f"use {', '.join(methods)} (see /openapi.json)",
    )


def _error(request: IRequest, status: int, message: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", JSON)
    return error_body(status, message)


class GatewayRoot(Resource):
    """The Site's resource: CORS, the guard, OPTIONS, then the fast path, then Klein."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(
        self, handlers: dict[str, object], guard: Guard | None = None, cors: Cors | None = None
    ) -> None:
        super().__init__()
        self._hot = HotPath(handlers)
        self._klein: IResource = klein_app(handlers).resource()
        self._guard = guard
        self._cors = cors

    def render(self, request: IRequest) -> Any:
        """CORS headers (a preflight is answered), then the guard, then the request itself."""
        if self._cors is not None:
            preflight = self._cors.apply(request)
            if preflight is not None:
                return preflight
        if self._guard is not None:
            verdict = self._guard.check(request)
            if isinstance(verdict, Deferred):
                verdict.addCallback(self._checked, request)
                verdict.addErrback(self._failed, request)
                return NOT_DONE_YET
            if verdict is not None:
                return verdict
        return self._serve(request)

    def _checked(self, verdict: bytes | None, request: IRequest) -> None:
        """Go on with a request whose credentials were verified in a thread."""
        if request._disconnected or request.finished:  # type: ignore[attr-defined]
            return
        body = verdict if verdict is not None else self._serve(request)
        if body is NOT_DONE_YET:
            return
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def _failed(self, failure: Failure, request: IRequest) -> None:
        """The check itself failed (a bug): Twisted's 500, as for a handler's error."""
        request.processingFailed(failure)  # type: ignore[attr-defined]

    def _serve(self, request: IRequest) -> Any:
        """Answer OPTIONS and non-UTF-8 paths here, serve a hot route, or hand it to Klein."""
        if self._hot.serve(request):  # type: ignore[arg-type]  # Site's Request
            return NOT_DONE_YET
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            return _error(request, 400, "the path is not UTF-8 once percent-decoded")
        topic = _encoded_slash_in_topic(request.path)
        if topic is not None:
            try:
                check_topic(topic)
            except FlasfkaError as e:
                return _error(request, 400, e.message)
        methods = allowed_methods(request.path)
        if request.method == b"OPTIONS":
            request.setResponseCode(204)
            request.setHeader(b"Allow", ", ".join(methods).encode())
            return b""
        if is_own_path(request.path) and request.method.decode("ascii", "replace") not in methods:
            return _not_allowed(request, methods)  # not a redirect to the topic of that name
        return self._klein.render(request)
