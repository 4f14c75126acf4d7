"""At-least-once delivery: leases, acknowledgements, redelivery and dead letters.

A GET with ``ack=explicit`` takes records from the member without committing them and leases
them for some seconds. Until the lease ends no other GET of the group gets them. An ack ends
the lease for good; a release, or the lease running out, returns its records to a queue of
returned records that every GET of the group (either mode) takes from before the member's
buffer, oldest first, each record counting its deliveries. A record delivered
CONSUMER_MAX_DELIVERIES times without an ack goes to the dead-letter topic instead, and then
counts as acknowledged.

The committed offset of a partition is the first record taken and not yet acknowledged (the
lowest *pending* offset), or, with none pending, the end of what was delivered: acks may come
in any order, and the offset never passes a record that is still leased or returned.

At-most-once GETs on the same group read through ``at_most_once`` (a view of the same
ledger): they take returned records first too, a record they deliver counts as acknowledged,
and their commit is capped at the first pending record. So a plain GET never commits past a
leased record; what it delivered beyond one may be delivered again after a crash or restart
(at-least-once for those records while leases are outstanding).

A rebalance drops the leases of revoked partitions (their acks then answer 409) and forgets
their pending records: the new owner resumes from the committed offset, so nothing
unacknowledged is lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from flasfka.batches import Batch, Chunk, RecordChunk
from flasfka.commit_floor import CommitFloor
from flasfka.cursors import CursorRef
from flasfka.errors import Conflict, Unavailable
from flasfka.lease_history import LeaseHistory, why_not_held
from flasfka.reactor import ReactorLike
from flasfka.records import Record

log = Logger(namespace="flasfka.leases")

#: Generations of Leases in this process: a cursor names the one that issued it.
_generations = itertools.count(1)

#: Writes (record, deliveries) pairs to the dead-letter topic; fires once all are written.
DeadLetter = Callable[[list[tuple[Record, int]]], Deferred[None]]


class LeaseMember(Protocol):
    """What leases need of a group member (flasfka.kafka.consumer.GroupMember)."""

    topic: str
    on_revoke: Callable[[set[int]], None] | None

    @property
    def assignment(self) -> frozenset[int]: ...
    def take(self, limit: int) -> list[Record]: ...
    def take_batch(self, limit: int) -> Batch: ...
    def put_back(self, records: list[Record]) -> None: ...
    def commit_offsets(self, ends: dict[int, int]) -> Deferred[None]: ...


class LeaseEvents(Protocol):
    """Counts of what leases do, by topic (flasfka.metrics.GatewayMetrics)."""

    def leases_changed(self, topic: str, records: int) -> None: ...
    def lease_event(self, kind: str, topic: str, records: int) -> None: ...


class _NoEvents:
    def leases_changed(self, topic: str, records: int) -> None:
        pass

    def lease_event(self, kind: str, topic: str, records: int) -> None:
        pass


class Lease:
    """Records handed out together under one cursor, until acked, released or expired."""

    __slots__ = ("deliveries", "id", "records", "stream", "timer")

    def __init__(
        self, lease_id: int, records: list[Record], deliveries: list[int], stream: int = 0
    ) -> None:
        self.id = lease_id
        self.records = records
        #: How many times each record has now been delivered (1 the first time).
        self.deliveries = deliveries
        #: The stream that leased it (lease_each), 0 for a GET.
        self.stream = stream
        self.timer: Any = None


def _order(record: Record) -> tuple[int, int]:
    return (record.partition, record.offset)


class _AtMostOnceView:
    """The member as CommitRounds sees it, through the lease ledger (see module doc)."""

    def __init__(self, leases: Leases) -> None:
        self._leases = leases

    def take(self, limit: int) -> list[Record]:
        return self._leases._take(limit)

    def take_batch(self, limit: int) -> Batch:
        return self._leases._take_batch(limit)

    def put_back(self, records: list[Record]) -> None:
        self._leases._put_back(records)

    def commit(self, batch: Batch) -> Deferred[None]:
        return self._leases._commit_delivered(batch)


class Leases:
    """The leases, returned records and commit floor of one group member."""

    def __init__(
        self,
        reactor: ReactorLike,
        member: LeaseMember,
        max_leased: int,
        max_deliveries: int = 0,
        dead_letter: DeadLetter | None = None,
        events: LeaseEvents | None = None,
    ) -> None:
        self._reactor = reactor
        self._member = member
        self._topic = member.topic
        self._max_leased = max_leased
        self._max_deliveries = max_deliveries
        self._dead_letter = dead_letter
        self._events = events if events is not None else _NoEvents()
        #: Which Leases of this process issued a cursor (a new member is a new generation).
        self.generation = next(_generations)
        self._ids = itertools.count(1)
        self._leases: dict[int, Lease] = {}
        self._history = LeaseHistory()
        self._streams = itertools.count(1)
        #: What may be committed: the first record taken and not acknowledged, per partition.
        self._floor = CommitFloor(member)
        #: Records returned by a release or an expiry, by (partition, offset).
        self._returned: list[Record] = []
        #: Records in leases now.
        self.leased = 0
        self.at_most_once = _AtMostOnceView(self)
        member.on_revoke = self.revoke

    @property
    def max_leased(self) -> int:
        """The most records this member leases at once (CONSUMER_MAX_LEASED)."""
        return self._max_leased

    @property
    def returned(self) -> int:
        """Records waiting to be delivered again."""
        return len(self._returned)

    def check_room(self) -> None:
        """Raise Unavailable if this member holds its bound of leased records."""
        if self.leased >= self._max_leased:
            raise Unavailable(
                f"{self.leased} messages of this group are leased and not yet acknowledged "
                f"(CONSUMER_MAX_LEASED is {self._max_leased}); acknowledge or release some, "
                "or wait for their leases to end",
                retry_after=1,
            )

    # --- taking ----------------------------------------------------------------------------

    def _take(self, limit: int) -> list[Record]:
        """Returned records first, then the member's buffer."""
        returned = self._returned
        if returned:
            taken = returned[:limit]
            del returned[:limit]
            if len(taken) < limit:
                taken.extend(self._member.take(limit - len(taken)))
            return taken
        return self._member.take(limit)

    def _take_batch(self, limit: int) -> Batch:
        """The same, as buffered: returned records as one chunk, then the member's chunks."""
        returned = self._returned
        if not returned:
            return self._member.take_batch(limit)
        taken = returned[:limit]
        del returned[:limit]
        chunks: list[Chunk] = [RecordChunk(taken)]
        if len(taken) < limit:
            chunks.extend(self._member.take_batch(limit - len(taken)).chunks)
        return Batch(chunks)

    def _put_back(self, records: list[Record]) -> None:
        """Records taken and not delivered: pending ones to the returned queue, others back."""
        fresh = []
        back = []
        for record in records:
            if self._floor.is_pending(record):
                back.append(record)
            else:
                fresh.append(record)
        self._requeue(back)
        self._member.put_back(fresh)

    def _requeue(self, records: list[Record]) -> None:
        """Add records to the returned queue, kept in (partition, offset) order."""
        if records:
            # Two sorted runs: timsort merges them in linear time.
            self._returned = sorted([*self._returned, *records], key=_order)

    def lease(self, limit: int, seconds: float) -> Lease:
        """Take up to limit records (bounded by the room left) and lease them for seconds."""
        self.check_room()
        records = self._take(min(limit, self._max_leased - self.leased))
        if not records:
            return Lease(0, [], [])
        deliveries = self._floor.deliver(records)
        again = sum(1 for count in deliveries if count > 1)
        lease = Lease(next(self._ids), records, deliveries)
        lease.timer = self._reactor.callLater(seconds, self._expire, lease.id)
        self._leases[lease.id] = lease
        self.leased += len(records)
        self._events.leases_changed(self._topic, len(records))
        if again:
            self._events.lease_event("redelivered", self._topic, again)
        return lease

    def new_stream(self) -> int:
        """A tag for the leases of one ack=explicit stream (see lease_each, ack_through)."""
        return next(self._streams)

    def lease_each(self, limit: int, seconds: float, stream: int = 0) -> list[Lease]:
        """As lease(), but one lease per record (an ack=explicit SSE stream: one per event).

        An event's cursor covers exactly its own message, and ack_through() acknowledges the
        stream's events up to one: a client that lost the end of a write and reconnects with
        the Last-Event-ID it last saw acknowledges nothing it did not receive.
        """
        self.check_room()
        records = self._take(min(limit, self._max_leased - self.leased))
        if not records:
            return []
        deliveries = self._floor.deliver(records)
        again = sum(1 for count in deliveries if count > 1)
        leases = []
        for record, count in zip(records, deliveries, strict=True):
            lease = Lease(next(self._ids), [record], [count], stream)
            if stream:
                self._history.taken_by_stream(lease.id, stream)
            lease.timer = self._reactor.callLater(seconds, self._expire, lease.id)
            self._leases[lease.id] = lease
            leases.append(lease)
        self.leased += len(records)
        self._events.leases_changed(self._topic, len(records))
        if again:
            self._events.lease_event("redelivered", self._topic, again)
        return leases

    # --- ending leases ---------------------------------------------------------------------

    def _end(self, lease_id: int, how: str) -> Lease | None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return None
        if lease.timer is not None and lease.timer.active():
            lease.timer.cancel()
        self.leased -= len(lease.records)
        self._events.leases_changed(self._topic, -len(lease.records))
        self._history.ended(lease_id, how)
        return lease

    def _gone(self, ref: CursorRef) -> Lease | str:
        """The lease ref names if still held, else how it ended (raises if unknown)."""
        if ref.generation != self.generation:
            raise Conflict(
                "this cursor's lease is no longer held here (the group member was closed and "
                "opened again since): its unacknowledged messages will be delivered again"
            )
        lease = self._leases.get(ref.lease)
        if lease is not None:
            return lease
        return self._history.how(ref.lease)

    def ack(self, ref: CursorRef) -> Deferred[None]:
        """Acknowledge the lease of ref; fires once the offsets it allows are committed."""
        if ref.size == 0:
            return succeed(None)
        found = self._gone(ref)
        if isinstance(found, str):
            if found == "acked":
                return self.commit()
            raise Conflict(why_not_held(found))
        self._end(ref.lease, "acked")
        self._floor.acknowledge(found.records)
        self._events.lease_event("acked", self._topic, len(found.records))
        return self.commit()

    def ack_through(self, ref: CursorRef) -> Deferred[None]:
        """Acknowledge ref's lease and every lease its stream took before it and still holds
        (a reconnect's Last-Event-ID: events arrive in order, so the client received those)."""
        if ref.size == 0:
            return succeed(None)
        self._gone(ref)  # a cursor of an earlier generation is a Conflict
        stream = self._history.stream_of(ref.lease)
        if not stream:  # not a stream's lease, or forgotten: that one alone
            return self.ack(ref)
        through = [
            lease
            for lease in self._leases.values()
            if lease.stream == stream and lease.id <= ref.lease
        ]
        for lease in through:
            self._end(lease.id, "acked")
            self._floor.acknowledge(lease.records)
        if through:
            self._events.lease_event("acked", self._topic, len(through))
        return self.commit()

    def release(self, ref: CursorRef) -> None:
        """End the lease of ref now: its records are delivered again at once."""
        if ref.size == 0:
            return
        found = self._gone(ref)
        if isinstance(found, str):
            if found == "released":
                return
            if found == "acked":
                raise Conflict("this cursor's messages were already acknowledged")
            raise Conflict(why_not_held(found))
        self._end(ref.lease, "released")
        self._events.lease_event("released", self._topic, len(found.records))
        self._return(found)

    def _expire(self, lease_id: int) -> None:
        lease = self._end(lease_id, "expired")
        if lease is not None:
            self._events.lease_event("expired", self._topic, len(lease.records))
            self._return(lease)

    def _return(self, lease: Lease) -> None:
        """Queue an ended lease's records for redelivery, or dead-letter the worn-out ones."""
        limit = self._max_deliveries
        dead: list[tuple[Record, int]] = []
        back: list[Record] = []
        for record, count in zip(lease.records, lease.deliveries, strict=True):
            if limit and count >= limit and self._dead_letter is not None:
                dead.append((record, count))
            else:
                back.append(record)
        self._requeue(back)
        if dead:
            self._send_dead(dead)

    def _send_dead(self, dead: list[tuple[Record, int]]) -> None:
        assert self._dead_letter is not None
        generation = self.generation

        def written(_: object) -> None:
            if generation != self.generation:
                return
            self._floor.acknowledge([record for record, _count in dead])
            self._events.lease_event("dead_lettered", self._topic, len(dead))
            self.commit().addErrback(lambda f: log.warn("commit after dead letter: {f}", f=f.value))

        def failed(failure: Failure) -> None:
            log.warn(
                "{count} messages of {topic} could not be written to the dead-letter topic "
                "({why}); they will be delivered again",
                count=len(dead),
                topic=self._topic,
                why=getattr(failure.value, "message", failure.value),
            )
            assigned = self._member.assignment
            self._requeue(
                [
                    record
                    for record, _count in dead
                    if record.partition in assigned and self._floor.is_pending(record)
                ]
            )

        self._dead_letter(dead).addCallbacks(written, failed)

    # --- committing ------------------------------------------------------------------------

    def commit(self) -> Deferred[None]:
        """Commit every partition up to its first pending record; fires once committed."""
        return self._floor.commit()

    def _commit_delivered(self, batch: Batch) -> Deferred[None]:
        """Commit records an at-most-once GET takes: they count as acknowledged."""
        ends = batch.ends()
        floor = self._floor
        if not self._leases and not floor.any_pending():  # no lease here: the seed's commit
            return self._member.commit_offsets(ends).addCallback(lambda _: floor.advance(ends))
        records = batch.records()
        saved = floor.acknowledge(records)
        floor.advance(ends)

        def failed(failure: Failure) -> Failure:
            # Not committed: they go back (CommitRounds puts them back next) as pending records.
            floor.pend(records, {(r.partition, r.offset): n for r, n in saved})
            return failure

        return floor.commit().addErrback(failed)

    # --- rebalance and close ---------------------------------------------------------------

    def revoke(self, partitions: set[int]) -> None:
        """Partitions were taken away: drop their leases, pending and returned records."""
        if not partitions:
            return
        for lease in list(self._leases.values()):
            if any(record.partition in partitions for record in lease.records):
                self._end(lease.id, "revoked")
                self._events.lease_event("revoked", self._topic, len(lease.records))
                self._requeue([r for r in lease.records if r.partition not in partitions])
        self._returned = [r for r in self._returned if r.partition not in partitions]
        self._floor.forget(partitions)

    def flush(self) -> Deferred[None]:
        """Commit what was acknowledged (before a shutdown leaves the group)."""
        return self.commit()
