"""What a group member may commit while records are out for acknowledgement.

Each record taken and not yet acknowledged is *pending* (with how many times it has been
delivered). A partition may commit up to its lowest pending offset or, with none pending, up
to the end of what was delivered. So acknowledgements may come in any order and the
committed offset never passes an unacknowledged record. Commits run one at a time: the ones
asked for while one is in flight are made together by the next, in one broker round trip.
"""

from __future__ import annotations

from itertools import groupby, islice, repeat
from operator import lt
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from flasfka.records import OFFSET, PARTITION, Record


class Committer(Protocol):
    """What the floor needs of a group member (flasfka.kafka.consumer.GroupMember)."""

    @property
    def assignment(self) -> frozenset[int]: ...
    def commit_offsets(self, ends: dict[int, int]) -> Deferred[None]: ...


class CommitFloor:
    """The pending records of one member, and the commits they allow."""

    def __init__(self, member: Committer) -> None:
        self._member = member
        #: partition -> offset -> deliveries so far, of every record taken and not acked.
        self._pending: dict[int, dict[int, int]] = {}
        #: partition -> the offset after the last record delivered (leased, or committed by a
        #: plain GET); the commit target where nothing is pending.
        self._delivered_end: dict[int, int] = {}
        #: Partitions whose pending offsets were not all added in increasing order: their
        #: lowest is looked for (min), the others' is their first (dicts keep that order).
        self._unordered: set[int] = set()
        #: partition -> the offset last asked to be committed.
        self._asked: dict[int, int] = {}
        #: A commit is in flight; who waits for the next one.
        self._committing = False
        self._next_followers: list[Deferred[None]] = []

    def any_pending(self) -> bool:
        """Whether any record is out for acknowledgement."""
        return any(self._pending.values())

    def is_pending(self, record: Record) -> bool:
        """Whether record was taken and is not acknowledged."""
        return record.offset in self._pending.get(record.partition, ())

    def deliver(self, records: list[Record]) -> list[int]:
        """Count a delivery of each record (now pending); how many each has had.

        Records come in runs of one partition (a fetch hands them over so); each run is
        counted with dict operations in C, not a Python step per record.
        """
        pending = self._pending
        delivered_end = self._delivered_end
        counts: list[int] = []
        for partition, run in groupby(records, PARTITION):
            offsets = list(map(OFFSET, run))
            end = max(offsets) + 1
            if end > delivered_end.get(partition, 0):
                delivered_end[partition] = end
            known = pending.get(partition)
            if known is None:
                known = pending[partition] = {}
            if known.keys().isdisjoint(offsets):  # the common case: a first delivery
                before = len(known)
                self._note_order(partition, known, offsets)
                known.update(zip(offsets, repeat(1)))
                if len(known) == before + len(offsets):
                    counts.extend(repeat(1, len(offsets)))
                    continue
                for offset in offsets:  # a record twice in one batch: count each time
                    known.pop(offset, None)
            self._unordered.add(partition)
            for offset in offsets:
                count = known[offset] = known.get(offset, 0) + 1
                counts.append(count)
        return counts

    def _note_order(self, partition: int, known: dict[int, int], offsets: list[int]) -> None:
        """Before offsets are added to a partition's pending ones: keep track of whether its
        first pending offset is still its lowest (each added run higher than the last, and
        increasing), so that the commit target needs no min() over thousands of offsets."""
        if not known:
            self._unordered.discard(partition)  # a fresh start
        elif partition in self._unordered:
            return
        if (known and offsets[0] <= next(reversed(known))) or not all(
            map(lt, offsets, islice(offsets, 1, None))
        ):
            self._unordered.add(partition)

    def acknowledge(self, records: list[Record]) -> list[tuple[Record, int]]:
        """records are done; the (record, deliveries) of those that were pending."""
        done: list[tuple[Record, int]] = []
        pending = self._pending
        for partition, group in groupby(records, PARTITION):
            offsets = pending.get(partition)
            if offsets is None:
                continue
            run = list(group)
            counts = list(map(offsets.pop, map(OFFSET, run), repeat(None)))
            if None in counts:  # some were acknowledged before
                done.extend((r, c) for r, c in zip(run, counts, strict=True) if c is not None)
            else:
                done.extend(zip(run, counts, strict=True))  # type: ignore[arg-type]  # no None
        return done

    def pend(self, records: list[Record], counts: dict[tuple[int, int], int]) -> None:
        """Make records pending again (a failed commit), with their earlier deliveries."""
        for record in records:
            key = (record.partition, record.offset)
            self._pending.setdefault(record.partition, {})[record.offset] = counts.get(key, 0)
            self._unordered.add(record.partition)

    def advance(self, ends: dict[int, int]) -> None:
        """Records before ends were delivered (and committed) by an at-most-once GET."""
        for partition, end in ends.items():
            if end > self._delivered_end.get(partition, 0):
                self._delivered_end[partition] = end

    def forget(self, partitions: set[int]) -> None:
        """Partitions were revoked: never commit them again (until reassigned)."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._unordered.discard(partition)
            self._delivered_end.pop(partition, None)
            self._asked.pop(partition, None)

    def _target(self, partition: int) -> int | None:
        offsets = self._pending.get(partition)
        if offsets:
            return min(offsets) if partition in self._unordered else next(iter(offsets))
        return self._delivered_end.get(partition)

    def commit(self) -> Deferred[None]:
        """Commit every partition up to its first pending record; fires once committed."""
        follower: Deferred[None] = Deferred()
        if self._committing:
            self._next_followers.append(follower)
            return follower
        ends = self._ends()
        if not ends:
            follower.callback(None)
            return follower
        self._start(ends, [follower])
        return follower

    def _ends(self) -> dict[int, int]:
        """partition -> offset to commit, where it moved since last asked."""
        ends: dict[int, int] = {}
        for partition in self._member.assignment:
            target = self._target(partition)
            if target is not None and target > self._asked.get(partition, -1):
                ends[partition] = target
        return ends

    def _start(self, ends: dict[int, int], followers: list[Deferred[None]]) -> None:
        self._committing = True
        self._asked.update(ends)

        def done(result: object) -> None:
            self._committing = False
            if isinstance(result, Failure):
                for partition, end in ends.items():
                    if self._asked.get(partition) == end:
                        del self._asked[partition]  # asked again by the next commit
            for follower in followers:
                if isinstance(result, Failure):
                    follower.errback(result)
                else:
                    follower.callback(None)
            waiting, self._next_followers = self._next_followers, []
            if waiting:
                ends_now = self._ends()
                if ends_now:
                    self._start(ends_now, waiting)
                else:
                    for follower in waiting:
                        follower.callback(None)

        self._member.commit_offsets(ends).addBoth(done)
