"""How a stream frames messages: the content types it answers with, SSE's ``data:`` lines or
NDJSON's lines, and SSE events whose ``id:`` is a lease's cursor.

Framing is the hot part of a stream: plain ASCII values are framed by joins alone, other
strings by one orjson call for a whole chunk when that is safe (tests/unit/test_stream_framing
checks both against framing each message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from twisted.web.iweb import IRequest

from flasfka.http.rendering import render_records, render_values
from flasfka.leases import Lease

SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"


def stream_kind(request: IRequest) -> bytes | None:
    """SSE or NDJSON if the request's Accept asks for a stream, else None (a plain GET)."""
    accept = request.getHeader(b"accept")
    if not accept:
        return None
    types = {_media_type(part) for part in accept.split(b",")}
    if SSE in types:
        return SSE
    if NDJSON in types:
        return NDJSON
    return None


def _media_type(part: bytes) -> bytes:
    """One Accept element's media type, or b"" if it is refused (``q=0``)."""
    media, *params = part.split(b";")
    for param in params:
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"q":
            try:
                if float(value.strip()) <= 0:
                    return b""
            except ValueError:
                return b""  # RFC 9110: a q is 0 to 1 with at most three decimals
    return media.strip().lower()


@dataclass(frozen=True)
class Framing:
    """How a stream frames each message's JSON: ``head JSON tail``."""

    head: bytes
    tail: bytes

    def frame(self, items: list[Any]) -> bytes:
        """Each item's JSON, framed."""
        head, tail = self.head, self.tail
        return b"".join([head + orjson.dumps(item) + tail for item in items])

    def frame_verbatim(self, values: list[bytes | None]) -> bytes | None:
        """Values framed as JSON strings by joins alone, or None if one is not plain ASCII
        text (a null, a byte over 127, or one that JSON escapes: quote, backslash, control).

        The common case of a stream, at C speed: whether anything needs escaping is asked of
        orjson once for the whole batch (its JSON is then the text and two quotes), so no
        string object is made per value. Non-ASCII values take frame_texts: joined, the
        bytes of two invalid values could decode as one valid character.
        """
        if not values:
            return b""
        try:
            joined = b"".join(values)  # type: ignore[arg-type]  # a None raises TypeError
        except TypeError:
            return None
        if not joined.isascii() or len(orjson.dumps(joined.decode("ascii"))) != len(joined) + 2:
            return None
        head, tail = self.head + b'"', b'"' + self.tail
        return head + (tail + head).join(values) + tail  # type: ignore[arg-type]

    def frame_texts(self, texts: list[str]) -> bytes:
        """Strings, framed: one orjson call for the lot when that is safe.

        In a JSON array of strings with no escaped quote, every ``"`` delimits a string, so
        ``","`` is either between two strings or the whole of the string ``,``: without
        those, the frames are one replace away. Otherwise each string is encoded on its own.
        """
        if not texts:
            return b""
        body = orjson.dumps(texts)
        if b'\\"' in body or "," in texts:
            return self.frame(texts)
        return (
            self.head + body[1:-1].replace(b'","', b'"' + self.tail + self.head + b'"') + self.tail
        )


SSE_FRAMING = Framing(b"data: ", b"\n\n")
NDJSON_FRAMING = Framing(b"", b"\n")


def leased_events(leases: list[Lease], cursors: list[str], records_format: bool) -> bytes:
    """One SSE event per leased message, its ``id:`` the cursor of its lease."""
    records = [lease.records[0] for lease in leases]
    items: list[Any]
    if records_format:
        items = render_records(records)
        for item, lease in zip(items, leases, strict=True):
            item["deliveries"] = lease.deliveries[0]
    else:
        items = render_values(records)
    return b"".join(
        [
            b"id: " + cursor.encode("ascii") + b"\ndata: " + orjson.dumps(item) + b"\n\n"
            for cursor, item in zip(cursors, items, strict=True)
        ]
    )
