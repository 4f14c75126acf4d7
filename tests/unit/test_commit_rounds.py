"""At-most-once commit rounds: order, put-back and cancellation (no broker)."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from flasfka.batches import Batch, RecordChunk
from flasfka.delivery import CommitRounds
from flasfka.errors import Unavailable
from flasfka.kafka import GroupMember
from flasfka.records import Record


class RecordingConsumer(GroupMember):
    """A GroupMember whose commits are Deferreds the test fires, read through CommitRounds."""

    def __init__(self, count: int) -> None:
        super().__init__(Clock(), {}, "t", "g", buffer_messages=100, buffer_bytes=10**6)
        self.commits: list[tuple[list[Record], Deferred[None]]] = []
        self._assigned = {0}
        self._received(
            RecordChunk([Record("t", 0, i, None, None, b"v", None) for i in range(count)]), []
        )
        self.consume = CommitRounds(self).consume

    def commit(self, batch: Batch) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.commits.append((batch.records(), d))
        return d


def offsets(records) -> list[int]:
    return [r.offset for r in records]


def test_gets_during_a_commit_share_the_next_round_in_order():
    consumer = RecordingConsumer(10)
    first = consumer.consume(2)
    second, third = consumer.consume(3), consumer.consume(1)
    assert len(consumer.commits) == 1  # second and third wait for the first commit
    consumer.commits[0][1].callback(None)
    assert offsets(first.result) == [0, 1]
    assert len(consumer.commits) == 2  # one commit for both waiting GETs
    assert offsets(consumer.commits[1][0]) == [2, 3, 4, 5]
    consumer.commits[1][1].callback(None)
    assert (offsets(second.result), offsets(third.result)) == ([2, 3, 4], [5])


def test_a_failed_round_puts_every_message_back_in_order():
    consumer = RecordingConsumer(6)
    consumer.consume(1).addErrback(lambda _: None)
    failed = [consumer.consume(2), consumer.consume(2)]
    consumer.commits[0][1].callback(None)
    errors = []
    for d in failed:
        d.addErrback(errors.append)
    consumer.commits[1][1].errback(Unavailable("commit failed"))
    assert [e.check(Unavailable) for e in errors] == [Unavailable, Unavailable]
    assert offsets(consumer.take(10)) == [1, 2, 3, 4, 5]


def test_a_cancelled_get_puts_its_messages_back_after_the_commit():
    consumer = RecordingConsumer(5)
    gone = consumer.consume(2)
    gone.addErrback(lambda _: None)
    gone.cancel()
    queued = consumer.consume(1)
    queued.addErrback(lambda _: None)
    queued.cancel()  # never took anything
    consumer.commits[0][1].callback(None)
    assert len(consumer.commits) == 1
    assert offsets(consumer.take(10)) == [0, 1, 2, 3, 4]


def test_taking_from_a_full_buffer_wakes_the_poll_thread_to_fetch_again():
    member = GroupMember(Clock(), {}, "t", "g", buffer_messages=3, buffer_bytes=10**6)
    member._assigned = {0}
    wakes: list[None] = []
    member._commands.wake = lambda: wakes.append(None)  # type: ignore[method-assign]
    records = [Record("t", 0, i, None, None, b"v", None) for i in range(3)]
    member._hold(2, 2)  # handed over on the poll thread (two of the three)
    member._received(RecordChunk(records[:2]), [])
    assert not member.full
    member.take(1)
    assert wakes == []  # it was not waiting for room
    member._hold(2, 2)
    member._received(RecordChunk(records[2:] + records[:1]), [])
    assert member.full  # the poll thread stops fetching here
    member.take(1)
    assert wakes == [None] and not member.full
