"""librdkafka's own log lines, into twisted.logger on the reactor thread."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

#: A warning like one logged less than this many seconds ago (same client and facility, same
#: text but for its numbers) is left out and counted into the next one logged.
WARN_EVERY = 5.0
#: Most kinds of warning remembered; past it they are forgotten (and logged again).
_KINDS = 1000
_NUMBERS = re.compile(r"\d+")


class RdkafkaLogBridge:
    """A confluent-kafka ``logger``: librdkafka's log lines into twisted.logger.

    librdkafka calls ``log(level, fmt, *args)`` from whichever thread serves the client's
    queue (a poll thread); the line is handed to the reactor thread. With the broker down,
    every client logs each failed connection attempt (~40 lines a second for two consumers
    and the producer), so a warning repeated within WARN_EVERY is counted, not logged.
    """

    def __init__(self, call_from_thread: Callable[..., None], seconds: Callable[[], float]) -> None:
        self._call = call_from_thread
        self._seconds = seconds
        self._log = Logger(namespace="flasfka.librdkafka")
        #: (client, facility, text without numbers) -> (when last logged, left out since).
        self._warned: dict[tuple[str, str, str], tuple[float, int]] = {}

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """Called by confluent-kafka with a Python logging level and a %-format."""
        try:
            facility, client, text = args
        except ValueError:
            facility, client, text = "-", "-", fmt % args if args else fmt
        if facility == "CONFWARN" and "enable.gapless.guarantee" in text:
            # "experimental" property: flasfka relies on it on purpose and says so at
            # startup, so the warning would only alarm.
            emit = self._log.debug
        elif level >= logging.WARNING:
            # librdkafka retries by itself: even its "error" lines are a degraded state
            self._call(self._warn, level, facility, client, text)
            return
        elif level >= logging.INFO:
            emit = self._log.info
        else:
            emit = self._log.debug
        self._call(self._emit, emit, level, facility, client, text)

    def _warn(self, level: int, facility: str, client: str, text: str) -> None:
        """Log a warning unless one like it was logged within WARN_EVERY (reactor thread)."""
        kind = (client, facility, _NUMBERS.sub("#", text))
        now = self._seconds()
        last = self._warned.get(kind)
        if last is not None and now - last[0] < WARN_EVERY:
            self._warned[kind] = (last[0], last[1] + 1)
            return
        if len(self._warned) >= _KINDS:
            self._warned.clear()
        self._warned[kind] = (now, 0)
        if last is not None and last[1]:
            text += f" ({last[1]} more like it left out since the last)"
        self._emit(self._log.warn, level, facility, client, text)

    @staticmethod
    def _emit(emit: Callable[..., None], level: int, facility: str, client: str, text: str) -> None:
        emit(
            "librdkafka {facility} {client}: {text}",
            facility=facility,
            client=client,
            text=text,
            rdkafka_level=logging.getLevelName(level).lower(),
        )
