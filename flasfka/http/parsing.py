"""Checks of client input: topic names, groups, query parameters and POST bodies."""

from __future__ import annotations

import re
from typing import Any

import orjson

from flasfka.errors import InvalidInput
from flasfka.http.routes import TOPIC_PATTERN

_TOPIC_RE = re.compile(TOPIC_PATTERN)

#: The body format, quoted in every error about a POST body.
EXPECTED_FORMAT = '{"messages": ["message1", "message2", ...]}'


#: The JSON type of a parsed value, for errors that say what was sent instead.
JSON_TYPES = {
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
    str: "string",
}


def check_topic(topic: str) -> str:
    """Return topic if it is a legal Kafka topic name, else raise InvalidInput."""
    if _TOPIC_RE.fullmatch(topic) is None:
        raise InvalidInput(
            f"invalid topic name {topic[:300]!r}: a topic name is 1-249 characters "
            "of [a-zA-Z0-9._-], and not '.' or '..'"
        )
    return topic


#: What C's isspace() calls white space.
_C_SPACE = " \t\n\v\f\r"


def check_group(group: str) -> str:
    """Return group if it can name a consumer group (non-empty), else raise InvalidInput."""
    if not group:
        raise InvalidInput("invalid group name: it must not be empty")
    # librdkafka takes a group.id of only white space for no group at all, and
    # confluent-kafka then aborts the whole process.
    if not group.strip(_C_SPACE):
        raise InvalidInput("invalid group name: it must not be only white space")
    if len(group) > 255:
        raise InvalidInput("invalid group name: it must be at most 255 characters")
    return group


def parse_limit(raw: bytes | None, default: int, maximum: int) -> int:
    """Parse the ?limit= query argument: an integer from 1 to maximum."""
    if raw is None:
        return default
    text = raw.decode("ascii", "replace").strip()
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(
            f"invalid limit {text[:40]!r}: it must be an integer from 1 to {maximum}"
        )
    limit = int(text) if len(text) < 20 else maximum + 1
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"invalid limit {limit}: it must be an integer from 1 to {maximum}")
    return limit


def messages_list(body: bytes) -> list[Any]:
    """The "messages" list of a JSON body {"messages": [...]}, or raise InvalidInput."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"body is not valid JSON ({e}); expected {EXPECTED_FORMAT}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"body must be a JSON object; expected {EXPECTED_FORMAT}")
    if "messages" not in document:
        raise InvalidInput(f'body lacks "messages"; expected {EXPECTED_FORMAT}')
    messages = document["messages"]
    if not isinstance(messages, list):
        raise InvalidInput(f'"messages" must be a list; expected {EXPECTED_FORMAT}')
    return messages


def parse_messages(body: bytes) -> list[bytes]:
    """Parse a body of strings only into the UTF-8 encoded messages, in order, or raise
    InvalidInput (the seed's body; record objects are flasfka.http.bodies')."""
    messages = messages_list(body)
    try:
        return [message.encode() for message in messages]
    except AttributeError:
        pass
    for index, message in enumerate(messages):
        if not isinstance(message, str):
            raise InvalidInput(
                f"message {index} is a JSON {JSON_TYPES[type(message)]}, not a string; "
                f"expected {EXPECTED_FORMAT}"
            )
    raise AssertionError("unreachable")  # pragma: no cover


#: A number as JSON writes it (an exponent allowed; no nan, inf or hex).
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

#: The values ?format= takes: "values" (the seed's bare values) or "records".
FORMATS = ("values", "records")


def parse_timeout(raw: bytes | None, maximum: float) -> float | None:
    """Parse the ?timeout= query argument: decimal seconds from 0 to maximum (None: absent)."""
    if raw is None:
        return None
    text = raw.decode("ascii", "replace").strip()
    if len(text) > 40 or _NUMBER_RE.fullmatch(text) is None:
        raise InvalidInput(
            f"invalid timeout {text[:40]!r}: it must be a decimal number of seconds "
            f"from 0 to {maximum:g}"
        )
    timeout = float(text)
    if not 0 <= timeout <= maximum:  # -0 is 0; an overflow is inf
        raise InvalidInput(
            f"invalid timeout {text}: it must be from 0 to {maximum:g} seconds "
            "(CONSUMER_MAX_TIMEOUT)"
        )
    return max(timeout, 0.0)


def parse_format(raw: bytes | None) -> str:
    """Parse the ?format= query argument: "values" (the default) or "records"."""
    if raw is None:
        return "values"
    text = raw.decode("ascii", "replace").strip()
    if text not in FORMATS:
        raise InvalidInput(f"invalid format {text[:40]!r}: it must be one of {', '.join(FORMATS)}")
    return text
