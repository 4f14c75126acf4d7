"""Which GETs waiting on a group member a new record wakes (no broker, a Clock)."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from flasfka.batches import RecordChunk
from flasfka.errors import Unavailable
from flasfka.kafka import GroupMember
from flasfka.records import Record


def joined_member() -> tuple[GroupMember, Clock]:
    clock = Clock()
    member = GroupMember(clock, {}, "t", "g", buffer_messages=100, buffer_bytes=10**6)
    member._assign([0])
    member._received(RecordChunk([]), [0])  # partition 0 is at its end: caught up
    return member, clock


def record(offset: int) -> Record:
    return Record("t", 0, offset, None, None, b"v", None)


def long_poll(member: GroupMember, taken: list[list[Record]]) -> Deferred[None]:
    """What a long poll with limit=1 does: wait for a record, then take it."""

    async def poll() -> None:
        await member.wait_for(1, 30, 0)
        taken.append(member.take(1))

    return Deferred.fromCoroutine(poll())


def test_one_record_wakes_one_of_the_waiting_gets_the_oldest():
    member, clock = joined_member()
    taken: list[list[Record]] = []
    polls = [long_poll(member, taken) for _ in range(3)]
    timers = set(clock.getDelayedCalls())
    member._received(RecordChunk([record(0)]), [])
    assert [poll.called for poll in polls] == [True, False, False]
    # The other two were not woken: still waiting on their first timer, not on new ones.
    assert len(clock.getDelayedCalls()) == 2 and set(clock.getDelayedCalls()) < timers
    assert [[r.offset for r in t] for t in taken] == [[0]]
    assert member.waiting == 2
    member._received(RecordChunk([record(1), record(2)]), [])
    assert all(poll.called for poll in polls)
    assert [[r.offset for r in t] for t in taken] == [[0], [1], [2]]


def test_the_gets_not_woken_still_end_at_their_timeout():
    member, clock = joined_member()
    taken: list[list[Record]] = []
    polls = [long_poll(member, taken) for _ in range(2)]
    member._received(RecordChunk([record(0)]), [])
    clock.advance(29.9)
    assert not polls[1].called
    clock.advance(0.1)
    assert polls[1].called and taken == [taken[0], []]


def test_a_cancelled_get_is_passed_over_for_the_next():
    member, _ = joined_member()
    taken: list[list[Record]] = []
    polls = [long_poll(member, taken) for _ in range(2)]
    polls[0].cancel()
    polls[0].addErrback(lambda _: None)
    member._received(RecordChunk([record(0)]), [])
    assert polls[1].called and [[r.offset for r in t] for t in taken] == [[0]]


def test_close_wakes_every_waiting_get():
    member, _ = joined_member()
    taken: list[list[Record]] = []
    polls = [long_poll(member, taken) for _ in range(3)]
    member._stopping = True  # what close() sets before it notifies (without the thread)
    member._notify()
    errors: list[object] = []
    for poll in polls:
        poll.addErrback(lambda f: errors.append(f.value))
    assert len(errors) == 3 and all(isinstance(e, Unavailable) for e in errors)
