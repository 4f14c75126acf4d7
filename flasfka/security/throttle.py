"""Failed-authentication throttling: too many bad credentials from one address -> wait.

Each address gets a window of ``window`` seconds from its first failure; at ``limit``
failures within it the address is refused (429) until the window ends. At most ``tracked``
addresses are remembered (least recently failing forgotten first), so the memory is bounded
whatever the number of clients.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from flasfka.reactor import ReactorLike


class FailureThrottle:
    """Counts authentication failures per client address, in a bounded LRU."""

    def __init__(self, clock: ReactorLike, limit: int, window: float, tracked: int) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._tracked = tracked
        #: address -> (window start, failures in it)
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Seconds address must wait before trying credentials again, or None."""
        entry = self._failures.get(address)
        if entry is None:
            return None
        started, count = entry
        left = started + self._window - self._clock.seconds()
        if left <= 0:
            del self._failures[address]
            return None
        return max(1, math.ceil(left)) if count >= self._limit else None

    def failed(self, address: str) -> None:
        """Count one failed authentication from address."""
        now = self._clock.seconds()
        started, count = self._failures.pop(address, (now, 0))
        if now - started >= self._window:
            started, count = now, 0
        self._failures[address] = (started, count + 1)
        while len(self._failures) > self._tracked:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)
