"""Leases on a Clock with a fake member: expiry, release, acks out of order, the commit
floor, at-most-once GETs beside leases, rebalances, dead letters and cursors (no broker)."""

from __future__ import annotations

from collections import deque

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from flasfka.cursors import CursorRef, CursorSigner
from flasfka.delivery import CommitRounds
from flasfka.errors import Conflict, InvalidInput, Unavailable
from flasfka.leases import Lease, Leases
from flasfka.records import Record


class FakeMember:
    """A member with a buffer of records of partitions 0 and 1, whose commits are recorded."""

    def __init__(self, per_partition: int = 10, partitions: int = 1) -> None:
        self.topic = "t"
        self.on_revoke = None
        self.assigned = set(range(partitions))
        self.buffer: deque[Record] = deque(
            Record("t", p, o, None, None, f"{p}:{o}".encode(), None)
            for o in range(per_partition)
            for p in range(partitions)
        )
        self.commits: list[dict[int, int]] = []
        self.fail_next = False

    @property
    def assignment(self) -> frozenset[int]:
        return frozenset(self.assigned)

    def take(self, limit: int) -> list[Record]:
        return [self.buffer.popleft() for _ in range(min(limit, len(self.buffer)))]

    def put_back(self, records: list[Record]) -> None:
        self.buffer.extendleft(reversed(records))

    def commit_offsets(self, ends: dict[int, int]) -> Deferred[None]:
        if self.fail_next:
            self.fail_next = False
            d: Deferred[None] = Deferred()
            d.errback(Unavailable("commit failed"))
            return d
        self.commits.append(dict(ends))
        return succeed(None)

    def revoke(self, partitions: set[int]) -> None:
        self.assigned -= partitions
        self.buffer = deque(r for r in self.buffer if r.partition not in partitions)
        assert self.on_revoke is not None
        self.on_revoke(partitions)


class Events:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.outstanding = 0

    def leases_changed(self, topic: str, records: int) -> None:
        self.outstanding += records

    def lease_event(self, kind: str, topic: str, records: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + records


def make(max_leased: int = 100, **kwargs):
    clock = Clock()
    shape = {k: kwargs.pop(k) for k in ("per_partition", "partitions") if k in kwargs}
    member = FakeMember(**shape)
    events = Events()
    leases = Leases(clock, member, max_leased, events=events, **kwargs)
    return clock, member, leases, events


def ref(leases: Leases, lease: Lease) -> CursorRef:
    return CursorRef(leases.generation, lease.id, len(lease.records))


def offsets(lease: Lease) -> list[int]:
    return [r.offset for r in lease.records]


def test_expiry_redelivers_exactly_the_unacked_in_order_ahead_of_newer():
    clock, _member, leases, events = make()
    first, second = leases.lease(3, 30), leases.lease(3, 30)
    assert (offsets(first), offsets(second)) == ([0, 1, 2], [3, 4, 5])
    leases.ack(ref(leases, second))
    clock.advance(30)
    again = leases.lease(10, 30)
    assert offsets(again)[:3] == [0, 1, 2]
    assert again.deliveries[:3] == [2, 2, 2]
    assert offsets(again)[3:] == [6, 7, 8, 9] and again.deliveries[3:] == [1, 1, 1, 1]
    assert events.counts["expired"] == 3 and events.counts["redelivered"] == 3


def test_leased_records_go_to_no_other_get_and_acked_never_again():
    clock, _member, leases, _ = make()
    first = leases.lease(5, 10)
    second = leases.lease(5, 10)
    assert set(offsets(first)).isdisjoint(offsets(second))
    leases.ack(ref(leases, first))
    leases.ack(ref(leases, second))
    clock.advance(60)
    assert leases.lease(5, 10).records == []


def test_commit_floor_is_the_first_unacked_record():
    _clock, member, leases, _ = make()
    first, second, third = leases.lease(2, 30), leases.lease(2, 30), leases.lease(2, 30)
    leases.ack(ref(leases, second))
    assert member.commits == [{0: 0}]  # nothing acknowledged before offset 0
    leases.ack(ref(leases, third))
    assert member.commits == [{0: 0}]  # still held by the first lease
    leases.ack(ref(leases, first))
    assert member.commits[-1] == {0: 6}


def test_release_redelivers_at_once_and_twice_is_fine():
    _clock, _member, leases, events = make()
    first = leases.lease(2, 30)
    leases.release(ref(leases, first))
    leases.release(ref(leases, first))
    again = leases.lease(2, 30)
    assert offsets(again) == [0, 1] and again.deliveries == [2, 2]
    assert events.counts["released"] == 2
    with pytest.raises(Conflict):
        leases.ack(ref(leases, first))


def test_ack_twice_is_fine_an_expired_one_conflicts():
    clock, _member, leases, _ = make()
    acked, expired = leases.lease(1, 5), leases.lease(1, 5)
    leases.ack(ref(leases, acked))
    assert leases.ack(ref(leases, acked)).called
    clock.advance(5)
    with pytest.raises(Conflict, match="expired"):
        leases.ack(ref(leases, expired))
    with pytest.raises(Conflict, match="no longer held"):
        leases.ack(CursorRef(leases.generation + 1000, acked.id, 1))


def test_bound_of_leased_records_per_member():
    clock, _member, leases, events = make(max_leased=5)
    assert len(leases.lease(3, 30).records) == 3
    assert len(leases.lease(3, 30).records) == 2  # the room left
    with pytest.raises(Unavailable, match="CONSUMER_MAX_LEASED"):
        leases.lease(1, 30)
    assert events.outstanding == 5
    clock.advance(30)
    assert events.outstanding == 0 and len(leases.lease(3, 30).records) == 3


def test_at_most_once_gets_never_commit_past_a_leased_record():
    _clock, member, leases, _ = make()
    rounds = CommitRounds(leases.at_most_once)
    leased = leases.lease(2, 30)
    plain = rounds.consume(3)
    assert [r.offset for r in plain.result] == [2, 3, 4]
    assert member.commits[-1] == {0: 0}  # capped at the leased offset 0
    leases.ack(ref(leases, leased))
    assert member.commits[-1] == {0: 5}


def test_at_most_once_gets_take_returned_records_first_and_ack_them():
    clock, member, leases, _ = make()
    rounds = CommitRounds(leases.at_most_once)
    leases.lease(2, 5)
    clock.advance(5)
    plain = rounds.consume(3)
    assert [r.offset for r in plain.result] == [0, 1, 2]
    assert member.commits[-1] == {0: 3}
    assert offsets(leases.lease(1, 5)) == [3]


def test_a_failed_at_most_once_commit_keeps_the_floor():
    _clock, member, leases, _ = make()
    rounds = CommitRounds(leases.at_most_once)
    leased = leases.lease(1, 30)
    member.fail_next = True
    failed = rounds.consume(2)
    failed.addErrback(lambda f: f.trap(Unavailable))
    leases.ack(ref(leases, leased))
    assert member.commits[-1] == {0: 1}  # not past the records put back (1, 2)
    again = leases.lease(5, 30)
    assert offsets(again)[:2] == [1, 2]


def test_without_leases_an_at_most_once_get_commits_as_before():
    _clock, member, leases, _ = make()
    rounds = CommitRounds(leases.at_most_once)
    rounds.consume(4)
    assert member.commits == [{0: 4}]


def test_revoked_partitions_drop_their_leases_and_are_never_committed():
    _clock, member, leases, events = make(partitions=2, per_partition=3)
    both = leases.lease(4, 30)  # 0:0 1:0 0:1 1:1
    member.revoke({1})
    with pytest.raises(Conflict, match="rebalance"):
        leases.ack(ref(leases, both))
    assert events.counts["revoked"] == 4
    again = leases.lease(10, 30)  # partition 0's records come back, partition 1's do not
    assert [(r.partition, r.offset) for r in again.records] == [(0, 0), (0, 1), (0, 2)]
    leases.ack(ref(leases, again))
    assert all(1 not in commit for commit in member.commits)
    assert member.commits[-1] == {0: 3}


def test_dead_letter_after_max_deliveries_then_counted_as_acked():
    written: list[list[tuple[Record, int]]] = []

    def dead_letter(batch):
        written.append(batch)
        return succeed(None)

    clock, member, leases, events = make(max_deliveries=2, dead_letter=dead_letter)
    leases.lease(1, 5)
    clock.advance(5)
    assert leases.lease(1, 5).deliveries == [2]
    clock.advance(5)
    assert [(r.offset, n) for r, n in written[0]] == [(0, 2)]
    assert events.counts["dead_lettered"] == 1
    assert member.commits[-1] == {0: 1}
    assert offsets(leases.lease(1, 5)) == [1]


def test_a_failed_dead_letter_is_delivered_again():
    def dead_letter(batch):
        d: Deferred[None] = Deferred()
        d.errback(Unavailable("no broker"))
        return d

    clock, _member, leases, _ = make(max_deliveries=1, dead_letter=dead_letter)
    leases.lease(1, 5)
    clock.advance(5)
    again = leases.lease(1, 5)
    assert offsets(again) == [0] and again.deliveries == [2]


def test_cursors_are_signed_and_bound_to_topic_and_group():
    signer = CursorSigner()
    cursor = signer.issue("t", "g", CursorRef(3, 7, 2))
    got = signer.verify(cursor, "t", "g")
    assert (got.generation, got.lease, got.size) == (3, 7, 2)
    with pytest.raises(InvalidInput):
        signer.verify(cursor, "t", "other")
    with pytest.raises(InvalidInput):
        signer.verify(cursor, "other", "g")
    payload, signature = cursor.split(".")
    tampered = signer.issue("t", "g", CursorRef(3, 8, 2)).split(".")[0] + "." + signature
    with pytest.raises(InvalidInput, match="signature"):
        signer.verify(tampered, "t", "g")
    for garbage in ["", "x", "a.b", "a.b.c", 5, None, "é" * 3000, payload]:
        with pytest.raises(InvalidInput):
            signer.verify(garbage, "t", "g")
    with pytest.raises(Conflict, match="another flasfka process"):
        CursorSigner().verify(cursor, "t", "g")


def test_acks_during_a_commit_share_the_next_one():
    _clock, member, leases, _ = make()
    pending: list[Deferred[None]] = []

    def slow_commit(ends):
        member.commits.append(dict(ends))
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    member.commit_offsets = slow_commit  # type: ignore[method-assign]
    taken = [leases.lease(1, 30) for _ in range(4)]
    first = leases.ack(ref(leases, taken[0]))
    rest = [leases.ack(ref(leases, lease)) for lease in taken[1:]]
    assert member.commits == [{0: 1}]  # the others wait for it
    pending[0].callback(None)
    assert first.called and not any(d.called for d in rest)
    assert member.commits == [{0: 1}, {0: 4}]  # one commit for the three
    pending[1].callback(None)
    assert all(d.called for d in rest)


def test_config_keys_of_leases_are_checked():
    from flasfka.app.config import Config, ConfigError

    Config().validate("defaults")
    for bad in (
        {"CONSUMER_LEASE": 0.5},
        {"CONSUMER_LEASE": 400.0},
        {"CONSUMER_MAX_LEASED": 0},
        {"CONSUMER_MAX_DELIVERIES": -1},
        {"DEAD_LETTER_TOPIC": "{other}"},
        {"DEAD_LETTER_TOPIC": ""},
    ):
        with pytest.raises(ConfigError):
            Config(**bad).validate("f.py")


def test_an_ack_whose_commit_failed_is_committed_by_the_next_or_by_flush():
    _clock, member, leases, _ = make()
    taken = leases.lease(2, 30)
    member.fail_next = True
    failed = leases.ack(ref(leases, taken))
    errors: list[object] = []
    failed.addErrback(errors.append)
    assert errors and member.commits == []  # 503 to the client; acknowledged all the same
    leases.flush()  # what Gateway.stop does before leaving the group
    assert member.commits == [{0: 2}]
    assert leases.ack(ref(leases, taken)).called  # acking again is fine


def test_lease_each_leases_every_record_alone_within_the_bound():
    clock, member, leases, events = make(max_leased=4)
    each = leases.lease_each(10, 5)
    assert [offsets(lease) for lease in each] == [[0], [1], [2], [3]]  # the bound: 4
    assert len({lease.id for lease in each}) == 4 and leases.leased == 4
    with pytest.raises(Unavailable):
        leases.lease_each(1, 5)
    leases.ack(ref(leases, each[0]))
    leases.ack(ref(leases, each[2]))
    assert member.commits[-1] == {0: 1}  # the floor stops at the unacked offset 1
    clock.advance(5)
    again = leases.lease(10, 5)
    assert offsets(again)[:2] == [1, 3] and again.deliveries[:2] == [2, 2]
    assert events.counts["expired"] == 2 and events.counts["acked"] == 2


def test_ack_through_acks_the_events_of_one_stream_up_to_the_one_named():
    clock, member, leases, events = make(max_leased=10)
    first, second = leases.new_stream(), leases.new_stream()
    a = leases.lease_each(2, 5, first)  # offsets 0, 1
    leases.lease_each(2, 5, second)  # offsets 2, 3
    c = leases.lease_each(2, 5, first)  # offsets 4, 5
    leases.lease(1, 5)  # offset 6, a GET's lease
    assert leases.ack_through(ref(leases, c[0])).called
    # The first stream's events up to offset 4 are acked; not offset 5, nor the other
    # stream's, nor the GET's.
    assert leases.leased == 4 and events.counts["acked"] == 3
    assert member.commits[-1] == {0: 2}  # the floor stops at the second stream's offset 2
    with pytest.raises(Conflict):
        leases.release(ref(leases, a[1]))  # already acknowledged
    assert leases.ack(ref(leases, a[0])).called  # a second ack is fine
    clock.advance(5)
    again = leases.lease(10, 5)
    assert offsets(again) == [2, 3, 5, 6, 7, 8, 9]  # returned ones first, then new
    # A GET's cursor (no stream) acks that lease alone.
    assert leases.ack_through(ref(leases, again)).called and leases.leased == 0


def test_ack_through_a_lease_that_ended_acks_the_earlier_ones_still_held():
    _clock, _member, leases, events = make(max_leased=10)
    stream = leases.new_stream()
    each = leases.lease_each(3, 5, stream)
    leases.release(ref(leases, each[2]))  # returned: delivered again, not acknowledged
    assert leases.ack_through(ref(leases, each[2])).called
    assert leases.leased == 0 and events.counts["acked"] == 2
    assert offsets(leases.lease(10, 5)) == [2, 3, 4, 5, 6, 7, 8, 9]
