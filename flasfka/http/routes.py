"""The route table: every endpoint of flasfka, once.

The Klein routes, the fast path, the metric route labels, OPTIONS' Allow header and
/openapi.json are all derived from ``ROUTES``: a new endpoint is one row here and a handler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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
    answers: dict[int, Answer] = field(default_factory=dict)
    #: Served by the fast path (flasfka.http.hot) when its segments are plain.
    hot: bool = False

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
    "POST: the record key of every message (UTF-8, percent-decoded, may hold '/')",
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

MESSAGES_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    "properties": {"messages": {"type": "array", "items": {"type": "string"}}},
}

VALUE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"type": "null"},
        {
            "type": "object",
            "required": ["base64"],
            "properties": {"base64": {"type": "string"}},
            "additionalProperties": False,
        },
    ]
}

MESSAGES_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["group", "messages"],
    "properties": {
        "group": {"type": "string"},
        "messages": {"type": "array", "items": VALUE_SCHEMA},
    },
}

_STATUS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
}

#: Answers every topic route can give besides its own.
_TOPIC_ERRORS = {
    400: Answer("Invalid topic, group, parameter or body", _ERROR),
    404: Answer("The topic does not exist (AUTO_CREATE_TOPICS is off)", _ERROR),
    503: Answer(
        "The broker is unreachable or a bound is reached", _ERROR, headers=("Retry-After",)
    ),
}
_PRODUCE_ANSWERS = {
    204: Answer("Every message was acknowledged by the broker (acks=all)"),
    **_TOPIC_ERRORS,
    413: Answer("The body or a message is over the limit", _ERROR),
    502: Answer("The broker refused the messages", _ERROR),
}
_FETCH_ANSWERS = {
    200: Answer("The next messages of the group, committed (at-most-once)", MESSAGES_ANSWER),
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
        answers={200: Answer("Version and links", {"type": "object"})},
    ),
    Route(
        "healthz",
        "GET",
        "/healthz",
        "ops.healthz",
        "Liveness: 200 while the process serves HTTP",
        answers={200: Answer("Alive", _STATUS_BODY)},
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
    ),
    Route(
        "metrics",
        "GET",
        "/metrics",
        "ops.metrics",
        "Prometheus metrics",
        answers={
            200: Answer("Metrics in Prometheus text format", {"type": "string"}, "text/plain")
        },
    ),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        "ops.openapi",
        "This description",
        answers={200: Answer("OpenAPI 3.1 document", {"type": "object"})},
    ),
    Route(
        "produce",
        "POST",
        "/{topic}/",
        "topics.produce",
        "Send messages to a topic",
        parameters=(TOPIC,),
        body=MESSAGES_BODY,
        answers=_PRODUCE_ANSWERS,
        hot=True,
    ),
    Route(
        "produce_keyed",
        "POST",
        "/{topic}/{key}/",
        "topics.produce",
        "Send messages to a topic, all with one record key",
        parameters=(TOPIC, KEY),
        body=MESSAGES_BODY,
        answers=_PRODUCE_ANSWERS,
        hot=True,
    ),
    Route(
        "fetch",
        "GET",
        "/{topic}/",
        "topics.fetch",
        "The next messages of a topic for the default group",
        parameters=(TOPIC, LIMIT),
        answers=_FETCH_ANSWERS,
        hot=True,
    ),
    Route(
        "fetch_group",
        "GET",
        "/{topic}/{group}/",
        "topics.fetch",
        "The next messages of a topic for a consumer group",
        parameters=(TOPIC, GROUP, LIMIT),
        answers=_FETCH_ANSWERS,
        hot=True,
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
        routes = tuple(r for r in ROUTES if "{" in r.template and r.segments == segments)
        if not path.endswith(b"/"):
            routes = ()
    methods = sorted({r.method for r in routes})
    if "GET" in methods:
        methods.append("HEAD")
    return [*methods, "OPTIONS"]


_TOPIC_METHODS = frozenset(route.method for route in ROUTES if "{" in route.template)


def route_label(method: bytes, path: bytes) -> str:
    """The metric label of a request: its route's template, never a topic name; else 'other'."""
    if path in OWN_PATHS:
        return path.decode()
    if not path.endswith(b"/") or len(path) < 3:
        return "other"
    segments = min(path.count(b"/"), 3)  # a key or group may hold '/'
    verb = method.decode("ascii", "replace")
    if verb not in _TOPIC_METHODS:
        verb = "GET"  # HEAD, OPTIONS and methods no route serves: the path's GET shape
    for route in ROUTES:
        if "{" in route.template and route.segments == segments and route.method == verb:
            return route.template
    return "other"
