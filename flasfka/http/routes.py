"""The route table: every endpoint of flasfka, once.

The Klein routes, the fast path, the metric route labels, OPTIONS' Allow header and
/openapi.json are all derived from ``ROUTES``: a new endpoint is one row here and a handler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

#: A legal Kafka topic name: 1-249 of [a-zA-Z0-9._-], not "." or "..".
TOPIC_PATTERN = r"(?!\.\.?$)[a-zA-Z0-9._-]{1,249}"
#: A key or group segment the fast path serves (anything else, e.g. UTF-8 or "/", goes to
#: Klein, which percent-decodes it).
PLAIN_NAME_PATTERN = r"(?!\.\.?$)[a-zA-Z0-9._-]{1,255}"

_ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter, as OpenAPI describes it."""

    name: str
    where: str  # "path", "query" or "header"
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Answer:
    """One status a route can answer, with the schema of its body (None: no body)."""

    description: str
    schema: dict[str, Any] | None = None
    content_type: str = "application/json"
    headers: tuple[str, ...] = ()
    #: Other (content type, schema) pairs the same status may answer with (content negotiation).
    alternatives: tuple[tuple[str, dict[str, Any]], ...] = ()


@dataclass(frozen=True)
class Route:
    """One endpoint: method and path template, the handler that serves it, its contract."""

    name: str
    method: str
    #: OpenAPI path template; also the metric route label.
    template: str
    #: "topics.produce": the handler object (topics or ops) and its method.
    handler: str
    summary: str
    parameters: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    #: Other media types of the body: (Content-Type, schema), besides application/json.
    body_forms: tuple[tuple[str, dict[str, Any]], ...] = ()
    answers: dict[int, Answer] = field(default_factory=dict)
    #: Served by the fast path (flasfka.http.hot) when its segments are plain.
    hot: bool = False
    #: The ACL operation on the path's topic (and group) the route needs when authentication
    #: is on: "produce" or "consume"; None: any authenticated principal (ops routes).
    operation: str | None = None
    #: Served without authentication even when it is on (probes).
    open: bool = False

    @property
    def klein_rule(self) -> str:
        """The werkzeug rule: a topic is one segment; a key or group may hold '/' too."""
        rule = self.template.replace("{topic}", "<topic>")
        return re.sub(r"\{(\w+)\}", r"<text:\1>", rule)

    @property
    def segments(self) -> int:
        """How many '/'-separated segments the path has (the empty one after '/' included)."""
        return self.template.count("/")


TOPIC = Param(
    "topic",
    "path",
    {"type": "string", "pattern": f"^{TOPIC_PATTERN}$"},
    "Kafka topic name",
    required=True,
)
KEY = Param(
    "key",
    "path",
    {"type": "string", "minLength": 1},
    "POST: the record key of every message (UTF-8, percent-decoded, may hold '/'); its record "
    'objects then have no "key"',
    required=True,
)
GROUP = Param(
    "group",
    "path",
    {"type": "string", "minLength": 1, "maxLength": 255},
    "GET: the consumer group (GET /{topic}/ reads for DEFAULT_GROUP)",
    required=True,
)
LIMIT = Param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1},
    "Most messages to return (default CONSUMER_LIMIT, at most CONSUMER_MAX_LIMIT)",
)
TIMEOUT = Param(
    "timeout",
    "query",
    {"type": "number", "minimum": 0},
    "Long poll: seconds to wait (after the group join) for a first message, from 0 to "
    "CONSUMER_MAX_TIMEOUT (default 30); nothing within it answers an empty list",
)
FORMAT = Param(
    "format",
    "query",
    {"type": "string", "enum": ["values", "records"]},
    "values (default): bare values; records: partition, offset, timestamp, key, value "
    "and headers of each message",
)

ACK = Param(
    "ack",
    "query",
    {"type": "string", "enum": ["explicit"]},
    "explicit: at-least-once; the messages are leased, not committed, until POST .../ack",
)
LEASE = Param(
    "lease",
    "query",
    {"type": "number", "minimum": 1},
    "Seconds the messages stay leased (default CONSUMER_LEASE, at most CONSUMER_MAX_LEASE); "
    "implies ack=explicit",
)

ACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["cursor"],
    "properties": {"cursor": {"type": "string"}, "release": {"type": "boolean"}},
    "additionalProperties": False,
}

LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    {"type": "string"},
    "With Accept: text/event-stream and ack=explicit (an EventSource reconnecting): the "
    "cursor of the last event received, acknowledged before the stream starts (one whose "
    "lease ended is ignored; one that is not a cursor of this topic and group is 400). "
    "Ignored otherwise",
)
PREFER = Param(
    "Prefer",
    "header",
    {"type": "string", "examples": ["return=representation"]},
    "return=representation: answer 200 with the partition, offset and timestamp of every "
    "message instead of 204",
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    "A retry with the same key and request (topic, key, Content-Type, body) within "
    "IDEMPOTENCY_TTL gets the first answer and writes nothing; the keys are kept per flasfka "
    "process (at most IDEMPOTENCY_MAX_KEYS), a failed POST does not keep its key",
)

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

RECORD_OBJECT: dict[str, Any] = {
    "type": "object",
    "description": "One message with its own key, headers, partition and timestamp",
    "required": ["value"],
    "properties": {
        "value": VALUE_SCHEMA,
        "key": {**VALUE_SCHEMA, "description": "Not with a key in the path"},
        "headers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "value"],
                "properties": {"key": {"type": "string"}, "value": VALUE_SCHEMA},
                "additionalProperties": False,
            },
        },
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
        "headers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "value"],
                "properties": {"key": {"type": "string"}, "value": VALUE_SCHEMA},
            },
        },
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

_STATUS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
}

#: Answers of every route that is not open, when authentication is on (USERS, TOKENS or
#: TLS_CLIENT_CA set).
_AUTH_ERRORS = {
    401: Answer(
        "No credentials, or they are not valid (authentication is on)",
        _ERROR,
        headers=("WWW-Authenticate",),
    ),
    429: Answer(
        "Too many failed authentications from this address", _ERROR, headers=("Retry-After",)
    ),
    503: Answer("Too many passwords being checked at once", _ERROR, headers=("Retry-After",)),
}

#: Answers every topic route can give besides its own.
_TOPIC_ERRORS = {
    **_AUTH_ERRORS,
    403: Answer(
        "The principal's ACL does not allow this operation on this topic (or group), or "
        "creating the topic",
        _ERROR,
    ),
    400: Answer("Invalid topic, group, parameter or body", _ERROR),
    404: Answer("The topic does not exist (AUTO_CREATE_TOPICS is off)", _ERROR),
    503: Answer(
        "The broker is unreachable or a bound is reached", _ERROR, headers=("Retry-After",)
    ),
}
_PRODUCE_ANSWERS = {
    200: Answer(
        "With Prefer: return=representation: every message was acknowledged, and where",
        OFFSETS_ANSWER,
        headers=("Preference-Applied", "Idempotent-Replayed"),
    ),
    204: Answer(
        "Every message was acknowledged by the broker (acks=all)",
        headers=("Idempotent-Replayed",),
    ),
    **_TOPIC_ERRORS,
    409: Answer("A request with this Idempotency-Key is still in flight", _ERROR),
    413: Answer("The body or a message is over the limit", _ERROR),
    422: Answer("This Idempotency-Key was used for another request", _ERROR),
    502: Answer("The broker refused the messages", _ERROR),
}
_FETCH_ANSWERS = {
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
    **_TOPIC_ERRORS,
    502: Answer("The broker refused the commit", _ERROR),
}

ROUTES: tuple[Route, ...] = (
    Route(
        "index",
        "GET",
        "/",
        "ops.index",
        "What this server is, and where its endpoints are",
        answers={200: Answer("Version and links", {"type": "object"}), **_AUTH_ERRORS},
    ),
    Route(
        "healthz",
        "GET",
        "/healthz",
        "ops.healthz",
        "Liveness: 200 while the process serves HTTP",
        answers={200: Answer("Alive", _STATUS_BODY)},
        open=True,
    ),
    Route(
        "readyz",
        "GET",
        "/readyz",
        "ops.readyz",
        "Readiness: 200 while the broker answers and the producer can send",
        answers={
            200: Answer("Ready", _STATUS_BODY),
            503: Answer("Not ready, and why", _STATUS_BODY, headers=("Retry-After",)),
        },
        open=True,
    ),
    Route(
        "metrics",
        "GET",
        "/metrics",
        "ops.metrics",
        "Prometheus metrics",
        answers={
            200: Answer("Metrics in Prometheus text format", {"type": "string"}, "text/plain"),
            **_AUTH_ERRORS,
        },
    ),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        "ops.openapi",
        "This description",
        answers={200: Answer("OpenAPI 3.1 document", {"type": "object"}), **_AUTH_ERRORS},
    ),
    Route(
        "produce",
        "POST",
        "/{topic}/",
        "topics.produce",
        "Send messages to a topic",
        parameters=(TOPIC, PREFER, IDEMPOTENCY_KEY),
        body=MESSAGES_BODY,
        body_forms=PRODUCE_BODY_FORMS,
        answers=_PRODUCE_ANSWERS,
        hot=True,
        operation="produce",
    ),
    Route(
        "produce_keyed",
        "POST",
        "/{topic}/{key}/",
        "topics.produce",
        "Send messages to a topic, all with one record key",
        parameters=(TOPIC, KEY, PREFER, IDEMPOTENCY_KEY),
        body=MESSAGES_BODY_KEYED,
        body_forms=PRODUCE_BODY_FORMS,
        answers=_PRODUCE_ANSWERS,
        hot=True,
        operation="produce",
    ),
    Route(
        "fetch",
        "GET",
        "/{topic}/",
        "topics.fetch",
        "The next messages of a topic for the default group",
        parameters=(TOPIC, LIMIT, TIMEOUT, FORMAT, ACK, LEASE, LAST_EVENT_ID),
        answers=_FETCH_ANSWERS,
        hot=True,
        operation="consume",
    ),
    Route(
        "fetch_group",
        "GET",
        "/{topic}/{group}/",
        "topics.fetch",
        "The next messages of a topic for a consumer group",
        parameters=(TOPIC, GROUP, LIMIT, TIMEOUT, FORMAT, ACK, LEASE, LAST_EVENT_ID),
        answers=_FETCH_ANSWERS,
        hot=True,
        operation="consume",
    ),
    Route(
        "ack",
        "POST",
        "/{topic}/{group}/ack",
        "topics.ack",
        "Acknowledge (or release) the messages of a GET with ack=explicit",
        parameters=(TOPIC, GROUP),
        body=ACK_BODY,
        answers={
            **_AUTH_ERRORS,
            403: Answer(
                "The principal's ACL does not allow consuming this topic and group", _ERROR
            ),
            204: Answer(
                "Acknowledged (offsets committed up to the first unacknowledged message), or "
                "released (delivered again at once); acking twice is 204 too"
            ),
            400: Answer("Not a cursor of this topic and group, or a bad body", _ERROR),
            409: Answer(
                "The lease is not held here (expired, released, partitions moved, restart, "
                "another replica): the messages will be delivered again",
                _ERROR,
            ),
            502: Answer("The broker refused the commit", _ERROR),
            503: Answer("The broker is unreachable or slow", _ERROR, headers=("Retry-After",)),
        },
        operation="consume",
    ),
)

#: Paths of flasfka's own (no parameter), which never end in '/'.
OWN_PATHS: dict[bytes, tuple[Route, ...]] = {}
for _route in ROUTES:
    if "{" not in _route.template:
        OWN_PATHS[_route.template.encode()] = (*OWN_PATHS.get(_route.template.encode(), ()), _route)


def allowed_methods(path: bytes) -> list[str]:
    """The methods the route table serves at path (HEAD with GET, OPTIONS always)."""
    routes = OWN_PATHS.get(path)
    if routes is None:
        segments = min(path.count(b"/"), 3)
        routes = tuple(
            r
            for r in ROUTES
            if "{" in r.template and r.template.endswith("/") and r.segments == segments
        )
        if not path.endswith(b"/"):
            routes = _group_route(path)
    methods = sorted({r.method for r in routes})
    if "GET" in methods:
        methods.append("HEAD")
    return [*methods, "OPTIONS"]


#: (method, segments) -> the first topic route of that shape.
_TOPIC_ROUTES: dict[tuple[bytes, int], Route] = {}
for _route in ROUTES:
    if "{" in _route.template:
        _TOPIC_ROUTES.setdefault((_route.method.encode(), _route.segments), _route)


def _template_pattern(template: str) -> re.Pattern[bytes]:
    """A regex of the raw path for template: a topic is one segment, a key or group any."""
    pattern = ""
    for part in re.split(r"(\{\w+\})", template):
        name = part[1:-1]
        if part.startswith("{"):
            pattern += f"(?P<{name}>[^/]+)" if name == "topic" else f"(?P<{name}>.+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern.encode(), re.S)


_PATTERNS = {route.name: _template_pattern(route.template) for route in ROUTES}
#: Topic routes whose path ends in a name of flasfka's own (e.g. /{topic}/{group}/ack).
_SUFFIXED = [r for r in ROUTES if "{" in r.template and not r.template.endswith("/")]


def path_params(route: Route, path: bytes) -> dict[str, str] | None:
    """The percent-decoded path parameters of route in path, or None if it does not match."""
    found = _PATTERNS[route.name].fullmatch(path)
    if found is None:
        return None
    return {
        name: unquote_to_bytes(value).decode("utf-8", "replace")
        for name, value in found.groupdict().items()
    }


def route_of(method: bytes, path: bytes) -> Route | None:
    """The route a request goes to (HEAD, OPTIONS and unserved methods: the path's GET
    route), or None for a path no route serves."""
    own = OWN_PATHS.get(path)
    if own is not None:
        return own[0]
    if not path.endswith(b"/"):
        matching = [r for r in _SUFFIXED if _PATTERNS[r.name].fullmatch(path)]
        for route in matching:
            if route.method.encode() == method:
                return route
        return matching[0] if matching else None
    if len(path) < 3:
        return None
    segments = min(path.count(b"/"), 3)  # a key or group may hold '/'
    found = _TOPIC_ROUTES.get((method, segments))
    if found is None:  # HEAD, OPTIONS and methods no route serves: the path's GET shape
        found = _TOPIC_ROUTES.get((b"GET", segments))
    return found


def route_label(method: bytes, path: bytes) -> str:
    """The metric label of a request: its route's template, never a topic name; else 'other'."""
    route = route_of(method, path)
    return "other" if route is None else route.template


def is_own_path(path: bytes) -> bool:
    """Whether path is one of flasfka's own (never a topic path, so never redirected)."""
    return path in OWN_PATHS or bool(_group_route(path))


def _group_route(path: bytes) -> tuple[Route, ...]:
    """The rows of /{topic}/{group}/<name> (e.g. the ack) that path is one of, or ()."""
    return tuple(r for r in _SUFFIXED if _PATTERNS[r.name].fullmatch(path))
