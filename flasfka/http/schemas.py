"""The JSON shapes of flasfka's requests and answers, as /openapi.json describes them.

The route table (flasfka.http.routes) names these in its rows; flasfka.http.openapi puts them
in the document. A body or answer shape that changes is changed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Where every error answer's schema is (the document's components).
ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True)
class Answer:
    """One status a route can answer, with the schema of its body (None: no body)."""

    description: str
    schema: dict[str, Any] | None = None
    content_type: str = "application/json"
    headers: tuple[str, ...] = ()
    #: Other (content type, schema) pairs the same status may answer with (content negotiation).
    alternatives: tuple[tuple[str, dict[str, Any]], ...] = ()


#: Standard base64 with its padding, as flasfka writes it and reads it (strictly).
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

VALUE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"type": "null"},
        {
            "type": "object",
            "required": ["base64"],
            "properties": {
                "base64": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "pattern": BASE64_PATTERN,
                }
            },
            "additionalProperties": False,
        },
    ]
}


def _headers(**item_rules: Any) -> dict[str, Any]:
    """A record's headers: a list of {"key", "value"} objects, each also under item_rules
    (a request's headers: additionalProperties=False)."""
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["key", "value"],
            "properties": {"key": {"type": "string"}, "value": VALUE_SCHEMA},
            **item_rules,
        },
    }


RECORD_OBJECT: dict[str, Any] = {
    "type": "object",
    "description": "One message with its own key, headers, partition and timestamp",
    "required": ["value"],
    "properties": {
        "value": VALUE_SCHEMA,
        "key": {**VALUE_SCHEMA, "description": "Not with a key in the path"},
        "headers": _headers(additionalProperties=False),
        "partition": {
            "type": "integer",
            "minimum": 0,
            "maximum": 2**31 - 1,
            "description": "A partition of the topic (else 400)",
        },
        "timestamp": {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**63 - 1,
            "description": "Milliseconds since the epoch (default: when it is sent)",
        },
    },
    "additionalProperties": False,
}

#: With a key in the path, a record object has no "key" of its own.
RECORD_OBJECT_KEYED: dict[str, Any] = {
    **RECORD_OBJECT,
    "properties": {k: v for k, v in RECORD_OBJECT["properties"].items() if k != "key"},
}


def _messages_body(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "messages": {"type": "array", "items": {"oneOf": [{"type": "string"}, record]}}
        },
    }


MESSAGES_BODY = _messages_body(RECORD_OBJECT)
MESSAGES_BODY_KEYED = _messages_body(RECORD_OBJECT_KEYED)

#: The produce body's other forms (by Content-Type).
PRODUCE_BODY_FORMS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "application/octet-stream",
        {
            "type": "string",
            "format": "binary",
            "description": "The raw bytes of ONE message (key from the path)",
        },
    ),
    (
        "application/x-ndjson",
        {
            "type": "string",
            "description": "One message per line: a JSON string or a record object; blank "
            "lines are skipped; an error names the line",
        },
    ),
)

OFFSETS_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["offsets"],
    "properties": {
        "offsets": {
            "type": "array",
            "description": "Where each message of the body was written, in body order",
            "items": {
                "type": "object",
                "required": ["partition", "offset", "timestamp"],
                "properties": {
                    "partition": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "timestamp": {"type": "integer", "description": "ms, -1 if none"},
                },
            },
        }
    },
}

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["partition", "offset", "timestamp", "key", "value", "headers"],
    "properties": {
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
        "timestamp": {"type": ["integer", "null"], "description": "ms since the epoch"},
        "key": VALUE_SCHEMA,
        "value": VALUE_SCHEMA,
        "headers": _headers(),
    },
}

MESSAGES_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["group", "messages"],
    "properties": {
        "group": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {"oneOf": [VALUE_SCHEMA, RECORD_SCHEMA]},
            "description": "Values, or records with ?format=records",
        },
    },
}

#: The streamed answers (Accept: text/event-stream or application/x-ndjson): one SSE event
#: or one JSON line per message, each an element of "messages" as above.
STREAM_ANSWERS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "text/event-stream",
        {
            "type": "string",
            "description": "Server-Sent Events: 'retry:' first, then one 'data:' event per "
            "message (a value, or a record with ?format=records), ':' heartbeats; with "
            "ack=explicit each event's 'id:' is the cursor of its own message (acknowledged "
            "by POST /{topic}/{group}/ack or a reconnect's Last-Event-ID) and records carry "
            '"deliveries"',
        },
    ),
    (
        "application/x-ndjson",
        {
            "type": "string",
            "description": "One JSON line per message (a value, or a record with ?format=records)",
        },
    ),
)

LEASED_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["group", "messages", "cursor", "lease"],
    "properties": {
        "group": {"type": "string"},
        "messages": {"type": "array"},
        "cursor": {"type": "string", "description": "Acknowledge with POST .../ack"},
        "lease": {"type": "number", "description": "Seconds the messages stay leased"},
    },
}

#: What POST /{topic}/{group}/ack takes.
ACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["cursor"],
    "properties": {"cursor": {"type": "string", "minLength": 1}, "release": {"type": "boolean"}},
    "additionalProperties": False,
}

#: The body of /healthz and /readyz.
STATUS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
}

#: Answers of every route that is not open, when authentication is on (USERS, TOKENS or
#: TLS_CLIENT_CA set).
AUTH_ERRORS = {
    401: Answer(
        "No credentials, or they are not valid (authentication is on)",
        ERROR,
        headers=("WWW-Authenticate",),
    ),
    429: Answer(
        "Too many failed authentications from this address", ERROR, headers=("Retry-After",)
    ),
    503: Answer("Too many passwords being checked at once", ERROR, headers=("Retry-After",)),
}

#: Answers every topic route can give besides its own.
TOPIC_ERRORS = {
    **AUTH_ERRORS,
    403: Answer(
        "The principal's ACL does not allow this operation on this topic (or group), or "
        "creating the topic",
        ERROR,
    ),
    400: Answer("Invalid topic, group, parameter or body", ERROR),
    404: Answer("The topic does not exist (AUTO_CREATE_TOPICS is off)", ERROR),
    503: Answer("The broker is unreachable or a bound is reached", ERROR, headers=("Retry-After",)),
}
PRODUCE_ANSWERS = {
    200: Answer(
        "With Prefer: return=representation: every message was acknowledged, and where",
        OFFSETS_ANSWER,
        headers=("Preference-Applied", "Idempotent-Replayed"),
    ),
    204: Answer(
        "Every message was acknowledged by the broker (acks=all)",
        headers=("Idempotent-Replayed",),
    ),
    **TOPIC_ERRORS,
    409: Answer("A request with this Idempotency-Key is still in flight", ERROR),
    413: Answer("The body or a message is over the limit", ERROR),
    422: Answer("This Idempotency-Key was used for another request", ERROR),
    502: Answer("The broker refused the messages", ERROR),
}
FETCH_ANSWERS = {
    200: Answer(
        "The next messages of the group, committed (at-most-once), or leased with a cursor "
        "(ack=explicit); with Accept: text/event-stream or application/x-ndjson, a stream of "
        "them (at-most-once), each batch committed before it is written, until the client "
        "leaves, limit were sent or shutdown (MAX_STREAMS open at most, else 503); an SSE "
        "stream with ack=explicit leases each event under its own cursor instead (NDJSON "
        "with ack=explicit is 400)",
        {"anyOf": [MESSAGES_ANSWER, LEASED_ANSWER]},
        alternatives=STREAM_ANSWERS,
    ),
    **TOPIC_ERRORS,
    502: Answer("The broker refused the commit", ERROR),
}
