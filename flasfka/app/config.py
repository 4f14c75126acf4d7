"""The flasfka config: a Python file of UPPER_CASE names, checked once at startup."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from flasfka.errors import FlasfkaError
from flasfka.http.parsing import check_group
from flasfka.kafka.settings import FIXED_PRODUCER_SETTINGS
from flasfka.security.acl import Acl, BadRule
from flasfka.security.hashing import BadHash, check_password_hash, check_token_hash

#: The environment variable that names the config file.
CONFIG_ENV = "FLASFKA_CONFIG"


class ConfigError(Exception):
    """The config cannot be used; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class Config:
    """Every setting flasfka reads, with its default."""

    #: Kafka bootstrap servers, "host:port".
    HOSTS: list[str] = field(default_factory=lambda: ["localhost:9092"])
    #: Seconds a GET waits for messages once its consumer is caught up.
    CONSUMER_TIMEOUT: float = 0.1
    #: Messages returned by a GET without ?limit.
    CONSUMER_LIMIT: int = 100
    #: Consumer group of GET /{topic}/.
    DEFAULT_GROUP: str = "flasfka"
    #: Largest ?limit a GET accepts.
    CONSUMER_MAX_LIMIT: int = 10000
    #: Seconds the first GET of a new consumer waits for the group join and first fetch.
    CONSUMER_JOIN_TIMEOUT: float = 30.0
    #: Seconds without a GET after which a consumer leaves its group and is closed.
    CONSUMER_IDLE_TIMEOUT: float = 300.0
    #: Most (topic, group) consumers open at once; a GET past it gets 503.
    MAX_CONSUMERS: int = 100
    #: Messages a consumer fetches ahead of GETs before it pauses fetching.
    CONSUMER_BUFFER_MESSAGES: int = 20000
    #: Bytes a consumer fetches ahead of GETs before it pauses fetching.
    CONSUMER_BUFFER_BYTES: int = 16 * 1024 * 1024
    #: Bytes all consumers together fetch ahead of GETs, shared equally between them.
    CONSUMER_BUFFER_BUDGET: int = 256 * 1024 * 1024
    #: Largest request body in bytes; a larger one gets 413.
    MAX_BODY_SIZE: int = 10 * 1024 * 1024
    #: Seconds a POST waits for the broker's acknowledgement before 503.
    PRODUCE_TIMEOUT: float = 10.0
    #: Create a topic on its first POST or GET (else 404 for a missing topic).
    AUTO_CREATE_TOPICS: bool = True
    #: Partitions of an auto-created topic (-1: the broker's default).
    TOPIC_PARTITIONS: int = -1
    #: Replication factor of an auto-created topic (-1: the broker's default).
    TOPIC_REPLICATION_FACTOR: int = -1
    #: librdkafka settings for every client (security.protocol, sasl.*, ssl.*, ...).
    KAFKA_CONFIG: dict[str, Any] = field(default_factory=dict)
    #: librdkafka settings for the producer only; they win over KAFKA_CONFIG.
    PRODUCER_CONFIG: dict[str, Any] = field(default_factory=dict)
    #: librdkafka settings for consumers only; they win over KAFKA_CONFIG.
    CONSUMER_CONFIG: dict[str, Any] = field(default_factory=dict)
    #: Seconds SIGTERM waits for in-flight requests and the producer flush.
    SHUTDOWN_GRACE: float = 10.0
    #: Seconds an HTTP connection may stay idle (slow or silent clients are cut).
    HTTP_IDLE_TIMEOUT: float = 60.0
    #: Seconds a POST's answer is kept for retries with the same Idempotency-Key.
    IDEMPOTENCY_TTL: float = 300.0
    #: Most Idempotency-Keys kept per process (in flight or answered); oldest dropped first.
    IDEMPOTENCY_MAX_KEYS: int = 10000
    #: Most bytes of answers kept for Idempotency-Key replays; oldest dropped first.
    IDEMPOTENCY_MAX_BYTES: int = 64 * 1024 * 1024
    #: Log format: "text" or "json".
    LOG_FORMAT: str = "text"
    #: Largest ?timeout= (seconds) a long-polling GET may wait for its first message.
    CONSUMER_MAX_TIMEOUT: float = 30.0
    #: Most streaming GETs (SSE or NDJSON) open at once; one past it gets 503.
    MAX_STREAMS: int = 100
    #: Seconds a stream may stay silent before it writes a heartbeat (an SSE comment).
    STREAM_HEARTBEAT: float = 15.0
    #: Worker processes sharing the listening port: a number >= 1, or "auto" (one per CPU).
    WORKERS: int | str = 1
    #: Seconds a GET with ack=explicit leases its messages for without ?lease=.
    CONSUMER_LEASE: float = 30.0
    #: Largest ?lease= a GET accepts (seconds).
    CONSUMER_MAX_LEASE: float = 300.0
    #: Most messages one (topic, group) consumer keeps leased at once; a GET past it gets 503.
    CONSUMER_MAX_LEASED: int = 10000
    #: Deliveries without an ack after which a message goes to DEAD_LETTER_TOPIC (0: never).
    CONSUMER_MAX_DELIVERIES: int = 0
    #: Where worn-out messages go; "{topic}" is replaced by their topic.
    DEAD_LETTER_TOPIC: str = "{topic}.dead-letter"
    #: HTTP Basic users: name -> password hash from ``flasfka-passwd`` (empty: no Basic auth).
    USERS: dict[str, Any] = field(default_factory=dict)
    #: Bearer tokens: name -> token hash from ``flasfka-passwd --token``.
    TOKENS: dict[str, Any] = field(default_factory=dict)
    #: PEM file of the CA(s) whose client certificates an ssl: listener requires; the
    #: certificate's subject CN is then the principal ("" = no client certificates).
    TLS_CLIENT_CA: str = ""
    #: Who may do what: [{"principal", "topics", "groups", "allow": [...]}], first match wins.
    ACL: list[dict[str, Any]] = field(default_factory=list)
    #: Whether /metrics needs an authenticated principal when authentication is on.
    METRICS_AUTH: bool = True
    #: Origins (exact, "scheme://host[:port]", or "*") browsers may call flasfka from.
    CORS_ORIGINS: list[str] = field(default_factory=list)
    #: Verified credentials remembered, so a slow password hash runs once per client.
    AUTH_CACHE_SIZE: int = 1024
    #: Failed authentications from one address within AUTH_FAILURE_WINDOW before 429.
    AUTH_MAX_FAILURES: int = 10
    #: Seconds over which AUTH_MAX_FAILURES are counted (and the 429 lasts at most).
    AUTH_FAILURE_WINDOW: float = 60.0
    #: Client addresses whose failures are tracked at once (the oldest are forgotten).
    AUTH_TRACKED_ADDRESSES: int = 10000

    @property
    def auth_enabled(self) -> bool:
        """Whether any way to authenticate is configured (else every request is open)."""
        return bool(self.USERS or self.TOKENS or self.TLS_CLIENT_CA)

    def validate(self, source: str) -> None:
        """Raise ConfigError for values of the right type but out of range."""
        positive = (
            "CONSUMER_LIMIT",
            "CONSUMER_MAX_LIMIT",
            "MAX_CONSUMERS",
            "CONSUMER_BUFFER_MESSAGES",
            "CONSUMER_BUFFER_BYTES",
            "CONSUMER_BUFFER_BUDGET",
            "MAX_BODY_SIZE",
            "PRODUCE_TIMEOUT",
            "CONSUMER_JOIN_TIMEOUT",
            "CONSUMER_IDLE_TIMEOUT",
            "HTTP_IDLE_TIMEOUT",
            "MAX_STREAMS",
            "STREAM_HEARTBEAT",
            "CONSUMER_MAX_LEASED",
            "IDEMPOTENCY_TTL",
            "IDEMPOTENCY_MAX_KEYS",
            "IDEMPOTENCY_MAX_BYTES",
            "AUTH_CACHE_SIZE",
            "AUTH_MAX_FAILURES",
            "AUTH_FAILURE_WINDOW",
            "AUTH_TRACKED_ADDRESSES",
        )
        for key, expected in _FIELD_TYPES.items():  # NaN would pass every range check below
            if str(expected) == "float" and not math.isfinite(getattr(self, key)):
                raise ConfigError(f"{source}: {key} must be a finite number")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{source}: {key} must be > 0")
        for key in ("CONSUMER_TIMEOUT", "SHUTDOWN_GRACE", "CONSUMER_MAX_TIMEOUT"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{source}: {key} must be >= 0")
        if not self.HOSTS or not all(isinstance(h, str) and h for h in self.HOSTS):
            raise ConfigError(f"{source}: HOSTS must be a non-empty list of 'host:port' strings")
        if self.CONSUMER_LIMIT > self.CONSUMER_MAX_LIMIT:
            raise ConfigError(f"{source}: CONSUMER_LIMIT must be <= CONSUMER_MAX_LIMIT")
        if self.WORKERS != "auto" and not (isinstance(self.WORKERS, int) and self.WORKERS >= 1):
            raise ConfigError(f"{source}: WORKERS must be a number >= 1 or 'auto'")
        if not 1 <= self.CONSUMER_LEASE <= self.CONSUMER_MAX_LEASE:
            raise ConfigError(
                f"{source}: CONSUMER_LEASE must be from 1 to CONSUMER_MAX_LEASE seconds"
            )
        if self.CONSUMER_MAX_DELIVERIES < 0:
            raise ConfigError(f"{source}: CONSUMER_MAX_DELIVERIES must be >= 0 (0: unlimited)")
        try:
            dead_letter = self.DEAD_LETTER_TOPIC.format(topic="t")
        except (KeyError, IndexError, ValueError):
            dead_letter = ""
        if not dead_letter or "{" in dead_letter or "}" in dead_letter:
            raise ConfigError(
                f"{source}: DEAD_LETTER_TOPIC must be a topic name, with {{topic}} at most"
            )
        try:
            check_group(self.DEFAULT_GROUP)
        except FlasfkaError as e:
            raise ConfigError(f"{source}: DEFAULT_GROUP: {e.message}") from None
        if self.LOG_FORMAT not in ("text", "json"):
            raise ConfigError(f"{source}: LOG_FORMAT must be 'text' or 'json'")
        for key in ("KAFKA_CONFIG", "PRODUCER_CONFIG", "CONSUMER_CONFIG"):
            if not all(isinstance(k, str) for k in getattr(self, key)):
                raise ConfigError(f"{source}: {key} keys must be strings")
        for key in ("KAFKA_CONFIG", "PRODUCER_CONFIG"):
            fixed = sorted(set(getattr(self, key)) & FIXED_PRODUCER_SETTINGS)
            if fixed:
                raise ConfigError(
                    f"{source}: {key} cannot set {', '.join(fixed)}: a POST's acknowledgement "
                    "relies on flasfka's own value (PRODUCE_TIMEOUT sets message.timeout.ms)"
                )

        validate_security(self, source)

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (e.g. HOSTS for the embedded broker)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Config(**values)


_ORIGIN = re.compile(r"https?://[^/\s?#]+")


def validate_security(config: Config, source: str) -> None:
    """Raise ConfigError for unusable USERS, TOKENS, ACL or CORS_ORIGINS (naming no secret)."""
    for key, check in (("USERS", check_password_hash), ("TOKENS", check_token_hash)):
        for name, stored in getattr(config, key).items():
            if not isinstance(name, str) or not name or (":" in name and key == "USERS"):
                raise ConfigError(f"{source}: {key} names must be non-empty strings without ':'")
            if not isinstance(stored, str):
                raise ConfigError(f"{source}: {key}[{name!r}] must be a hash string")
            try:
                check(stored)
            except BadHash as e:
                raise ConfigError(f"{source}: {key}[{name!r}]: {e}") from None
    try:
        Acl.from_config(config.ACL)
    except BadRule as e:
        raise ConfigError(f"{source}: ACL: {e}") from None
    if config.ACL and not config.auth_enabled:
        raise ConfigError(
            f"{source}: ACL is set but nobody can authenticate: set USERS, TOKENS or TLS_CLIENT_CA"
        )
    for origin in config.CORS_ORIGINS:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{source}: CORS_ORIGINS entry {origin!r} is not '*' or scheme://host[:port]"
            )
    if config.TLS_CLIENT_CA and not os.path.isfile(config.TLS_CLIENT_CA):
        raise ConfigError(f"{source}: TLS_CLIENT_CA {config.TLS_CLIENT_CA!r} is not a file")


_FIELD_TYPES = {f.name: f.type for f in fields(Config)}


def _type_ok(expected: str, value: Any) -> bool:
    """Whether value fits the annotation string of a Config field."""
    if expected == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "str":
        return isinstance(value, str)
    if expected == "int | str":
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    if expected == "list[str]":
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if expected == "dict[str, Any]":
        return isinstance(value, Mapping)
    if expected == "list[dict[str, Any]]":
        return isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) for v in value)
    raise AssertionError(f"unhandled config type {expected}")


def worker_count(workers: int | str) -> int:
    """The number of worker processes WORKERS (or --workers) asks for ("auto": one per CPU)."""
    if workers == "auto":
        return os.cpu_count() or 1
    return int(workers)


def config_from_mapping(values: Mapping[str, Any], source: str) -> Config:
    """Build a Config from the UPPER_CASE names of a namespace, checking names and types."""
    settings: dict[str, Any] = {}
    for key, value in values.items():
        if not key.isupper() or key.startswith("_"):
            continue
        if key not in _FIELD_TYPES:
            raise ConfigError(f"{source}: unknown key {key}")
        expected = str(_FIELD_TYPES[key])
        if not _type_ok(expected, value):
            raise ConfigError(
                f"{source}: {key} must be of type {expected}, not {type(value).__name__}"
            )
        if expected == "float":
            value = float(value)
        elif expected == "list[str]":
            value = list(value)
        elif expected == "dict[str, Any]":
            value = dict(value)
        elif expected == "list[dict[str, Any]]":
            value = [dict(v) for v in value]
        settings[key] = value
    config = Config(**settings)
    config.validate(source)
    return config


def load_config(path: str | None = None) -> Config:
    """Read the config file at path, else the one FLASFKA_CONFIG names, else the defaults."""
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:  # compile() decodes it as Python does (UTF-8, or the
            source = f.read()  # encoding its coding line names)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    namespace: dict[str, Any] = {"__file__": path}
    try:
        code = compile(source, path, "exec")
    except SyntaxError as e:  # also bytes that are not text in its encoding, a NUL byte
        where = f" at line {e.lineno}" if e.lineno else ""
        raise ConfigError(f"{path}: syntax error{where}: {e.msg}") from None
    try:
        exec(code, namespace)
    except Exception as e:
        raise ConfigError(f"{path}: error while running config: {type(e).__name__}: {e}") from None
    return config_from_mapping(namespace, path)
