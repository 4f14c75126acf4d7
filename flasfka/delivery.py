"""What a GET takes and commits.

At-most-once (a GET without ack=explicit): the records a GET takes are committed before it
answers. GETs that arrive while a commit is in flight wait for it, then take in arrival order
and share one commit (a round): the same order and guarantee as one commit per GET under a
lock, with one broker round trip per round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from flasfka.batches import Batch, RecordChunk
from flasfka.records import Record


class Member(Protocol):
    """What a delivery rule needs of a group member (through flasfka.leases' ledger)."""

    def take(self, limit: int) -> list[Record]: ...
    def take_batch(self, limit: int) -> Batch: ...
    def put_back(self, records: list[Record]) -> None: ...
    def commit(self, batch: Batch) -> Deferred[None]: ...


#: What one reader took: Records (a GET) or a Batch as buffered (a stream).
Taken = list[Record] | Batch


def _records(taken: Taken) -> list[Record]:
    return taken.records() if isinstance(taken, Batch) else taken


def _batch(takes: list[Taken]) -> Batch:
    """Everything a round's readers took, as one Batch to commit."""
    if len(takes) == 1 and isinstance(takes[0], Batch):
        return takes[0]
    return Batch(
        [
            chunk
            for taken in takes
            for chunk in (taken.chunks if isinstance(taken, Batch) else [RecordChunk(taken)])
        ]
    )


class CommitRounds:
    """At-most-once delivery for one member: take, commit, then answer."""

    def __init__(self, member: Member) -> None:
        self._member = member
        self._queued: list[tuple[int, Callable[[int], Any], Deferred[Any]]] = []
        self._committing = False

    def consume(self, limit: int) -> Deferred[list[Record]]:
        """Up to limit records, committed; on a failed commit they are put back."""
        return self._queue(limit, self._member.take)

    def consume_batch(
        self, limit: int, on_take: Callable[[Batch], object] | None = None
    ) -> Deferred[Batch]:
        """The same as they were buffered (a stream writes values, not Records); on_take is
        called with the batch once it is taken, before its commit (a stream counts it)."""
        if on_take is None:
            return self._queue(limit, self._member.take_batch)
        take_batch = self._member.take_batch

        def take(limit: int) -> Batch:
            batch = take_batch(limit)
            on_take(batch)
            return batch

        return self._queue(limit, take)

    def _queue(self, limit: int, take: Callable[[int], Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(self._cancel_queued)
        self._queued.append((limit, take, d))
        if not self._committing:
            self._start_round()
        return d

    def _cancel_queued(self, d: Deferred[Any]) -> None:
        """A GET gone before its round started takes nothing."""
        self._queued = [queued for queued in self._queued if queued[2] is not d]

    def _start_round(self) -> None:
        queued, self._queued = self._queued, []
        takes: list[tuple[Deferred[Any], Taken]] = [(d, take(limit)) for limit, take, d in queued]
        batch = _batch([taken for _, taken in takes])
        if not batch:
            for d, taken in takes:
                d.callback(taken)
            return
        self._committing = True
        self._member.commit(batch).addBoth(self._end_round, takes)

    def _end_round(self, result: object, takes: list[tuple[Deferred[Any], Taken]]) -> None:
        """Answer a round's GETs; put back what was not committed or not delivered."""
        self._committing = False
        failed = isinstance(result, Failure)
        for d, taken in reversed(takes):
            if failed or d.called:  # d.called: the GET was cancelled (client gone)
                self._member.put_back(_records(taken))
        for d, taken in takes:
            if d.called:
                continue
            if isinstance(result, Failure):
                d.errback(Failure(result.value))
            else:
                d.callback(taken)
        if self._queued:
            self._start_round()
