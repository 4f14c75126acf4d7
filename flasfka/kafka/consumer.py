"""One consumer group member for (topic, group): a poll thread and a read-ahead buffer.

The member's own thread makes every call on the consumer, and keeps polling between GETs: a
member that is not polled would hold up every join of its group. Commits are sent from it
without waiting and answered by a later consume() (flasfka.kafka.commit_queue), so fetching
goes on while the broker answers one. Results come back to the reactor with
``callFromThread``; no Deferred is fired on the poll thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger

from flasfka.batches import Batch, Chunk
from flasfka.errors import Unavailable
from flasfka.kafka.budget import ReadAheadBudget, cost
from flasfka.kafka.commands import PollThreadCommands
from flasfka.kafka.commit_queue import CommitQueue, OffsetCommits
from flasfka.kafka.conversion import fetched_of
from flasfka.kafka.errors import describe
from flasfka.kafka.read_ahead import ReadAhead
from flasfka.kafka.waiters import Waiters
from flasfka.reactor import ReactorLike
from flasfka.records import Record, size_of

log = Logger(namespace="flasfka.kafka.consumer")

#: Most messages a consumer thread hands to the reactor in one call: fewer calls cost less
#: per message, but each holds the GIL the reactor needs while it builds its messages.
_CONSUME_BATCH = 2500

#: How long an idle consumer thread waits for a command before it consumes again.
_IDLE_WAIT = 0.05
#: The same while a GET waits for messages.
_ACTIVE_WAIT = 0.005
#: How long a consumer's buffer stays full before its partitions are paused.
_PAUSE_AFTER = 1.0


class GroupMember:
    """A Kafka group member for (topic, group), kept polled on its own thread.

    The thread fetches ahead into a buffer owned by the reactor thread. What it has handed
    over and not yet been taken is counted on the fetching side (``_held``), so the thread
    stops fetching once its share of the read-ahead is used, however far behind the reactor
    is; a buffer full for a while pauses its partitions, and the member keeps serving the
    group. Taking records and committing them are separate steps: flasfka.delivery decides
    what a GET takes and when it commits. A rebalance drops the buffered records of revoked
    partitions and runs queued commits before giving them up.
    """

    def __init__(
        self,
        reactor: ReactorLike,
        settings: dict[str, Any],
        topic: str,
        group: str,
        buffer_messages: int,
        buffer_bytes: int,
        budget: ReadAheadBudget | None = None,
    ) -> None:
        self.topic = topic
        self.group = group
        self._reactor = reactor
        self._settings = {
            **settings,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
        self._max_messages = buffer_messages
        self._budget = budget if budget is not None else ReadAheadBudget(buffer_bytes)
        self._share = self._budget.join(buffer_bytes)
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._repause = False
        self._commands = PollThreadCommands(reactor)
        self._commits = CommitQueue(reactor, topic, f"commit offsets of {group}/{topic}")
        #: The reactor's side of the commits: asked, bounded below, failed if unanswered.
        self._offsets = OffsetCommits(self._commands.post, self._commits)
        self._settings["on_commit"] = self._commits.answered
        #: (messages, bytes) handed to the reactor and not yet taken; both threads update it.
        self._held_lock = threading.Lock()
        self._held_messages = 0
        #: Bytes of the records fetched so far, per record (poll thread), to size a batch;
        #: None until the first record: the first batch is one record.
        self._record_size: int | None = None
        # Reactor-thread state below.
        self._buffer = ReadAhead()
        self._assigned: set[int] = set()
        self._started: set[int] = set()
        self._joined = False
        #: GETs waiting in wait_for: each one's condition, and what wakes it.
        self._waiters = Waiters(reactor)
        self._closed: Deferred[None] = Deferred()
        self._closed.addCallback(lambda _: self._commands.close())
        self.failure: str | None = None
        #: Called (reactor thread) with the partitions a rebalance or close takes away, after
        #: their buffered records are dropped: flasfka.leases drops their leases there.
        self.on_revoke: Callable[[set[int]], None] | None = None
        self.last_used = reactor.seconds()
        #: GETs waiting in wait_for(); the member is not idle while there are any.
        self.waiting = 0
        #: Shutting down: a GET's waits end at once (it answers what is buffered).
        self.draining = False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poll thread: it creates the consumer and subscribes."""
        self._thread = threading.Thread(
            target=self._poll_loop,
            name=f"flasfka-consumer-{self.topic}-{self.group}"[:60],
            daemon=True,
        )
        self._thread.start()

    def close(self) -> Deferred[None]:
        """Leave the group and stop the thread; fires once the consumer is closed."""
        self._stopping = True
        self._commands.wake()
        self._notify()
        if self._thread is None:
            self._end()
        return self._closed

    def _end(self) -> None:
        """The thread is gone: give back the read-ahead share (reactor thread)."""
        self._offsets.fail_unanswered()
        self._drop_batch(self._buffer.clear())
        if self.on_revoke is not None:
            self.on_revoke(set(self._assigned))
        self._share.leave()
        self._closed.callback(None)

    @property
    def closing(self) -> bool:
        """Whether close() was called."""
        return self._stopping

    @property
    def caught_up(self) -> bool:
        """Joined, and every assigned partition has returned a message or reached its end."""
        return self._joined and self._assigned <= self._started

    @property
    def assignment(self) -> frozenset[int]:
        """The partitions this member holds."""
        return frozenset(self._assigned)

    @property
    def buffered(self) -> int:
        """Messages fetched ahead and not yet taken."""
        return len(self._buffer)

    @property
    def full(self) -> bool:
        """Whether the read-ahead handed over (and not yet taken) is at its bound."""
        return self._held_messages >= self._max_messages or self._share.exhausted

    @property
    def read_ahead_bytes(self) -> int:
        """The bytes this member may hold now (its bound, or its part of the budget)."""
        return self._budget.limit(self._share.own_bound)

    @property
    def record_cost(self) -> int:
        """What one record counts against the read-ahead bound, on average so far."""
        return cost(1, self._record_size or 0)

    def hold(self, count: int, size: int) -> int:
        """Count what a reader took and still holds (a stream's batch, until it is sent):
        count records of size bytes, or count 0 and the bytes written for them, against
        this member's read-ahead, so that the two stay within its bound. Returns the bytes
        counted, for release()."""
        counted = cost(count, size)
        self._share.use(counted)
        return counted

    def release(self, counted: int) -> None:
        """What hold() counted is gone (sent, or put back): the thread may fetch again."""
        was_full = self.full
        self._share.use(-counted)
        if was_full:
            self._commands.wake()

    # --- poll thread -----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        """Create, subscribe, poll until close() is called, then leave the group.

        consume never blocks: the thread waits on its command queue instead, which a commit
        or close wakes at once. Only a consume() brings a commit's answer, so while one is
        awaited the commit queue paces the waits, and with the buffer full consumes one
        record at a time: a few records past the bound, answered within ~1 ms.
        """
        call = self._reactor.callFromThread
        try:
            consumer = self._consumer = Consumer(self._settings)
            consumer.subscribe(
                [self.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
        except Exception as e:
            call(self._fail, f"cannot create consumer: {describe(e)}")
            call(self._end)
            return
        self._commits.bind(consumer)
        paused = False
        full_since: float | None = None
        try:
            while not self._stopping:
                self._commands.run_queued()
                full = self.full
                if not full:
                    full_since = None
                elif full_since is None:
                    full_since = time.monotonic()
                # Pausing purges librdkafka's fetch queue and a resume costs ~1 s on Tansu,
                # so a busy member only stops consuming while its buffer is full (librdkafka
                # then stops at queued.max.messages.kbytes); one full for _PAUSE_AFTER seconds
                # is paused, so that consume() keeps serving the group without fetching.
                pause = full and time.monotonic() - full_since >= _PAUSE_AFTER  # type: ignore[operator]
                if pause != paused or self._repause:
                    self._repause = False
                    partitions = consumer.assignment()
                    if pause:
                        consumer.pause(partitions)
                    else:
                        consumer.resume(partitions)
                    paused = pause
                if (paused or not full) and self._consume_once(consumer, call):
                    continue
                if not self._commits.waiting:
                    wait = _ACTIVE_WAIT if self._waiters or self.waiting else _IDLE_WAIT
                elif full and not paused:
                    one = partial(self._consume_once, consumer, call, most=1)
                    wait = self._commits.wait_full(time.monotonic(), one)
                else:
                    wait = self._commits.wait_with_room()
                self._commands.wait(wait)
        except Exception as e:  # a fatal librdkafka error: report it, leave the group
            call(self._fail, f"consumer failed: {describe(e)}")
        finally:
            self._commands.run_queued()
            self._commits.finish(_CONSUME_BATCH)
            try:
                consumer.close()
            except Exception as e:
                call(log.warn, "closing consumer {group}/{topic}: {e}", **self._ids(), e=e)
            call(self._end)

    def _consume_once(
        self, consumer: Consumer, call: Callable[..., None], most: int = _CONSUME_BATCH
    ) -> bool:
        """One non-blocking consume of up to most records; hand them and partition ends to
        the reactor.

        The batch is sized to the room left in the read-ahead bound, so that a batch of
        large records overshoots it by one record at most.
        """
        record_size = self._record_size
        if record_size is None:
            batch, granted = 1, 0
        else:
            record_cost = cost(1, record_size)
            granted = self._share.reserve(record_cost * most)
            batch = max(1, min(most, granted // record_cost))
        messages = consumer.consume(batch, 0)
        if not messages:
            self._share.use(-granted)
            return False
        fetched, ends, errors = fetched_of(self.topic, messages)
        size = fetched.size
        if fetched:
            average = max(1, size // len(fetched))
            self._record_size = average if record_size is None else (record_size + average) // 2
        for error in errors:
            call(log.warn, "consumer {group}/{topic}: {error}", **self._ids(), error=error)
        self._hold(len(fetched), size, granted)  # the reservation becomes the real size
        call(self._received, fetched, ends)
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Rebalance callback (poll thread): partitions were added."""
        self._repause = True
        self._reactor.callFromThread(self._assign, [p.partition for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Rebalance callback (poll thread): drop their buffered records, send commits."""
        numbers = [p.partition for p in partitions]
        if self._stopping:
            self._reactor.callFromThread(self._revoke, numbers)
        else:
            # After this returns, no GET can take a record of these partitions; the commits
            # of those already taken are queued, and sent before the partitions are given up
            # (on the coordinator's connection, ahead of the member's rejoin).
            blockingCallFromThread(self._reactor, self._revoke, numbers)  # type: ignore[arg-type]
        self._commands.run_queued()
        self._commits.send_all()

    def _ids(self) -> dict[str, str]:
        return {"group": self.group, "topic": self.topic}

    # --- both threads ----------------------------------------------------------------------

    def _hold(self, count: int, size: int, reserved: int = 0) -> None:
        """Count records handed to the reactor (poll thread), against the bounds: count of
        them, of size bytes of keys and values, of which reserved bytes were counted."""
        with self._held_lock:
            self._held_messages += count
        self._share.use(cost(count, size) - reserved)

    def _drop(self, records: list[Record]) -> None:
        """Stop counting records that were taken or dropped (reactor thread)."""
        if records:
            self._uncount(len(records), size_of(records))

    def _drop_batch(self, batch: Batch) -> None:
        """The same for records taken or dropped as they were buffered."""
        if batch:
            self._uncount(len(batch), batch.size)

    def _uncount(self, count: int, size: int) -> None:
        with self._held_lock:
            self._held_messages -= count
        self._share.use(-cost(count, size))

    # --- reactor thread --------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.failure = reason
        log.error("consumer {group}/{topic}: {reason}", **self._ids(), reason=reason)
        self._notify()

    def _assign(self, partitions: list[int]) -> None:
        self._joined = True
        self._assigned.update(partitions)
        self._notify()

    def _revoke(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self._assigned -= gone
        self._started -= gone
        self._offsets.forget(gone)
        if self._buffer:
            self._drop(self._buffer.remove_if(lambda record: record.partition in gone))
        if self.on_revoke is not None:
            self.on_revoke(gone)

    def _received(self, fetched: Chunk, ends: list[int]) -> None:
        if self._closed.called:  # handed over after the member ended
            self._uncount(len(fetched), fetched.size)
            return
        self._buffer.append(fetched)
        if not self._assigned <= self._started:
            self._started.update(fetched.partitions())
            self._started.update(ends)
        self._notify()

    def _notify(self) -> None:
        self._waiters.notify(wake_all=self._ended())

    def _ended(self) -> bool:
        return bool(self.failure or self._stopping)

    def drain(self) -> None:
        """Shutdown: the GETs waiting after their join answer now, later ones at once."""
        self.draining = True
        self._waiters.notify(wake_all=True)

    async def wait_for(
        self, limit: int, timeout: float, join_timeout: float, get: bool = True
    ) -> None:
        """Wait until limit records are buffered, or the join and then timeout have passed
        (a GET: or the member drains, after its join; get=False: a stream, which ends
        otherwise)."""
        self.last_used = self._reactor.seconds()
        self.waiting += 1  # not idle while a GET waits, however long the join takes
        ended = (lambda: self.draining or self._ended()) if get else self._ended
        buffered, wait = self._buffer, self._waiters.wait_until  # each wait is cancellable
        try:
            if not self.caught_up:  # the join is not drained: it is what makes an answer
                await wait(
                    lambda: self.caught_up or len(buffered) >= limit, join_timeout, self._ended
                )
            if timeout > 0:
                await wait(lambda: len(buffered) >= limit, timeout, ended)
        finally:
            self.waiting -= 1
        self.last_used = self._reactor.seconds()
        if self.failure:
            raise Unavailable(f"consumer {self.group}/{self.topic}: {self.failure}")
        if self._stopping:
            raise Unavailable("the consumer is closing (shutdown or idle expiry); try again")

    def take(self, limit: int) -> list[Record]:
        """Remove and return up to limit buffered records, oldest first per partition."""
        return self.take_batch(limit).records()

    def take_batch(self, limit: int) -> Batch:
        """The same as they were buffered: for a reader that needs no Record each."""
        if not self._buffer:
            return Batch([])
        was_full = self.full
        taken = self._buffer.take_batch(limit)
        self._drop_batch(taken)
        if was_full:  # the thread stopped fetching; there is room now: fetch again at once
            self._commands.wake()
        return taken

    def put_back(self, records: list[Record]) -> None:
        """Return records that were taken but not delivered, ahead of the rest."""
        kept = [record for record in records if record.partition in self._assigned]
        self._buffer.prepend(kept)
        self._hold(len(kept), size_of(kept))

    def commit_offsets(self, ends: dict[int, int]) -> Deferred[None]:
        """Commit partition -> next offset to read; fires once the broker answered."""
        if not ends:
            return succeed(None)
        if self._closed.called:
            return fail(Unavailable("the consumer is closed; nothing was committed"))
        return self._offsets.commit(ends)
