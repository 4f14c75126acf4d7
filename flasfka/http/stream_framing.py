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

from flasfka.http.rendering import JSON, render_records, render_values
from flasfka.leases import Lease

SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"


def stream_kind(request: IRequest) -> bytes | None:
    """SSE or NDJSON if the request's Accept asks for a stream, else None (a plain GET).

    A stream is opt-in: its media type must be named (``*/*`` never streams), with a
    quality above 0 and at least that of JSON (``application/json``, or the range that
    covers it most specifically), so ``application/json, text/event-stream;q=0.5`` gets
    JSON. At equal quality the named stream wins, and SSE before NDJSON.
    """
    accept = request.getHeader(b"accept")
    if not accept:
        return None
    quality: dict[bytes, float] = {}
    for part in accept.split(b","):
        media, q = _media_range(part)
        quality[media] = max(q, quality.get(media, 0.0))
    kind = max((SSE, NDJSON), key=lambda each: quality.get(each, 0.0))  # a tie keeps SSE
    wanted = quality.get(kind, 0.0)
    if wanted <= 0:
        return None
    as_json = next((quality[m] for m in (JSON, b"application/*", b"*/*") if m in quality), 0.0)
    return kind if wanted >= as_json else None


def _media_range(part: bytes) -> tuple[bytes, float]:
    """One Accept element's media range and quality (0: refused, or not a valid q)."""
    media, *params = part.split(b";")
    q = 1.0
    for param in params:
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"q":
            try:
                q = float(value.strip())
            except ValueError:
                q = 0.0
            if not 0.0 <= q <= 1.0:  # RFC 9110: a q is 0 to 1 (NaN fails this too)
                q = 0.0
    return media.strip().lower(), q


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
