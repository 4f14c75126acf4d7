"""The route table: every endpoint of flasfka, once.

The Klein routes, the fast path, the metric route labels, OPTIONS' Allow header and
/openapi.json are all derived from ``ROUTES``: a new endpoint is one row here and a handler.
The body and answer schemas the rows name are in flasfka.http.schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from flasfka.http.schemas import (
    ACK_BODY,
    AUTH_ERRORS,
    ERROR,
    FETCH_ANSWERS,
    MESSAGES_BODY,
    MESSAGES_BODY_KEYED,
    PRODUCE_ANSWERS,
    PRODUCE_BODY_FORMS,
    STATUS_BODY,
    Answer,
)

#: A legal Kafka topic name: 1-249 of [a-zA-Z0-9._-], not "." or "..".
TOPIC_PATTERN = r"(?!\.\.?$)[a-zA-Z0-9._-]{1,249}"
#: A key or group segment the fast path serves (anything else, e.g. UTF-8 or "/", goes to
#: Klein, which percent-decodes it).
PLAIN_NAME_PATTERN = r"(?!\.\.?$)[a-zA-Z0-9._-]{1,255}"


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter, as OpenAPI describes it."""

    name: str
    where: str  # "path", "query" or "header"
    schema: dict[str, Any]
    description: str
    required: bool = False


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


def _path_param(name: str, description: str, **schema: Any) -> Param:
    """A path segment's parameter: a string, always required."""
    return Param(name, "path", {"type": "string", **schema}, description, required=True)


TOPIC = _path_param("topic", "Kafka topic name", pattern=f"^{TOPIC_PATTERN}$")
KEY = _path_param(
    "key",
    "POST: the record key of every message (UTF-8, percent-decoded, may hold '/'); its record "
    'objects then have no "key"',
    minLength=1,
)
GROUP = _path_param(
    "group",
    "GET: the consumer group (GET /{topic}/ reads for DEFAULT_GROUP)",
    minLength=1,
    maxLength=255,
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

ROUTES: tuple[Route, ...] = (
    Route(
        "index",
        "GET",
        "/",
        "ops.index",
        "What this server is, and where its endpoints are",
        answers={200: Answer("Version and links", {"type": "object"}), **AUTH_ERRORS},
    ),
    Route(
        "healthz",
        "GET",
        "/healthz",
        "ops.healthz",
        "Liveness: 200 while the process serves HTTP",
        answers={200: Answer("Alive", STATUS_BODY)},
        open=True,
    ),
    Route(
        "readyz",
        "GET",
        "/readyz",
        "ops.readyz",
        "Readiness: 200 while the broker answers and the producer can send",
        answers={
            200: Answer("Ready", STATUS_BODY),
            503: Answer("Not ready, and why", STATUS_BODY, headers=("Retry-After",)),
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
            **AUTH_ERRORS,
        },
    ),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        "ops.openapi",
        "This description",
        answers={200: Answer("OpenAPI 3.1 document", {"type": "object"}), **AUTH_ERRORS},
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
        answers=PRODUCE_ANSWERS,
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
        answers=PRODUCE_ANSWERS,
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
        answers=FETCH_ANSWERS,
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
        answers=FETCH_ANSWERS,
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
            **AUTH_ERRORS,
            403: Answer("The principal's ACL does not allow consuming this topic and group", ERROR),
            204: Answer(
                "Acknowledged (offsets committed up to the first unacknowledged message), or "
                "released (delivered again at once); acking twice is 204 too"
            ),
            400: Answer("Not a cursor of this topic and group, or a bad body", ERROR),
            413: Answer("The body is over the limit", ERROR),
            409: Answer(
                "The lease is not held here (expired, released, partitions moved, restart, "
                "another replica): the messages will be delivered again",
                ERROR,
            ),
            502: Answer("The broker refused the commit", ERROR),
            503: Answer("The broker is unreachable or slow", ERROR, headers=("Retry-After",)),
        },
        hot=True,  # one ack per leased GET: half of an at-least-once reader's requests
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
