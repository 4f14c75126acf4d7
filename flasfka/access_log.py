"""One access line per answered request, through twisted.logger (not twisted.web's log file)."""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web.iweb import IRequest

log = Logger(namespace="flasfka.access")


def _text(raw: bytes) -> str:
    """Request bytes as printable text (no control characters can reach the log)."""
    return raw.decode("ascii", "backslashreplace").encode("unicode_escape").decode("ascii")


def log_access(request: IRequest, seconds: float) -> None:
    """Log method, path, status, body bytes sent and duration of a finished request."""
    peer = request.getClientAddress()
    log.info(
        '{client} "{method} {path}" {status} {bytes} {duration:.3f}s',
        client=getattr(peer, "host", "-"),
        method=_text(request.method),
        path=_text(request.uri),
        status=request.code,
        bytes=request.sentLength,
        duration=seconds,
    )
