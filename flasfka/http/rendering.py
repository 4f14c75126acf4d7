"""Every answer flasfka writes as JSON: bodies, errors and the status of each domain error."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from twisted.web.iweb import IRequest

from flasfka import __version__
from flasfka.errors import (
    BrokerRefused,
    Conflict,
    FlasfkaError,
    InFlight,
    InvalidInput,
    KeyReused,
    NotPermitted,
    TooLarge,
    Unavailable,
    UnknownTopic,
)
from flasfka.records import VALUE, Record

VERSION_HEADER = b"X-Flasfka-Version"
VERSION = __version__.encode()
JSON = b"application/json"

#: The HTTP status of each domain error (the most specific class listed wins).
STATUS_OF: dict[type[FlasfkaError], int] = {
    InvalidInput: 400,
    NotPermitted: 403,
    UnknownTopic: 404,
    InFlight: 409,
    KeyReused: 422,
    TooLarge: 413,
    BrokerRefused: 502,
    Conflict: 409,
    Unavailable: 503,
}


#: Reason phrases twisted.web lacks (422, 429) or words otherwise than the channel's own 413.
REASONS = {413: b"Payload Too Large", 422: b"Unprocessable Content", 429: b"Too Many Requests"}


def status_of(error: FlasfkaError) -> int:
    """The HTTP status that answers error."""
    for cls in type(error).__mro__:
        status = STATUS_OF.get(cls)
        if status is not None:
            return status
    return 500


def error_body(status: int, message: str) -> bytes:
    """The JSON body of every error: {"error": what went wrong and what to send, "status"}."""
    return orjson.dumps({"error": message, "status": status})


def json_error(request: IRequest, error: FlasfkaError) -> bytes:
    """Answer a domain error: its status, headers and JSON body."""
    status = status_of(error)
    request.setResponseCode(status, REASONS.get(status))
    request.setHeader(b"Content-Type", JSON)
    if isinstance(error, Unavailable):
        request.setHeader(b"Retry-After", str(error.retry_after).encode())
    return error_body(status, error.message)


def json_answer(request: IRequest, document: Any, status: int = 200) -> bytes:
    """Answer document as JSON with status."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", JSON)
    return orjson.dumps(document)


def raw_error(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 error answer that closes the connection, for the cases answered
    before any request object exists (bad HTTP, a header over the limit, a body over it)."""
    body = error_body(status, message)
    return (
        b"HTTP/1.1 %d %s\r\n" % (status, reason.encode())
        + b"Content-Type: application/json\r\nConnection: close\r\n"
        + VERSION_HEADER
        + b": "
        + VERSION
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


def render_values(records: list[Record]) -> list[Any]:
    """Record values for JSON: UTF-8 text as a string, other bytes as {"base64": ...}, null."""
    texts = render_texts(records)
    return texts if texts is not None else render_each(records)


def render_each(records: list[Record]) -> list[Any]:
    """Record values for JSON one by one (some are not UTF-8, or null)."""
    return [render_bytes(record.value) for record in records]


def render_texts(records: list[Record]) -> list[str] | None:
    """The values of records as strings if all are UTF-8 (the common case, decoded at C
    speed), else None."""
    try:
        return list(map(bytes.decode, map(VALUE, records)))
    except (UnicodeDecodeError, TypeError):  # TypeError: a null value
        return None


def render_bytes(value: bytes | None) -> Any:
    """One key or value for JSON: a string if UTF-8, else {"base64": ...}; None as null."""
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode("ascii")}


def render_records(records: list[Record]) -> list[dict[str, Any]]:
    """Records for ?format=records: partition, offset, timestamp, key, value and headers."""
    return [
        {
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": render_bytes(record.key),
            "value": render_bytes(record.value),
            "headers": [
                {"key": name, "value": render_bytes(value)} for name, value in record.headers or ()
            ],
        }
        for record in records
    ]
