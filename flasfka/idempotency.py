"""Idempotency-Key: the first answer of a POST, kept so that a retry is not written again.

The store is per process and bounded: at most max_keys keys (in flight or answered) and
max_bytes of stored answers; answered keys expire ttl seconds after their answer, and the
oldest answered ones are dropped first when a bound is reached (a retry with a dropped key
is served, and written, as a new request). Only success answers are kept: a POST that
failed (503 and the like) releases its key, so the client may retry it with the same key and
the retry is written; the retry's success is then what later retries replay.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from flasfka.errors import InFlight, KeyReused, Unavailable
from flasfka.reactor import ReactorLike


@dataclass(frozen=True)
class StoredAnswer:
    """An answer to replay: status, headers (name, value) and body."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @property
    def size(self) -> int:
        """Bytes it holds, as counted against max_bytes (with a fixed overhead per key)."""
        return len(self.body) + 200


def fingerprint(*parts: bytes) -> bytes:
    """A digest of what makes two requests the same (path, key, Content-Type, body)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"%d:" % len(part))
        digest.update(part)
    return digest.digest()


class IdempotencyStore:
    """Idempotency keys of this process: in flight, or answered until they expire."""

    def __init__(self, clock: ReactorLike, ttl: float, max_keys: int, max_bytes: int) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max_keys = max_keys
        self._max_bytes = max_bytes
        #: key -> fingerprint of the request being served.
        self._in_flight: dict[str, bytes] = {}
        #: key -> (fingerprint, answer, expiry), oldest answer first.
        self._answered: OrderedDict[str, tuple[bytes, StoredAnswer, float]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._answered)

    def claim(self, key: str, digest: bytes) -> StoredAnswer | None:
        """The answer to replay for key; or None: the caller serves it, then calls
        answered() or released(). Raises InFlight (409), KeyReused (422), or Unavailable
        when every slot is held by a request in flight."""
        self._expire()
        if key in self._in_flight:
            if self._in_flight[key] != digest:
                raise KeyReused(self._reused(key))
            raise InFlight(
                f"a request with Idempotency-Key {_shown(key)!r} is still in flight; retry once it "
                "is answered"
            )
        stored = self._answered.get(key)
        if stored is not None:
            if stored[0] != digest:
                raise KeyReused(self._reused(key))
            return stored[1]
        while len(self) >= self._max_keys and self._answered:
            self._drop_oldest()
        if len(self) >= self._max_keys:
            raise Unavailable(
                f"{self._max_keys} requests with an Idempotency-Key are in flight "
                "(IDEMPOTENCY_MAX_KEYS); try again",
                retry_after=1,
            )
        self._in_flight[key] = digest
        return None

    def answered(self, key: str, answer: StoredAnswer) -> None:
        """Keep the answer of a claimed key for ttl seconds (if it fits max_bytes)."""
        digest = self._in_flight.pop(key, None)
        if digest is None or answer.size > self._max_bytes:
            return
        self._bytes += answer.size
        while self._bytes > self._max_bytes and self._answered:
            self._drop_oldest()
        self._answered[key] = (digest, answer, self._clock.seconds() + self._ttl)

    def released(self, key: str) -> None:
        """Forget a claimed key whose request failed: a retry is served as a new request."""
        self._in_flight.pop(key, None)

    def _drop_oldest(self) -> None:
        _, (_, answer, _) = self._answered.popitem(last=False)
        self._bytes -= answer.size

    def _expire(self) -> None:
        now = self._clock.seconds()
        answered = self._answered
        while answered:
            expiry = next(iter(answered.values()))[2]
            if expiry > now:
                return
            self._drop_oldest()

    @staticmethod
    def _reused(key: str) -> str:
        return (
            f"Idempotency-Key {_shown(key)!r} was used for another request (another topic, key, "
            "Content-Type or body); use a new key for a new request"
        )


def _shown(key: str) -> str:
    """The client's own key, without the principal a caller may prefix it with ("p\\0key")."""
    return key.rpartition("\x00")[2]
