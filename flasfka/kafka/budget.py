"""The read-ahead budget: bytes that all group members together may fetch ahead of GETs.

Each member may hold its own bound (CONSUMER_BUFFER_BYTES) or an equal part of the whole
budget (CONSUMER_BUFFER_BUDGET), whichever is smaller, so flasfka's memory is bounded by its
config however many groups clients open. Members that joined early may hold more than their
part has since become, and the total may then be spent: a member may still hold MIN_SHARE
bytes, so that a new group is served at once; the whole is bounded by CONSUMER_BUFFER_BUDGET +
MAX_CONSUMERS x MIN_SHARE, and parts even out as GETs take what early members hold.

Members count on their poll threads and the reactor subtracts what GETs take, so every count
is under one lock.
"""

from __future__ import annotations

import threading

#: Bytes any member may hold, whatever the others hold.
MIN_SHARE = 256 * 1024
#: What a fetched record costs beyond its key and value (its Message object, the header of
#: its bytes, its place in the buffer's columns), counted with them so that the bounds are
#: of memory rather than of payload: tracemalloc measured 258 (100-byte values) to 287 bytes
#: (1,000-byte values) a record held in the buffer.
RECORD_OVERHEAD = 288


def cost(count: int, size: int) -> int:
    """What count records of size bytes of keys and values count against a read-ahead."""
    return size + count * RECORD_OVERHEAD


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
            # A member that left took its bytes with it: what it still counts (a stream's
            # batch released after its member closed) would skew the total.
            if share in self._shares:
                share.used += size
                self._used += size

    def limit(self, own_bound: int) -> int:
        """What one member may hold now: its own bound or its equal part of the total."""
        return min(own_bound, self.total_bytes // max(1, len(self._shares)))

    def room(self, share: ReadAheadShare) -> int:
        """Bytes share may still fetch: within its part and what the total has left, or up
        to MIN_SHARE."""
        room = min(self.limit(share.own_bound) - share.used, self.total_bytes - self._used)
        return max(room, min(MIN_SHARE, share.own_bound) - share.used)

    def _reserve(self, share: ReadAheadShare, wanted: int) -> int:
        with self._lock:
            if share not in self._shares:
                return 0
            granted = max(0, min(wanted, self.room(share)))
            share.used += granted
            self._used += granted
        return granted


class ReadAheadShare:
    """One member's part of a ReadAheadBudget."""

    __slots__ = ("_budget", "own_bound", "used")

    def __init__(self, budget: ReadAheadBudget, own_bound: int) -> None:
        self._budget = budget
        self.own_bound = own_bound
        self.used = 0

    @property
    def room(self) -> int:
        """Bytes the member may still fetch (0 or less: stop until GETs take some)."""
        return self._budget.room(self)

    @property
    def exhausted(self) -> bool:
        """Whether the member should stop fetching until GETs take some of what it holds."""
        return self.room <= 0

    def use(self, size: int) -> None:
        """Count size bytes more (negative: fewer) held by this member."""
        self._budget._use(self, size)

    def reserve(self, wanted: int) -> int:
        """Take up to wanted bytes of room before fetching (so that members fetching at the
        same time cannot all spend the same room); what was granted is counted as used."""
        return self._budget._reserve(self, wanted)

    def leave(self) -> None:
        """The member closed: its bytes and its part go back to the others."""
        self._budget._leave(self)
