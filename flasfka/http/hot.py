"""The fast path: the hot rows of the route table served without Klein's routing.

The rows that carry the load run the same handlers as their Klein routes and answer the same
way (domain errors as JSON, anything else as Twisted's 500, a disconnect cancels the
request), but skip werkzeug's URL matching and Klein's renderer, and send a Content-Length
instead of a chunked body. A path Klein would decode differently or reject (an invalid
topic, a key or group beyond [a-zA-Z0-9._-]) is left to Klein, as is any other request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request

from flasfka.errors import FlasfkaError
from flasfka.http.rendering import json_error
from flasfka.http.routes import PLAIN_NAME_PATTERN, ROUTES, TOPIC_PATTERN

log = Logger(namespace="flasfka.http")

_TOPIC = re.compile(TOPIC_PATTERN.encode())
_NAME = re.compile(PLAIN_NAME_PATTERN.encode())

#: A handler of a hot route: (request, topic, name or None) -> its body.
HotHandler = Callable[[Request, str, Any], Coroutine[Any, Any, bytes]]


class HotPath:
    """Serves the hot rows of the route table; says no to anything else."""

    def __init__(self, handlers: dict[str, object]) -> None:
        #: (method, segments, last segment) -> handler, from the route table; the last
        #: segment is empty for a topic path (it ends in '/'), else the route's own name.
        self._routes: dict[tuple[bytes, int, bytes], HotHandler] = {}
        for route in ROUTES:
            if route.hot:
                owner, name = route.handler.split(".")
                handler = getattr(handlers[owner], name)
                last = route.template.rsplit("/", 1)[1].encode()
                self._routes[(route.method.encode(), route.segments, last)] = handler

    def serve(self, request: Request) -> bool:
        """Answer request if it is on a hot route with plain segments; else return False."""
        postpath = request.postpath  # path segments, already percent-decoded by Twisted
        assert postpath is not None  # set by Site.getResourceFor
        handler = self._routes.get((request.method, len(postpath), postpath[-1]))
        if (
            handler is None
            or not _TOPIC.fullmatch(postpath[0])
            or (len(postpath) == 3 and not _NAME.fullmatch(postpath[1]))
        ):
            return False
        name = postpath[1].decode("ascii") if len(postpath) == 3 else None
        work = handler(request, postpath[0].decode("ascii"), name)
        _respond(request, Deferred.fromCoroutine(work))
        return True


def _respond(request: Request, d: Deferred[bytes]) -> None:
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
        error = failure.value
        if isinstance(error, FlasfkaError):
            write(json_error(request, error))
        else:
            request.processingFailed(failure)

    d.addCallbacks(write, fail).addErrback(
        lambda f: log.failure("Unhandled error writing response", f)
    )
