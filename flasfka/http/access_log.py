"""One access line per answered request, through twisted.logger (not twisted.web's log file)."""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web.server import Request

log = Logger(namespace="flasfka.access")


def _text(raw: bytes) -> str:
    """Request bytes as printable text (no control characters can reach the log)."""
    text = raw.decode("ascii", "backslashreplace")
    if text.isprintable() and "\\" not in text:  # the usual path: nothing to escape
        return text
    return text.encode("unicode_escape").decode("ascii")


#: The status logged for a request whose client left before any of its answer was written
#: (nginx's "client closed request"); one that left midway (a stream) logs the status it had.
CLIENT_LEFT = 499


def log_access(request: Request, seconds: float, client_left: bool = False) -> None:
    """Log method, path, status, body bytes sent and duration of a finished request, or of
    one whose connection was lost first (client_left).

    The line is formatted here, once, and the event's format only names it: twisted.logger's
    own formatting of six fields cost more than the rest of the line's way to stdout. The
    fields stay in the event for the JSON log format.
    """
    client = getattr(request.getClientAddress(), "host", "-")
    # The principal, never the credential (set by flasfka.http.auth when auth is on).
    principal = getattr(request, "flasfka_principal", None)
    method = _text(request.method)
    path = _text(request.uri)
    status, sent = request.code, request.sentLength
    if client_left and not request.startedWriting:
        status = CLIENT_LEFT
    text = f'{client} "{method} {path}" {status} {sent} {seconds:.3f}s'
    if principal is not None:
        text += f" principal={_text(principal.encode())}"
    log.info(
        "{log_text}",
        log_text=text,
        client=client,
        principal=principal,
        method=method,
        path=path,
        status=status,
        bytes=sent,
        duration=seconds,
    )
