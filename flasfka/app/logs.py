"""Log output: text or one JSON object per line, and librdkafka's own log lines.

twistd picks the JSON observer with ``twistd --logger flasfka.app.logs.json_stdout_observer``,
or from ``LOG_FORMAT = "json"`` in the config (see ``flasfka.app.build``); ``flasfka-serve`` with
``--log-format json`` or the same config key.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import IO, Any

import orjson
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)

#: Log formats LOG_FORMAT and --log-format accept.
LOG_FORMATS = ("text", "json")

_LEVELS = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warning",
    LogLevel.error: "error",
    LogLevel.critical: "critical",
}


_BASE_KEYS = ("time", "level", "namespace", "message")


def _json_default(value: Any) -> str:
    return repr(value)


def event_as_json_line(event: dict[str, Any]) -> str:
    """One log event as a compact JSON line: time, level, namespace, message, its fields."""
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), timezone.utc).isoformat(),
        "level": _LEVELS.get(event.get("log_level"), "info"),
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if not key.startswith(("log_", "_")) and key not in record and key != "format":
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    try:
        return orjson.dumps(record, default=_json_default).decode() + "\n"
    except TypeError:  # e.g. an integer over 64 bits: keep the line, drop the fields
        return orjson.dumps({k: record[k] for k in _BASE_KEYS}).decode() + "\n"


def json_file_observer(out: IO[str]) -> ILogObserver:
    """An observer writing one JSON object per line to out (e.g. stdout for journald)."""
    return FileLogObserver(out, event_as_json_line)


def json_stdout_observer() -> ILogObserver:
    """The JSON observer on stdout (for ``twistd --logger``)."""
    return json_file_observer(sys.stdout)


class _SecondStamps:
    """twisted.logger's formatTime, computed once per second (a log line has no finer time)."""

    def __init__(self) -> None:
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, when: float | None) -> str:
        if when is None:
            return formatTime(when)
        second = int(when)
        last = self._last
        if last[0] != second:
            last = self._last = (second, formatTime(second))
        return last[1]


def text_file_observer(out: IO[str]) -> ILogObserver:
    """twisted.logger's text observer (classic lines), with the timestamp cached per second."""
    stamp = _SecondStamps()
    return FileLogObserver(out, lambda event: formatEventAsClassicLogText(event, stamp))


def stdout_observer(log_format: str) -> ILogObserver:
    """The observer on stdout for log_format ("text" or "json")."""
    if log_format == "json":
        return json_stdout_observer()
    return text_file_observer(sys.stdout)


def worker_observer(observer: ILogObserver, worker_id: int) -> ILogObserver:
    """observer, with each event naming the worker process that logged it.

    JSON lines get a ``"worker"`` field; text lines show ``worker N`` in their [system] part.
    """

    def observe(event: dict[str, Any]) -> None:
        event = dict(event, worker=worker_id)
        if event.get("log_system", "-") == "-":
            level = event.get("log_level")
            name = level.name if level is not None else "-"
            event["log_system"] = f"worker {worker_id} {event.get('log_namespace', '-')}#{name}"
        observer(event)

    return observe  # type: ignore[return-value]
