"""A group member's commits, sent without waiting and answered through ``on_commit``.

confluent-kafka (2.16) lets one thread at a time into a Consumer: a synchronous commit made
on another thread holds it for its whole round trip to the coordinator, and the poll
thread's consume() waits at the gate meanwhile (retrying every millisecond), so fetching
and committing ran in series. Every call on the consumer is therefore made on its poll
thread, and a commit does not wait there: it is sent asynchronously and its answer comes
back through the consumer's ``on_commit`` callback, which librdkafka calls from a later
consume() on the same thread.

One commit is in flight at a time, so that a commit retried inside librdkafka cannot land
after a later one and move an offset back; what is asked meanwhile is merged (the furthest
offset of each partition) into the next one. A revoke sends what is queued at once, behind
the one in flight, before its partitions are given up.

The reactor asks through OffsetCommits, which never moves an offset back (records put back
after a commit are behind it) and fails what the thread ends without answering.

Only a consume() brings an answer, so the queue also paces the poll thread's consumes while
one is awaited: every ANSWER_WAIT, and, with the read-ahead full, one record at a time (each
one past the bound) at doubling intervals once the first _QUICK_ANSWERS went unanswered.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from flasfka.errors import FlasfkaError, Unavailable
from flasfka.kafka.errors import describe, domain_error
from flasfka.reactor import ReactorLike

log = Logger(namespace="flasfka.kafka.commit_queue")

#: How long the poll thread waits between consumes while a commit waits for its answer.
ANSWER_WAIT = 0.001
#: With the read-ahead full, one-record consumes every ANSWER_WAIT for one commit (a round
#: trip takes ~2 ms); then the wait doubles up to _SLOWEST_WAIT, so that an unanswered
#: commit takes few records past the bound.
_QUICK_ANSWERS = 16
_SLOWEST_WAIT = 0.05
#: How long a closing consumer serves the answers of its last commits before it closes.
_FINISH_WAIT = 5.0


@dataclass
class _Commit:
    """Offsets (partition -> next offset to read) and who waits for them."""

    offsets: dict[int, int]
    answers: list[Deferred[None]] = field(default_factory=list)

    def merge(self, offsets: dict[int, int], answer: Deferred[None]) -> None:
        for partition, offset in offsets.items():
            if offset > self.offsets.get(partition, -1):
                self.offsets[partition] = offset
        self.answers.append(answer)


class CommitQueue:
    """The commits of one consumer, on its poll thread; each answer fires in the reactor."""

    def __init__(self, reactor: ReactorLike, topic: str, what: str) -> None:
        self._reactor = reactor
        self._topic = topic
        self._what = what
        self._consumer: Any = None
        self._sent: deque[_Commit] = deque()
        self._queued: _Commit | None = None
        #: How many commits were sent: a new one is in flight when this changes.
        self.sent = 0
        #: While the read-ahead is full: the commit (the count sent) whose answer the
        #: one-record consumes are for, how many it had, and when the next one is due.
        self._paced, self._tries, self._due = -1, 0, 0.0

    def bind(self, consumer: Any) -> None:
        """The consumer to commit on, once the poll thread created it."""
        self._consumer = consumer

    @property
    def waiting(self) -> bool:
        """Whether a commit is in flight or queued: the thread must consume to answer it."""
        return bool(self._sent) or self._queued is not None

    def ask(self, offsets: dict[int, int], answer: Deferred[None]) -> None:
        """Commit offsets; answer fires (in the reactor) once the broker answered them."""
        if self._queued is None:
            self._queued = _Commit(dict(offsets), [answer])
        else:
            self._queued.merge(offsets, answer)
        if not self._sent:
            self._send_queued()

    def send_all(self) -> None:
        """Send what is queued now, even behind the commit in flight (revoke, close)."""
        if self._queued is not None:
            self._send_queued()

    def answered(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """``on_commit`` (poll thread, inside consume()): answer the commit, send the next.

        librdkafka answers one connection's requests in the order they were sent; a commit
        is still matched by its offsets first, and never raises into consume()."""
        try:
            commit = self._match(partitions)
            if commit is not None:
                self._answer(commit, self._failure(error, partitions))
            if not self._sent and self._queued is not None:
                self._send_queued()
        except Exception:
            log.failure("answering a commit of {what}", what=self._what)

    def wait_full(self, now: float, consume_one: Callable[[], object]) -> float:
        """The read-ahead is full and a commit waits: consume one record if one is due
        (poll thread); how long to wait before the next."""
        if self.sent != self._paced:  # another commit in flight: quick again
            self._paced, self._tries, self._due = self.sent, 0, now
        if now >= self._due:
            consume_one()
            self._tries += 1
            slower = 2 ** min(6, max(0, self._tries - _QUICK_ANSWERS))
            self._due = now + min(ANSWER_WAIT * slower, _SLOWEST_WAIT)
        return max(0.0, self._due - now)

    def wait_with_room(self) -> float:
        """A commit waits and the thread may consume whole batches (room, or paused): how
        long to wait before the next; the next full spell starts quick again."""
        self._paced = -1
        return ANSWER_WAIT

    def finish(self, batch: int) -> None:
        """Before the consumer closes (poll thread): send what is queued and consume (batch
        records a call, dropped, uncommitted) until every commit is answered or _FINISH_WAIT
        passed; the rest fail."""
        deadline = time.monotonic() + _FINISH_WAIT
        try:
            self.send_all()
            while self.waiting and time.monotonic() < deadline:
                self._consumer.consume(batch, ANSWER_WAIT)
        except Exception as e:
            self._reactor.callFromThread(log.warn, "{what}: {e}", what=self._what, e=describe(e))
        self.fail_all("the consumer closed before the broker answered")

    def fail_all(self, reason: str) -> None:
        """Answer every commit still waiting with Unavailable (the consumer is closing)."""
        waiting = list(self._sent) + ([self._queued] if self._queued is not None else [])
        self._sent.clear()
        self._queued = None
        for commit in waiting:
            self._answer(commit, Unavailable(f"{self._what}: {reason}"))

    def _send_queued(self) -> None:
        commit, self._queued = self._queued, None
        assert commit is not None
        offsets = [TopicPartition(self._topic, p, o) for p, o in commit.offsets.items()]
        try:
            if self._consumer is None:
                raise RuntimeError("the consumer is not created yet")
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as e:
            self._answer(commit, domain_error(e.args[0], self._what, True, 0))
        except RuntimeError as e:  # the consumer is closed
            self._answer(commit, Unavailable(f"{self._what}: {e}"))
        else:
            self._sent.append(commit)
            self.sent += 1

    def _match(self, partitions: list[TopicPartition]) -> _Commit | None:
        """The commit in flight these partitions answer: the one with the same offsets, else
        the oldest."""
        offsets = {tp.partition: tp.offset for tp in partitions or ()}
        for i, commit in enumerate(self._sent):
            if commit.offsets == offsets:
                del self._sent[i]
                return commit
        return self._sent.popleft() if self._sent else None

    def _failure(
        self, error: KafkaError | None, partitions: list[TopicPartition]
    ) -> FlasfkaError | None:
        if error is not None:
            return domain_error(error, self._what, True, 0)
        for tp in partitions or ():
            if tp.error is not None:
                return Unavailable(f"{self._what}: {describe(tp.error)}")
        return None

    def _answer(self, commit: _Commit, failure: FlasfkaError | None) -> None:
        for answer in commit.answers:
            self._reactor.callFromThread(_fire, answer, failure)


class OffsetCommits:
    """A member's commits as the reactor asks them: never moving an offset back, handed to
    the poll thread's CommitQueue, and failed if the thread ends without answering them."""

    def __init__(self, post: Callable[[Callable[[], None]], None], queue: CommitQueue) -> None:
        self._post = post
        self._queue = queue
        #: partition -> the offset last committed (by an answered commit).
        self._committed: dict[int, int] = {}
        self._unanswered: set[Deferred[None]] = set()

    def commit(self, ends: dict[int, int]) -> Deferred[None]:
        """Commit partition -> next offset to read; fires once the broker answered."""
        # Never move a partition's offset back: records put back after a commit (their GET
        # was cancelled) are behind what was already committed.
        committed = self._committed
        ends = {partition: max(end, committed.get(partition, 0)) for partition, end in ends.items()}
        answer: Deferred[None] = Deferred()
        self._unanswered.add(answer)
        answer.addBoth(self._answered, answer)
        answer.addCallback(lambda _: committed.update(ends))
        self._post(lambda: self._queue.ask(ends, answer))
        return answer

    def forget(self, partitions: set[int]) -> None:
        """Partitions were revoked: what was committed of them is no bound any more."""
        for partition in partitions:
            self._committed.pop(partition, None)

    def fail_unanswered(self) -> None:
        """The poll thread is gone: fail the commits it never answered."""
        for answer in list(self._unanswered):
            answer.errback(Unavailable("the consumer closed before its commit was answered"))

    def _answered(self, result: object, answer: Deferred[None]) -> object:
        """An answer came (or fail_unanswered failed it): nothing is left to fail for it."""
        self._unanswered.discard(answer)
        return result


def _fire(answer: Deferred[None], failure: FlasfkaError | None) -> None:
    """Fire one commit's answer (reactor thread), unless the member's end already did."""
    if answer.called:
        return
    if failure is None:
        answer.callback(None)
    else:
        answer.errback(failure)
