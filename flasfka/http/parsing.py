"""Checks of client input: topic names, groups, query parameters and POST bodies."""

from __future__ import annotations

import re

import orjson

from flasfka.errors import InvalidInput
from flasfka.http.routes import TOPIC_PATTERN

_TOPIC_RE = re.compile(TOPIC_PATTERN)

#: The body format, quoted in every error about a POST body.
EXPECTED_FORMAT = '{"messages": ["message1", "message2", ...]}'


_JSON_TYPES = {
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


def parse_messages(body: bytes) -> list[bytes]:
    """Parse a POST body into the UTF-8 encoded messages, in order, or raise InvalidInput."""
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
    try:
        return [message.encode() for message in messages]
    except AttributeError:
        pass
    for index, message in enumerate(messages):
        if not isinstance(message, str):
            raise InvalidInput(
                f"message {index} is a JSON {_JSON_TYPES[type(message)]}, not a string; "
                f"expected {EXPECTED_FORMAT}"
            )
    raise AssertionError("unreachable")  # pragma: no cover
