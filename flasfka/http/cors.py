"""CORS: which browser origins may call flasfka, and the preflight answer for them.

Only an origin on the CORS_ORIGINS allowlist (or any, with "*") gets CORS headers; any other
origin's request is served as if CORS did not exist, so the browser keeps it from the page.
A preflight (OPTIONS with Access-Control-Request-Method) takes, commits and produces nothing
and needs no credentials, as browsers send none with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.web.iweb import IRequest

from flasfka.http.routes import allowed_methods

#: The request headers a page may send.
ALLOWED_HEADERS = b"Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Prefer"
#: The response headers a page may read beyond the CORS-safelisted ones.
EXPOSED_HEADERS = b"X-Flasfka-Version, Retry-After"
#: Seconds a browser may cache a preflight answer.
MAX_AGE = b"600"


class Cors:
    """The CORS_ORIGINS allowlist applied to each request."""

    def __init__(self, origins: Iterable[str]) -> None:
        listed = list(origins)
        self._any = "*" in listed
        self._origins = frozenset(o.encode() for o in listed if o != "*")

    def apply(self, request: IRequest) -> bytes | None:
        """Add the CORS headers an allowed origin gets; the whole answer of a preflight."""
        if not self._any:
            request.setHeader(b"Vary", b"Origin")  # the answer depends on it, for caches
        origin = request.getHeader(b"origin")
        if origin is None:
            return None
        if self._any:
            request.setHeader(b"Access-Control-Allow-Origin", b"*")
        elif origin in self._origins:
            request.setHeader(b"Access-Control-Allow-Origin", origin)
        else:
            return None
        if request.method == b"OPTIONS" and request.getHeader(b"access-control-request-method"):
            methods = ", ".join(allowed_methods(request.path)).encode()
            request.setResponseCode(204)
            request.setHeader(b"Allow", methods)
            request.setHeader(b"Access-Control-Allow-Methods", methods)
            request.setHeader(b"Access-Control-Allow-Headers", ALLOWED_HEADERS)
            request.setHeader(b"Access-Control-Max-Age", MAX_AGE)
            return b""
        request.setHeader(b"Access-Control-Expose-Headers", EXPOSED_HEADERS)
        return None
