"""What became of leases that ended, so that a late ack or release gets the right answer.

A second ack of a lease is 204, an ack of an expired or released one is 409 with the reason,
and a stream's Last-Event-ID needs the stream that took a lease. The last ENDED_KEPT ended
leases are remembered; older ones are "forgotten" (an ack of one is a 409).
"""

from __future__ import annotations

from collections import deque

#: How many ended leases are remembered, so that a second ack of one answers 204.
ENDED_KEPT = 8192


class LeaseHistory:
    """How each recently ended lease ended, and which stream took each stream lease."""

    def __init__(self, kept: int = ENDED_KEPT) -> None:
        self._kept = kept
        self._how: dict[int, str] = {}
        self._order: deque[int] = deque()
        self._stream_of: dict[int, int] = {}

    def taken_by_stream(self, lease_id: int, stream: int) -> None:
        """Lease lease_id was taken by stream (an ack=explicit SSE stream's tag)."""
        self._stream_of[lease_id] = stream

    def stream_of(self, lease_id: int) -> int:
        """The stream that took lease_id, 0 for a GET's lease or one forgotten."""
        return self._stream_of.get(lease_id, 0)

    def ended(self, lease_id: int, how: str) -> None:
        """Lease lease_id ended: "acked", "released", "expired" or "revoked"."""
        self._how[lease_id] = how
        self._order.append(lease_id)
        while len(self._order) > self._kept:
            forgotten = self._order.popleft()
            self._how.pop(forgotten, None)
            self._stream_of.pop(forgotten, None)

    def how(self, lease_id: int) -> str:
        """How lease_id ended, "forgotten" if it is not remembered."""
        return self._how.get(lease_id, "forgotten")


def why_not_held(how: str) -> str:
    """What a 409 says of a lease that ended the way how says."""
    reason = {
        "expired": "its lease expired",
        "released": "it was released",
        "revoked": "its partitions moved to another group member (a rebalance)",
    }.get(how, "its lease ended")
    return (
        f"this cursor's lease is no longer held here ({reason}): its unacknowledged "
        "messages will be (or were) delivered again"
    )
