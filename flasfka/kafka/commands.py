"""Calls the reactor hands to a consumer's thread, answered as Deferreds in the reactor.

The poll thread waits on such a queue between polls;
a new command wakes it at once.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail

from flasfka.errors import Unavailable
from flasfka.reactor import ReactorLike


class PollThreadCommands:
    """A queue of calls for one poll thread; each call's result fires a Deferred."""

    def __init__(self, reactor: ReactorLike) -> None:
        self._reactor = reactor
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._pending: set[Deferred[Any]] = set()
        self._closed = False

    def call(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run f(*args) on the poll thread; a Deferred (fired in the reactor) of its result."""
        if self._closed:
            return fail(Unavailable("the consumer is closed; try again"))
        d: Deferred[Any] = Deferred()
        self._pending.add(d)
        d.addBoth(self._forget, d)
        call = self._reactor.callFromThread

        def command() -> None:
            try:
                result = f(*args)
            except BaseException as e:
                call(d.errback, e)
            else:
                call(d.callback, result)

        self._queue.put(command)
        return d

    def post(self, f: Callable[[], None]) -> None:
        """Queue a plain call, with no Deferred: it runs in turn with the commands."""
        self._queue.put(f)

    def wake(self) -> None:
        """Wake the thread waiting in wait() (reactor thread)."""
        self.post(lambda: None)

    def wait(self, timeout: float) -> None:
        """Run the next command, waiting up to timeout for one (poll thread)."""
        try:
            command = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        command()

    def run_queued(self) -> None:
        """Run every command queued so far (poll thread)."""
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            command()

    def close(self) -> None:
        """The thread is gone: fail the commands it will never run (reactor thread)."""
        self._closed = True
        for d in list(self._pending):
            if not d.called:
                d.errback(Unavailable("the consumer closed before committing; try again"))

    def _forget(self, result: object, d: Deferred[Any]) -> object:
        self._pending.discard(d)
        return result
