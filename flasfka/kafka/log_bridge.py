"""librdkafka's own log lines, into twisted.logger on the reactor thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger


class RdkafkaLogBridge:
    """A confluent-kafka ``logger``: librdkafka's log lines into twisted.logger.

    librdkafka calls ``log(level, fmt, *args)`` from whichever thread serves the client's
    queue (a poll thread); the line is handed to the reactor thread.
    """

    def __init__(self, call_from_thread: Callable[..., None]) -> None:
        self._call = call_from_thread
        self._log = Logger(namespace="flasfka.librdkafka")

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
            emit = self._log.warn
        elif level >= logging.INFO:
            emit = self._log.info
        else:
            emit = self._log.debug
        self._call(
            emit,
            "librdkafka {facility} {client}: {text}",
            facility=facility,
            client=client,
            text=text,
            rdkafka_level=logging.getLevelName(level).lower(),
        )
