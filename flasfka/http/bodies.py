"""POST bodies in every form: the seed's JSON strings, record objects, raw bytes and NDJSON.

A body is checked whole before anything of it is sent: any error is an InvalidInput naming
the element (``message i`` of a JSON body, ``line n`` of an NDJSON body) and the field, so a
400 always means that nothing of the POST was written.

A JSON or NDJSON body of strings only is the seed's form and stays on its fast path (a list
of UTF-8 values, one key for all); a body with at least one record object becomes a list of
Outgoing messages, each with its own key, headers, partition and timestamp.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from flasfka.errors import InvalidInput
from flasfka.http.parsing import EXPECTED_FORMAT, JSON_TYPES, messages_list
from flasfka.records import Outgoing

OCTET_STREAM = b"application/octet-stream"
NDJSON = b"application/x-ndjson"

#: The fields of a record object; only "value" is required.
RECORD_FIELDS = ("value", "key", "headers", "partition", "timestamp")
_FIELDS = frozenset(RECORD_FIELDS)
_RECORD_FORMAT = (
    'a record object is {"value": V, "key": V, "headers": [{"key": string, "value": V}], '
    '"partition": int, "timestamp": ms} with only "value" required, where V is a string, '
    'null or {"base64": "..."}'
)
_HEADERS_SHAPE = 'a list of {"key": string, "value": string, null or {"base64": "..."}}'
_MISSING = object()
_MAX_PARTITION = 2**31 - 1
_MAX_TIMESTAMP = 2**63 - 1


class ParsedBody:
    """The messages of a POST: values (all strings: the seed form) or records (any form)."""

    __slots__ = ("_lines", "records", "values")

    def __init__(
        self,
        values: list[bytes] | None = None,
        records: list[Outgoing] | None = None,
        lines: list[int] | None = None,
    ) -> None:
        #: UTF-8 values sharing the path's key (the seed's fast path), or None.
        self.values = values
        #: Messages with their own keys, headers, partitions, timestamps, or None.
        self.records = records
        self._lines = lines

    def element(self, index: int) -> str:
        """How an error names message index: "message 3" (JSON) or "line 4" (NDJSON)."""
        if self._lines is not None:
            return f"line {self._lines[index]}"
        return f"message {index}"

    def __len__(self) -> int:
        return len(self.values if self.values is not None else self.records or ())


def media_type(content_type: bytes | None) -> bytes:
    """The media type of a Content-Type header, lower case, without parameters."""
    if not content_type:
        return b""
    return content_type.split(b";", 1)[0].strip().lower()


def parse_body(body: bytes, content_type: bytes | None, path_key: bytes | None) -> ParsedBody:
    """The messages of a POST body, in order, by its Content-Type; or raise InvalidInput.

    application/octet-stream is one message of the raw bytes; application/x-ndjson one
    element per line; anything else is JSON (the seed ignored the Content-Type).
    """
    kind = media_type(content_type)
    if kind == OCTET_STREAM:
        return ParsedBody(values=[body])
    if kind == NDJSON:
        return parse_ndjson(body, path_key)
    return parse_json(body, path_key)


def parse_json(body: bytes, path_key: bytes | None) -> ParsedBody:
    """A JSON body {"messages": [...]} of strings and record objects."""
    messages = messages_list(body)
    try:
        return ParsedBody(values=[message.encode() for message in messages])
    except AttributeError:
        pass  # not all strings
    records = []
    for index, message in enumerate(messages):
        records.append(_element(message, f"message {index}", path_key))
    return ParsedBody(records=records)


def parse_ndjson(body: bytes, path_key: bytes | None) -> ParsedBody:
    """An NDJSON body: one string or record object per line; blank lines are skipped.

    Each line is parsed on its own, so a large upload is never one JSON document.
    """
    elements: list[Any] = []
    lines: list[int] = []
    loads = orjson.loads
    for number, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            elements.append(loads(line))
        except orjson.JSONDecodeError as e:
            raise InvalidInput(
                f"line {number} is not valid JSON ({e}); an NDJSON body has one JSON string "
                "or record object per line"
            ) from None
        lines.append(number)
    try:
        return ParsedBody(values=[element.encode() for element in elements], lines=lines)
    except AttributeError:
        pass
    records = []
    for number, element in zip(lines, elements, strict=True):
        records.append(_element(element, f"line {number}", path_key))
    return ParsedBody(records=records, lines=lines)


def _element(element: Any, where: str, path_key: bytes | None) -> Outgoing:
    """One element of messages: a string (the seed meaning) or a record object."""
    if type(element) is str:
        return Outgoing(element.encode(), path_key)
    if type(element) is dict:
        return parse_record(element, where, path_key)
    raise InvalidInput(
        f"{where} is a JSON {JSON_TYPES[type(element)]}, not a string or a record object; "
        f"expected {EXPECTED_FORMAT}; {_RECORD_FORMAT}"
    )


def parse_record(record: dict[str, Any], where: str, path_key: bytes | None) -> Outgoing:
    """A record object; InvalidInput names where (the element) and the field.

    Written for speed (a 100-record POST parses 100 of these): the common types are checked
    first, and error texts are only built for errors.
    """
    if not _FIELDS >= record.keys():
        unknown = next(name for name in record if name not in _FIELDS)
        raise InvalidInput(f'{where}: unknown field "{unknown[:100]}"; {_RECORD_FORMAT}')
    try:
        value = record["value"]
    except KeyError:
        raise InvalidInput(f'{where}: lacks "value"; {_RECORD_FORMAT}') from None
    value = value.encode() if type(value) is str else _bytes(value, where, '"value"')
    if len(record) == 1:
        return Outgoing(value, path_key)
    key = path_key
    if "key" in record:
        if path_key is not None:
            raise InvalidInput(
                f'{where}: "key" is given both in the path and in the record object; '
                "give it in one place"
            )
        key = record["key"]
        key = key.encode() if type(key) is str else _bytes(key, where, '"key"')
    headers = record.get("headers")
    if headers is not None or "headers" in record:
        headers = _headers(headers, where)
    partition = record.get("partition", -1)
    if partition != -1 or "partition" in record:
        partition = _integer(partition, where, '"partition"', 0, _MAX_PARTITION)
    timestamp = record.get("timestamp", 0)
    if timestamp != 0 or "timestamp" in record:
        timestamp = _integer(
            timestamp, where, '"timestamp" (milliseconds since the epoch)', 1, _MAX_TIMESTAMP
        )
    return Outgoing(value, key, headers, partition, timestamp)


def _bytes(value: Any, where: str, field: str) -> bytes | None:
    """A key or value: a string (UTF-8), null, or {"base64": "..."} (other bytes)."""
    if type(value) is str:
        return value.encode()
    if value is None:
        return None
    if type(value) is dict and len(value) == 1 and type(value.get("base64")) is str:
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f'{where} {field}: "base64" is not valid base64') from None
    raise InvalidInput(
        f'{where} {field} must be a string, null or {{"base64": "..."}}, not '
        f"{orjson.dumps(value).decode()[:100]}"
    )


def _headers(headers: Any, where: str) -> list[tuple[str, bytes | None]]:
    """Record headers: a list of {"key": string, "value": V}, in order, keys may repeat."""
    if type(headers) is not list:
        raise InvalidInput(f'{where} "headers" must be {_HEADERS_SHAPE}')
    parsed: list[tuple[str, bytes | None]] = []
    for header in headers:
        if type(header) is dict and len(header) == 2:
            name = header.get("key")
            value = header.get("value", _MISSING)
            if type(name) is str and value is not _MISSING:
                if type(value) is not str:
                    index = len(parsed)
                    value = _bytes(value, where, f'"headers"[{index}] "value"')
                    parsed.append((name, value))
                else:
                    parsed.append((name, value.encode()))
                continue
        raise InvalidInput(
            f'{where} "headers"[{len(parsed)}] must be {{"key": string, "value": V}}; '
            f"headers are {_HEADERS_SHAPE}"
        )
    return parsed


def _integer(value: Any, where: str, field: str, low: int, high: int) -> int:
    """An integer in [low, high]; 3.0 or 3e0 is one too (as JSON Schema counts integers)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or not low <= value <= high:
        raise InvalidInput(f"{where} {field} must be an integer from {low} to {high}")
    return value
