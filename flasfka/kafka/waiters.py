"""GETs waiting on a group member, each for a condition of its buffer (reactor thread)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from flasfka.reactor import ReactorLike


class Waiters:
    """Who waits for what; woken oldest first, only those whose condition holds."""

    def __init__(self, reactor: ReactorLike) -> None:
        self._reactor = reactor
        self._waiting: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def __bool__(self) -> bool:
        """Whether anyone waits (the poll thread then polls more often)."""
        return bool(self._waiting)

    def notify(self, wake_all: bool = False) -> None:
        """Wake the waiters whose condition holds now, oldest first (all if wake_all).

        A woken GET that takes records runs before the next condition is checked, so one
        record wakes one of 100 GETs waiting for one, not all of them.
        """
        waiting, self._waiting = self._waiting, []
        kept = []
        for condition, waiter in waiting:
            if waiter.called:  # timed out or cancelled
                continue
            if wake_all or condition():
                waiter.callback(None)
            else:
                kept.append((condition, waiter))
        self._waiting = kept + self._waiting  # those woken may be waiting again already

    async def wait_until(
        self, condition: Callable[[], bool], timeout: float, ended: Callable[[], bool]
    ) -> None:
        """Wait (cancellably) until condition() or ended() holds, or timeout."""
        deadline = self._reactor.seconds() + timeout
        while not (condition() or ended()):
            remaining = deadline - self._reactor.seconds()
            if remaining <= 0:
                return
            waiter: Deferred[None] = Deferred()
            self._waiting.append((condition, waiter))
            waiter.addTimeout(remaining, self._reactor, onTimeoutCancel=lambda *_: None)  # type: ignore[arg-type]
            await waiter
