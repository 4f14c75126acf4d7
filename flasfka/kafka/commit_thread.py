"""A group member's commits, on a thread of their own.

A synchronous commit waits ~2-3 ms for the coordinator. Run on the poll thread, that wait
stops fetching, and a commit queued while the thread consumes waits for it to come round.
librdkafka is thread-safe and a synchronous commit waits on a queue of its own, so the
member's commits run here while its poll thread keeps fetching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from flasfka.kafka.commands import PollThreadCommands
from flasfka.reactor import ReactorLike

#: How long the idle thread waits for a commit before it looks at its stop flag again.
_IDLE_WAIT = 1.0


class CommitThread:
    """Runs calls one at a time, in order, on a thread, answered as Deferreds in the reactor.

    The poll thread stops it (after the commits queued so far have run) before it closes
    the consumer, so that no commit runs on a closed consumer.
    """

    def __init__(self, reactor: ReactorLike, name: str) -> None:
        self._commands = PollThreadCommands(reactor)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Queue f(*args); a Deferred (fired in the reactor) of its result (reactor thread)."""
        return self._commands.call(f, *args)

    def drain(self) -> None:
        """Wait until every call queued so far has run (poll thread, before a revoke ends)."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        self._commands.post(done.set)
        done.wait()

    def stop(self) -> None:
        """Run what is queued, then end the thread and wait for it (poll thread)."""
        self._stopping = True
        self._commands.wake()
        if self._thread.is_alive():
            self._thread.join()

    def close(self) -> None:
        """Fail the calls that will never run (reactor thread, once the member ended)."""
        self._commands.close()

    def _run(self) -> None:
        while not self._stopping:
            self._commands.wait(_IDLE_WAIT)
        self._commands.run_queued()
