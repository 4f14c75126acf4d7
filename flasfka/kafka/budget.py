"""The read-ahead budget: bytes that all group members together may fetch ahead of GETs.

Each member may hold its own bound (CONSUMER_BUFFER_BYTES) or an equal part of the whole
budget (CONSUMER_BUFFER_BUDGET), whichever is smaller, so flasfka's memory is bounded by its
config however many groups clients open. Members count on their poll threads and the reactor
subtracts what GETs take, so every count is under one lock.
"""

from __future__ import annotations

import threading


class ReadAheadBudget:
    """Bytes of read-ahead shared fairly by the members that joined it."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self._lock = threading.Lock()
        self._shares: set[ReadAheadShare] = set()
        self._used = 0

    @property
    def used(self) -> int:
        """Bytes fetched ahead by every member, not yet taken."""
        return self._used

    @property
    def members(self) -> int:
        """Members holding a share."""
        return len(self._shares)

    def join(self, own_bound: int) -> ReadAheadShare:
        """A share for a new member that may never hold more than own_bound bytes."""
        share = ReadAheadShare(self, own_bound)
        with self._lock:
            self._shares.add(share)
        return share

    def _leave(self, share: ReadAheadShare) -> None:
        with self._lock:
            if share in self._shares:
                self._shares.discard(share)
                self._used -= share.used
                share.used = 0

    def _use(self, share: ReadAheadShare, size: int) -> None:
        with self._lock:
            share.used += size
            self._used += size

    def limit(self, own_bound: int) -> int:
        """What one member may hold now: its own bound or its equal part of the total."""
        return min(own_bound, self.total_bytes // max(1, len(self._shares)))


class ReadAheadShare:
    """One member's part of a ReadAheadBudget."""

    __slots__ = ("_budget", "own_bound", "used")

    def __init__(self, budget: ReadAheadBudget, own_bound: int) -> None:
        self._budget = budget
        self.own_bound = own_bound
        self.used = 0

    @property
    def exhausted(self) -> bool:
        """Whether the member should stop fetching until GETs take some of what it holds."""
        return self.used >= self._budget.limit(self.own_bound)

    def use(self, size: int) -> None:
        """Count size bytes more (negative: fewer) held by this member."""
        self._budget._use(self, size)

    def leave(self) -> None:
        """The member closed: its bytes and its part go back to the others."""
        self._budget._leave(self)
