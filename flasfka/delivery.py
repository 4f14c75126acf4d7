"""What a GET takes and commits.

At-most-once (a GET without ack=explicit): the records a GET takes are committed before it
answers. GETs that arrive while a commit is in flight wait for it, then take in arrival order
and share one commit (a round): the same order and guarantee as one commit per GET under a
lock, with one broker round trip per round.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from flasfka.records import Record


class Member(Protocol):
    """What a delivery rule needs of a group member (flasfka.kafka.consumer.GroupMember)."""

    def take(self, limit: int) -> list[Record]: ...
    def put_back(self, records: list[Record]) -> None: ...
    def commit(self, records: list[Record]) -> Deferred[None]: ...


class CommitRounds:
    """At-most-once delivery for one member: take, commit, then answer."""

    def __init__(self, member: Member) -> None:
        self._member = member
        self._queued: list[tuple[int, Deferred[list[Record]]]] = []
        self._committing = False

    def consume(self, limit: int) -> Deferred[list[Record]]:
        """Up to limit records, committed; on a failed commit they are put back."""
        d: Deferred[list[Record]] = Deferred(self._cancel_queued)
        self._queued.append((limit, d))
        if not self._committing:
            self._start_round()
        return d

    def _cancel_queued(self, d: Deferred[list[Record]]) -> None:
        """A GET gone before its round started takes nothing."""
        self._queued = [(limit, q) for limit, q in self._queued if q is not d]

    def _start_round(self) -> None:
        queued, self._queued = self._queued, []
        takes = [(d, self._member.take(limit)) for limit, d in queued]
        records = takes[0][1] if len(takes) == 1 else [r for _, taken in takes for r in taken]
        if not records:
            for d, taken in takes:
                d.callback(taken)
            return
        self._committing = True
        self._member.commit(records).addBoth(self._end_round, takes)

    def _end_round(
        self, result: object, takes: list[tuple[Deferred[list[Record]], list[Record]]]
    ) -> None:
        """Answer a round's GETs; put back what was not committed or not delivered."""
        self._committing = False
        failed = isinstance(result, Failure)
        for d, taken in reversed(takes):
            if failed or d.called:  # d.called: the GET was cancelled (client gone)
                self._member.put_back(taken)
        for d, taken in takes:
            if d.called:
                continue
            if isinstance(result, Failure):
                d.errback(Failure(result.value))
            else:
                d.callback(taken)
        if self._queued:
            self._start_round()
