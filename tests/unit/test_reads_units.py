"""Unit tests of the read options: ?timeout=, ?format=, records rendering, stream Accept."""

from __future__ import annotations

import pytest

from flasfka.errors import InvalidInput
from flasfka.http.parsing import parse_format, parse_timeout
from flasfka.http.rendering import render_records
from flasfka.http.streaming import NDJSON, SSE, stream_kind
from flasfka.records import Record


@pytest.mark.parametrize(
    "raw, expected",
    [
        (None, None),
        (b"0", 0.0),
        (b"-0", 0.0),
        (b"10", 10.0),
        (b"2.5", 2.5),
        (b".5", 0.5),
        (b"30", 30.0),
        (b"1e1", 10.0),
        (b"1.2e-38", 1.2e-38),
    ],
)
def test_timeouts(raw, expected):
    assert parse_timeout(raw, 30.0) == expected


@pytest.mark.parametrize(
    "raw",
    [b"", b"-1", b"30.01", b"1e2", b"1e999", b"nan", b"inf", b"0x1", b"1,5", b"\xff", b"9" * 50],
)
def test_bad_timeouts(raw):
    with pytest.raises(InvalidInput, match="timeout"):
        parse_timeout(raw, 30.0)


def test_formats():
    assert parse_format(None) == "values"
    assert parse_format(b"values") == "values"
    assert parse_format(b"records") == "records"
    with pytest.raises(InvalidInput, match="format"):
        parse_format(b"RECORDS")


def test_records_render_keys_values_and_headers_like_values():
    records = [
        Record("t", 3, 7, 1700000000000, b"k", b"v", [("h", b"1"), ("h", None), ("b", b"\xff")]),
        Record("t", 0, 0, None, None, b"\xff", None),
    ]
    assert render_records(records) == [
        {
            "partition": 3,
            "offset": 7,
            "timestamp": 1700000000000,
            "key": "k",
            "value": "v",
            "headers": [
                {"key": "h", "value": "1"},
                {"key": "h", "value": None},
                {"key": "b", "value": {"base64": "/w=="}},
            ],
        },
        {
            "partition": 0,
            "offset": 0,
            "timestamp": None,
            "key": None,
            "value": {"base64": "/w=="},
            "headers": [],
        },
    ]


class _Request:
    def __init__(self, accept: bytes | None) -> None:
        self._accept = accept

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802 (Twisted's name)
        assert name == b"accept"
        return self._accept


@pytest.mark.parametrize(
    "accept, kind",
    [
        (None, None),
        (b"application/json", None),
        (b"*/*", None),
        (b"text/event-stream", SSE),
        (b"Text/Event-Stream; charset=utf-8", SSE),
        (b"application/json, text/event-stream;q=0.9", None),  # the client prefers JSON
        (b"application/json;q=0.5, text/event-stream", SSE),
        (b"text/event-stream, application/json", SSE),  # equal: the stream it named
        (b"*/*;q=0.9, text/event-stream", SSE),
        (b"*/*, text/event-stream;q=0.1", None),  # JSON (by */*) is preferred
        (b"application/*, application/x-ndjson;q=0.5", None),
        (b"text/*, text/event-stream;q=0.5", SSE),  # text/* does not cover JSON
        (b"text/event-stream;q=0.5, application/x-ndjson;q=0.8", NDJSON),
        (b"application/x-ndjson, text/event-stream", SSE),  # equal: SSE
        (b"text/event-stream;q=1.5", None),  # not a q
        (b"text/event-stream;q=nan", None),
        (b"application/x-ndjson", NDJSON),
        (b"text/event-stream-ish", None),
        (b"text/event-stream;q=0", None),  # refused: a plain GET
        (b"application/json;q=0, text/event-stream; Q=0.000", None),
        (b"text/event-stream;q=0, application/x-ndjson", NDJSON),
        (b"text/event-stream;q=oops", None),
    ],
)
def test_stream_kind_from_accept(accept, kind):
    assert stream_kind(_Request(accept)) == kind  # type: ignore[arg-type]
