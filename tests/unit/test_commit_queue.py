"""The commit queue: one async commit in flight, the rest merged; answers from on_commit;
and the reactor's side of it (OffsetCommits)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from twisted.internet.defer import Deferred

from flasfka.errors import Unavailable
from flasfka.kafka.commit_queue import CommitQueue, OffsetCommits


class ImmediateReactor:
    """callFromThread runs the call at once: the test is both threads."""

    def callFromThread(self, f, *args, **kwargs):  # noqa: N802
        f(*args, **kwargs)


class RecordingConsumer:
    """Records each asynchronous commit; raises the next error it is given."""

    def __init__(self) -> None:
        self.sent: list[dict[int, int]] = []
        self.raises: Exception | None = None

    def commit(self, offsets, asynchronous):
        assert asynchronous is True
        if self.raises is not None:
            error, self.raises = self.raises, None
            raise error
        self.sent.append({tp.partition: tp.offset for tp in offsets})


def queue_and_consumer() -> tuple[CommitQueue, RecordingConsumer]:
    commits = CommitQueue(ImmediateReactor(), "t", "commit offsets of g/t")  # type: ignore[arg-type]
    consumer = RecordingConsumer()
    commits.bind(consumer)
    return commits, consumer


def outcome(d: Deferred) -> list:
    out: list = []
    d.addBoth(out.append)
    return out


def parts(offsets: dict[int, int], error: KafkaError | None = None) -> list:
    """What on_commit gets: TopicPartitions, or (with a per-partition error, which a
    TopicPartition cannot be built with) objects with the same attributes."""
    if error is None:
        return [TopicPartition("t", p, o) for p, o in offsets.items()]
    return [SimpleNamespace(partition=p, offset=o, error=error) for p, o in offsets.items()]


def test_one_commit_in_flight_the_rest_merged_into_the_next():
    commits, consumer = queue_and_consumer()
    first, second, third = Deferred(), Deferred(), Deferred()
    commits.ask({0: 10}, first)
    commits.ask({0: 20, 1: 5}, second)
    commits.ask({0: 15, 1: 7}, third)
    assert consumer.sent == [{0: 10}]  # the others wait for its answer
    assert commits.waiting
    done = [outcome(first), outcome(second), outcome(third)]
    commits.answered(None, parts({0: 10}))
    assert done[0] == [None] and done[1] == [] and done[2] == []
    assert consumer.sent == [{0: 10}, {0: 20, 1: 7}]  # furthest offset of each partition
    assert commits.sent == 2  # the poll thread's cue that another commit is in flight
    commits.answered(None, parts({0: 20, 1: 7}))
    assert done == [[None], [None], [None]]
    assert not commits.waiting
    assert commits.sent == 2


def test_a_refused_commit_fails_its_answers_and_the_next_is_still_sent():
    commits, consumer = queue_and_consumer()
    first, second = Deferred(), Deferred()
    commits.ask({0: 10}, first)
    commits.ask({0: 11}, second)
    done = [outcome(first), outcome(second)]
    commits.answered(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [])
    assert len(done[0]) == 1 and "rebalancing" in done[0][0].value.message
    assert consumer.sent == [{0: 10}, {0: 11}]
    error = KafkaError(KafkaError.UNKNOWN_MEMBER_ID)
    commits.answered(None, parts({0: 11}, error))
    assert done[1][0].check(Unavailable)
    assert not commits.waiting


def test_a_commit_the_consumer_refuses_at_once_is_answered_at_once():
    commits, consumer = queue_and_consumer()
    consumer.raises = KafkaException(KafkaError(KafkaError._STATE))
    refused, closed, later = Deferred(), Deferred(), Deferred()
    commits.ask({0: 1}, refused)
    assert outcome(refused)[0].check(Exception) and not commits.waiting
    consumer.raises = RuntimeError("Consumer closed")
    commits.ask({0: 2}, closed)
    assert "Consumer closed" in outcome(closed)[0].value.message
    commits.ask({0: 3}, later)
    assert consumer.sent == [{0: 3}]
    assert commits.sent == 1  # only the commit that left counts


def test_send_all_sends_behind_the_one_in_flight_and_answers_match_by_offsets():
    commits, consumer = queue_and_consumer()
    first, second = Deferred(), Deferred()
    commits.ask({0: 10}, first)
    commits.ask({1: 4}, second)
    commits.send_all()  # a revoke: the queued commit goes now
    assert consumer.sent == [{0: 10}, {1: 4}]
    done = [outcome(first), outcome(second)]
    commits.answered(None, parts({1: 4}))  # answered out of order
    assert done == [[], [None]]
    commits.answered(None, parts({0: 10}))
    assert done == [[None], [None]]


def test_fail_all_answers_what_is_in_flight_and_queued_and_stray_answers_are_ignored():
    commits, _ = queue_and_consumer()
    first, second = Deferred(), Deferred()
    commits.ask({0: 10}, first)
    commits.ask({0: 12}, second)
    done = [outcome(first), outcome(second)]
    commits.fail_all("the consumer closed before the broker answered")
    assert all(d[0].check(Unavailable) for d in done)
    assert "closed before the broker answered" in done[1][0].value.message
    assert not commits.waiting
    commits.answered(None, parts({0: 10}))  # late: nothing waits for it, nothing raises
    commits.answered(None, None)  # type: ignore[arg-type]


def test_a_full_member_consumes_one_record_a_millisecond_then_ever_less_often():
    commits, _ = queue_and_consumer()
    consumed: list[None] = []

    def one() -> None:
        consumed.append(None)

    commits.ask({0: 10}, Deferred())
    now, waits = 0.0, []
    for _ in range(24):
        waits.append(commits.wait_full(now, one))
        now += waits[-1]
    assert waits[:16] == pytest.approx([0.001] * 16)  # quick while an answer is likely
    assert waits[16:] == pytest.approx([0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05, 0.05])
    assert len(consumed) == 24  # one record each time it was due, no more
    assert commits.wait_full(now - 0.01, one) > 0  # not due yet
    assert len(consumed) == 24
    commits.answered(None, parts({0: 10}))
    commits.ask({0: 11}, Deferred())  # another commit in flight: quick again at once
    assert commits.wait_full(now, one) == pytest.approx(0.001)
    assert len(consumed) == 25


def test_room_in_the_buffer_starts_the_next_full_spell_quick_again():
    commits, _ = queue_and_consumer()
    commits.ask({0: 10}, Deferred())
    now = 0.0
    for _ in range(20):
        now += commits.wait_full(now, lambda: None)
    assert commits.wait_full(now, lambda: None) > 0.002
    assert commits.wait_with_room() == 0.001
    assert commits.wait_full(now, lambda: None) == pytest.approx(0.001)


class AnsweringConsumer(RecordingConsumer):
    """consume() brings the answers of the commits sent so far, as librdkafka's does."""

    def __init__(self, commits: CommitQueue) -> None:
        super().__init__()
        self.commits = commits
        self.answering = True
        self.consumes = 0

    def consume(self, batch, timeout):
        self.consumes += 1
        while self.answering and self.sent:
            self.commits.answered(None, parts(self.sent.pop(0)))
        return []


def test_finish_sends_what_is_queued_and_consumes_until_every_commit_is_answered():
    commits = CommitQueue(ImmediateReactor(), "t", "commit offsets of g/t")  # type: ignore[arg-type]
    consumer = AnsweringConsumer(commits)
    commits.bind(consumer)
    first, second = Deferred(), Deferred()
    commits.ask({0: 10}, first)
    commits.ask({0: 12}, second)
    done = [outcome(first), outcome(second)]
    commits.finish(2500)
    assert done == [[None], [None]] and not commits.waiting


def test_finish_fails_what_the_broker_does_not_answer_in_time(monkeypatch):
    monkeypatch.setattr("flasfka.kafka.commit_queue._FINISH_WAIT", 0.02)
    commits = CommitQueue(ImmediateReactor(), "t", "commit offsets of g/t")  # type: ignore[arg-type]
    consumer = AnsweringConsumer(commits)
    consumer.answering = False
    commits.bind(consumer)
    answer = Deferred()
    commits.ask({0: 10}, answer)
    commits.finish(2500)
    assert consumer.consumes >= 1
    assert outcome(answer)[0].check(Unavailable) and not commits.waiting


def test_offsets_never_move_back_until_their_partition_is_revoked_and_unanswered_ones_fail():
    commits, consumer = queue_and_consumer()
    offsets = OffsetCommits(lambda call: call(), commits)  # posted: run at once
    first = outcome(offsets.commit({0: 10, 1: 5}))
    commits.answered(None, parts({0: 10, 1: 5}))
    assert first == [None]
    behind = outcome(offsets.commit({0: 4, 1: 8}))  # 0: records put back after a commit
    assert consumer.sent[-1] == {0: 10, 1: 8}
    commits.answered(None, parts({0: 10, 1: 8}))
    assert behind == [None]
    offsets.forget({0})  # revoked: its next owner may have committed anything
    waiting = outcome(offsets.commit({0: 4}))
    assert consumer.sent[-1] == {0: 4}
    offsets.fail_unanswered()  # the poll thread ended without answering
    assert isinstance(waiting[0].value, Unavailable), waiting
    offsets.fail_unanswered()  # nothing is left to fail twice
