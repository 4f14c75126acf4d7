"""The bridge between librdkafka (confluent-kafka) and the Twisted reactor.

This is the only module that imports confluent_kafka. Calls that may block (consume, commit,
close, admin requests) run on threads: every consumer polls on a thread of its own, other
blocking calls go through ``run_blocking`` (a thread pool the service owns). Results come back
to the reactor thread with ``reactor.callFromThread``; no Deferred is ever fired from a
librdkafka thread. The producer never blocks: the reactor serves its delivery reports with
``poll(0)`` on a timer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from flasfka.errors import BrokerRejected, GatewayError, NotFound, PayloadTooLarge, Unavailable

log = Logger(namespace="flasfka.kafka")

__all__ = [
    "GroupConsumer",
    "KafkaProducer",
    "Message",
    "TopicAdmin",
    "check_client_settings",
]

#: What runs a blocking callable off the reactor thread and returns a Deferred of its result.
RunBlocking = Callable[..., Deferred]

#: How often the reactor serves the producer's callbacks while messages are in flight.
_BUSY_POLL = 0.001
#: The same when none are (errors and statistics only).
_IDLE_POLL = 0.1
#: librdkafka's default queue.buffering.max.messages.
_QUEUE_MESSAGES = 100_000
#: Seconds past message.timeout.ms after which a POST stops waiting for its delivery report.
_DELIVERY_SLACK = 5.0
#: Most messages a consumer thread hands to the reactor in one call.
_CONSUME_BATCH = 1000
#: How long an idle consumer thread waits for a command before it consumes again.
_IDLE_WAIT = 0.05
#: The same while a GET waits for messages.
_ACTIVE_WAIT = 0.005
#: How long a consumer's buffer stays full before its partitions are paused.
_PAUSE_AFTER = 1.0

_UNREACHABLE_CODES = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
    }
)


#: Errors of an idempotent producer whose state the broker lost (e.g. a restarted broker):
#: librdkafka raises a fatal error and flasfka replaces the producer.
_PRODUCER_STATE_CODES = frozenset(
    {
        KafkaError._FATAL,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.PRODUCER_FENCED,
    }
)


#: Errors of a group whose coordinator is away or which is rebalancing: a commit can succeed
#: once it is back or the rebalance is over.
_GROUP_STATE_CODES = frozenset(
    {
        KafkaError._WAIT_COORD,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._STATE,
    }
)


class ReactorLike(Protocol):
    """The reactor methods this module uses."""

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None: ...  # noqa: N802
    def seconds(self) -> float: ...
    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Any: ...  # noqa: N802


def check_client_settings(producer: dict[str, Any], consumer: dict[str, Any]) -> None:
    """Raise ValueError if librdkafka rejects a setting (done once at startup, no network)."""
    for role, settings in (("producer", producer), ("consumer", consumer)):
        offline = {**settings, "group.id": "flasfka-check", "log_level": 0}
        offline.pop("bootstrap.servers", None)
        if role == "producer":
            offline.pop("group.id")
        try:
            client = Producer(offline) if role == "producer" else Consumer(offline)
        except (KafkaException, TypeError, ValueError) as e:
            raise ValueError(f"librdkafka {role} setting rejected: {_describe(e)}") from None
        if role == "consumer":
            client.close()


def _describe(error: BaseException | KafkaError) -> str:
    """A one-line description of a librdkafka error."""
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)


def _gateway_error(error: KafkaError, what: str, reachable: bool, timeout: float) -> GatewayError:
    """Map a librdkafka error to the HTTP error a client sees."""
    code = error.code()
    if error.fatal() or code in _PRODUCER_STATE_CODES:
        return Unavailable(
            f"{what}: the Kafka client hit a fatal error ({error.str()}); it is being "
            "replaced, try again"
        )
    if code in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT):
        if reachable:
            return Unavailable(f"{what}: the broker did not acknowledge within {timeout:g} s")
        return Unavailable(
            f"{what}: the broker cannot be reached (nothing acknowledged within {timeout:g} s)"
        )
    if code in _GROUP_STATE_CODES:
        return Unavailable(
            f"{what}: the group's coordinator is unavailable or the group is rebalancing "
            f"({error.str()}); try again"
        )
    if code in _UNREACHABLE_CODES or error.retriable():
        return Unavailable(f"{what}: the broker cannot be reached ({error.str()})")
    if code == KafkaError.UNKNOWN_TOPIC_OR_PART or code == KafkaError._UNKNOWN_TOPIC:
        return NotFound(f"{what}: the topic does not exist")
    if code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE):
        return PayloadTooLarge(f"{what}: a message is larger than the broker accepts")
    return BrokerRejected(f"{what}: the broker refused it ({error.name()}: {error.str()})")


#: librdkafka settings that KafkaProducer.send's acknowledgement relies on. Idempotence: within
#: one producer epoch the broker takes a batch only right after the one before it. Gapless: an
#: error that would make librdkafka start a new epoch past failed messages is fatal instead.
ACKNOWLEDGEMENT_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "enable.gapless.guarantee": True,
}


class _PendingDelivery:
    """A POST waiting for the delivery report of its last message (see KafkaProducer.send)."""

    __slots__ = ("_done", "deferred", "error", "started", "topic")

    def __init__(self, done: list[_PendingDelivery], topic: str, started: float) -> None:
        self._done = done
        self.topic = topic
        self.started = started
        self.error: KafkaError | None = None
        self.deferred: Deferred[None] = Deferred()

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery report (reactor thread, inside poll)."""
        self.error = error
        self._done.append(self)


class KafkaProducer:
    """A confluent-kafka Producer whose sends return Deferreds fired in the reactor.

    The reactor serves the producer's callbacks with poll(0), which never blocks: every
    _BUSY_POLL while messages are in flight (and on the next reactor iteration after a send),
    every _IDLE_POLL otherwise. Serving them here rather than on a thread of their own saves
    a GIL hand-off per delivery report and a thread hop per POST (measured: ~190 k -> ~310 k
    messages/s for 100-message POSTs).

    A send waits for the report of its last message only (see send()); the other reports
    are dropped inside librdkafka's C callback, without a Python object or call.
    """

    def __init__(
        self,
        reactor: ReactorLike,
        settings: dict[str, Any],
        produce_timeout: float,
    ) -> None:
        self._reactor = reactor
        self._timeout = produce_timeout
        self._settings = {
            **settings,
            **ACKNOWLEDGEMENT_SETTINGS,
            "message.timeout.ms": int(produce_timeout * 1000),
            "error_cb": self._on_error,
            "stats_cb": self._on_stats,
            "statistics.interval.ms": settings.get("statistics.interval.ms", 1000),
        }
        #: Most messages librdkafka's local queue holds.
        self._queue_room = int(settings.get("queue.buffering.max.messages", _QUEUE_MESSAGES))
        self._producer: Producer | None = None
        self._running = False
        self._polling = False
        self._poll_call: Any = None
        self._done: list[_PendingDelivery] = []
        #: Every send not yet answered or expired, oldest first (see _expire).
        self._waiting: deque[_PendingDelivery] = deque()
        #: Producers replaced after a fatal error, purged, served until their reports are in.
        self._retired: list[tuple[Producer, float]] = []
        #: Whether some broker connection is up, from librdkafka's statistics (1 s period).
        self.connected = False
        #: The last connection problem librdkafka reported, for /readyz and errors.
        self.last_error: str | None = None
        #: A fatal error (e.g. of the idempotent producer): the producer cannot send any more.
        self.fatal_error: str | None = None
        #: How many producers were replaced after a fatal error.
        self.replaced = 0

    def start(self) -> None:
        """Create the producer and start serving its callbacks."""
        self._running = True
        self._producer = Producer(self._settings)
        self._polling = True
        self._poll_call = self._reactor.callLater(_IDLE_POLL, self._poll)

    def _poll(self) -> None:
        """Serve delivery reports, errors and statistics (reactor thread; poll(0) never blocks).

        A fatal error (e.g. UNKNOWN_PRODUCER_ID once a broker lost the idempotent producer's
        state) makes the producer unusable: it is replaced, purged, and served until the
        reports of what it still held are in, so that every waiting POST gets its answer.
        """
        self._poll_call = None
        producer = self._producer
        if producer is not None:
            try:
                producer.poll(0)
            except Exception as e:  # a callback raised: keep serving the other reports
                log.warn("Kafka producer poll: {e}", e=e)
            if self.fatal_error is not None:  # reported by _on_error inside that poll
                self._replace(producer, self.fatal_error)
                producer = self._producer
        if self._retired:
            self._serve_retired()
        if self._done:
            done = self._done.copy()
            self._done.clear()  # the list every _PendingDelivery appends to
            for pending in done:
                self._answer(pending)
        if self._waiting:
            self._expire()
        if self._polling:
            busy = (producer is not None and len(producer)) or self._retired
            self._poll_call = self._reactor.callLater(
                _BUSY_POLL if busy else _IDLE_POLL, self._poll
            )

    def _poll_soon(self) -> None:
        """Poll on the next reactor iteration (after messages were queued).

        Under load every POST thus serves the reports that arrived meanwhile, sooner than
        the _BUSY_POLL timer; an idle reactor polls once more, then every _BUSY_POLL.
        """
        call = self._poll_call
        if call is not None and call.getTime() > self._reactor.seconds():
            call.reset(0)

    def _replace(self, failed: Producer, reason: str) -> None:
        """Replace a producer that hit a fatal error with a new one (reactor thread)."""
        if failed is not self._producer or not self._running:
            return
        log.error("Kafka producer failed ({reason}): replacing it", reason=reason)
        self.last_error = reason
        self.replaced += 1
        try:
            failed.purge(blocking=False)
        except Exception as e:
            log.warn("purging a failed producer: {e}", e=e)
        self._retired.append((failed, self._reactor.seconds() + self._timeout + _DELIVERY_SLACK))
        self._producer = Producer(self._settings)
        self.fatal_error = None

    def _serve_retired(self) -> None:
        """Serve the last delivery reports of replaced producers, then let them go."""
        now = self._reactor.seconds()
        kept = []
        for producer, deadline in self._retired:
            try:
                producer.poll(0)
            except Exception:
                pass  # it already failed fatally; its reports still come
            if len(producer) and now < deadline:
                kept.append((producer, deadline))
        self._retired = kept

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback (reactor thread, inside poll)."""
        self.last_error = _describe(error)
        if error.fatal():
            self.fatal_error = self.last_error
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._set_connected(False)
        log.warn("Kafka producer: {error}", error=self.last_error)

    def _set_connected(self, up: bool) -> None:
        """Track the connection state; log each change (reactor thread)."""
        if up == self.connected:
            return
        self.connected = up
        if up:
            log.info("Kafka producer connected to the broker")
        else:
            log.warn("Kafka producer lost its connection to every broker")

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics callback (reactor thread, inside poll): connection state."""
        brokers = orjson.loads(stats_json).get("brokers", {})
        self._set_connected(any(broker.get("state") == "UP" for broker in brokers.values()))

    def send(
        self, topic: str, values: list[bytes], key: bytes | None, partition: int = -1
    ) -> Deferred[None]:
        """Queue values (in order) to one partition; fire once the broker has all of them.

        partition -1 lets the partitioner choose from the key (one partition for all values).
        Only the last message carries a delivery report. Its acknowledgement covers the others:
        they were queued before it on the same partition, the idempotent producer sends them
        in order, and the broker takes a batch of an epoch only after every batch before it.
        A new epoch past failed messages is fatal under ACKNOWLEDGEMENT_SETTINGS, except after
        message.timeout.ms; so an acknowledgement that comes later than that is not trusted.
        """
        if not values:
            return succeed(None)
        producer = self._producer
        if producer is None or not self._running:
            raise Unavailable("the producer is not running (shutting down)")
        if len(producer) + len(values) > self._queue_room:
            raise self._queue_error(topic, 0, len(values), None)
        pending = _PendingDelivery(self._done, topic, self._reactor.seconds())
        produce = producer.produce
        last = len(values) - 1
        queued = 0  # on an error: how many were queued before it
        try:
            for queued in range(last):
                produce(topic, values[queued], key, partition)
            queued = last
            produce(topic, values[last], key, partition, on_delivery=pending.on_delivery)
        except BufferError:
            raise self._queue_error(topic, queued, len(values), None) from None
        except KafkaException as e:
            error = e.args[0]
            # produce() reports the fatal state as a plain _FATAL error (fatal() is False),
            # and error_cb may never report it: the next poll replaces the producer.
            if error.fatal() or error.code() == KafkaError._FATAL:
                self.fatal_error = _describe(error)
                self._poll_soon()
            raise self._queue_error(topic, queued, len(values), error) from None
        self._waiting.append(pending)
        self._poll_soon()
        return pending.deferred

    def _queue_error(
        self, topic: str, queued: int, total: int, error: KafkaError | None
    ) -> GatewayError:
        """The error of a POST whose messages were not all queued."""
        if error is None or error.code() == KafkaError._QUEUE_FULL:
            sent = (
                f"{queued} of {total} messages were queued and may still be delivered"
                if queued
                else "nothing was queued"
            )
            return Unavailable(
                f"produce to {topic!r}: the local queue is full; {sent}", retry_after=1
            )
        return _gateway_error(error, f"produce to {topic!r}", self.connected, 0)

    def _answer(self, pending: _PendingDelivery) -> None:
        """Answer a POST from its last message's report (see send()); reactor thread."""
        d = pending.deferred
        if d.called:  # cancelled (the client left) or expired
            return
        if pending.error is not None:
            what = f"produce to {pending.topic!r}"
            d.errback(_gateway_error(pending.error, what, self.connected, self._timeout))
        elif self._reactor.seconds() - pending.started >= self._timeout:
            self._fail(
                pending,
                f"the last message was acknowledged after {self._timeout:g} s, when earlier "
                "ones may have timed out",
            )
        else:
            d.callback(None)

    def _expire(self) -> None:
        """Fail the POSTs whose report has not come _DELIVERY_SLACK past message.timeout.ms
        (a bug: librdkafka fails undelivered messages at message.timeout.ms)."""
        waiting = self._waiting
        oldest = self._reactor.seconds() - self._timeout - _DELIVERY_SLACK
        while waiting:
            pending = waiting[0]
            if not pending.deferred.called:
                if pending.started > oldest:
                    return
                self._fail(
                    pending, f"no delivery report within {self._timeout + _DELIVERY_SLACK:g} s"
                )
            waiting.popleft()

    @staticmethod
    def _fail(pending: _PendingDelivery, why: str) -> None:
        """Answer a POST whose outcome is unknown with 503."""
        pending.deferred.errback(
            Unavailable(
                f"produce to {pending.topic!r}: {why}; the messages may or may not have been "
                "written"
            )
        )

    def stop(self, timeout: float) -> Deferred[int]:
        """Refuse new sends, wait (up to timeout) for what is queued; fires with what is left.

        The producer is dropped afterwards, which closes its connections.
        """
        self._running = False
        producer = self._producer
        if producer is None:
            return succeed(0)
        done: Deferred[int] = Deferred()
        deadline = self._reactor.seconds() + timeout

        def check() -> None:
            left = len(producer)
            if left and self._reactor.seconds() < deadline:
                self._reactor.callLater(_BUSY_POLL * 10, check)
                return
            self._polling = False
            if self._poll_call is not None:
                self._poll_call.cancel()
                self._poll_call = None
            self._poll()  # the last reports
            self._producer = None
            self._retired.clear()
            while self._waiting:
                pending = self._waiting.popleft()
                if not pending.deferred.called:
                    self._fail(pending, "flasfka stopped before the broker acknowledged them")
            done.callback(left)

        check()
        return done


class TopicAdmin:
    """Creates topics on first use (or checks they exist) and probes the broker."""

    def __init__(
        self,
        settings: dict[str, Any],
        run_blocking: RunBlocking,
        auto_create: bool,
        partitions: int,
        replication_factor: int,
        timeout: float,
    ) -> None:
        self._admin: AdminClient | None = AdminClient(settings)
        self._run_blocking = run_blocking
        self._auto_create = auto_create
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._timeout = timeout
        self._partitions_of: dict[str, int] = {}

    def close(self) -> None:
        """Drop the admin client (its connections close with it)."""
        self._admin = None

    def _client(self) -> AdminClient:
        admin = self._admin
        if admin is None:
            raise Unavailable("flasfka is shutting down", retry_after=1)
        return admin

    def ensure(self, topic: str) -> Deferred[None] | None:
        """None if the topic is known to exist, else a Deferred that creates or checks it."""
        if topic in self._partitions_of:
            return None
        d = self._run_blocking(self._ensure_blocking, topic)
        d.addCallback(lambda count: self._partitions_of.__setitem__(topic, count))
        return d

    def partitions(self, topic: str) -> int:
        """How many partitions an ensured topic has."""
        return self._partitions_of[topic]

    def _ensure_blocking(self, topic: str) -> int:
        """Create or look up topic (pool thread); return its partition count."""
        self._client().poll(0)  # serve queued log lines
        what = f"topic {topic!r}"
        if self._auto_create:
            new = NewTopic(
                topic,
                num_partitions=self._partitions,
                replication_factor=self._replication_factor,
            )
            future = self._client().create_topics(
                [new], operation_timeout=self._timeout, request_timeout=self._timeout
            )[topic]
            try:
                future.result(timeout=self._timeout + 1)
            except KafkaException as e:
                error = e.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise _gateway_error(error, f"create {what}", False, self._timeout) from None
            except TimeoutError:
                raise Unavailable(
                    f"create {what}: the broker did not answer within {self._timeout:g} s"
                ) from None
            return self._count_partitions(topic)
        try:
            # All topics: a metadata request naming the topic creates it on some brokers.
            metadata = self._client().list_topics(timeout=self._timeout)
        except KafkaException as e:
            raise _gateway_error(e.args[0], f"look up {what}", False, self._timeout) from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise NotFound(f"{what} does not exist (AUTO_CREATE_TOPICS is off)")
        return len(found.partitions)

    def _count_partitions(self, topic: str) -> int:
        """The partition count of an existing topic (pool thread)."""
        try:
            metadata = self._client().list_topics(topic=topic, timeout=self._timeout)
        except KafkaException as e:
            raise _gateway_error(e.args[0], f"look up topic {topic!r}", False, 0) from None
        found = metadata.topics[topic]
        if found.error is not None or not found.partitions:
            raise Unavailable(f"topic {topic!r} has no partitions yet: {found.error}")
        return len(found.partitions)

    def probe(self, timeout: float) -> Deferred[None]:
        """Fire if the broker answers a metadata request within timeout, else fail."""

        def list_topics() -> None:
            admin = self._client()
            admin.poll(0)  # serve queued log lines
            try:
                admin.list_topics(timeout=timeout)
            except KafkaException as e:
                raise Unavailable(f"broker unreachable: {_describe(e)}") from None

        return self._run_blocking(list_topics)


class GroupConsumer:
    """One Kafka group member for (topic, group), kept polled on its own thread.

    The thread fetches ahead into a buffer owned by the reactor thread and pauses its
    partitions while the buffer is full, so the member keeps serving the group between GETs.
    Taking messages and committing them are separate steps; ``consume`` runs both in commit
    rounds so that concurrent GETs commit in the order they took. A rebalance drops the
    buffered messages of revoked partitions and runs queued commits before giving them up.
    """

    def __init__(
        self,
        reactor: ReactorLike,
        settings: dict[str, Any],
        topic: str,
        group: str,
        buffer_messages: int,
        buffer_bytes: int,
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
        self._max_bytes = buffer_bytes
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._repause = False
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        # Reactor-thread state below.
        self._buffer: deque[Message] = deque()
        self._buffered_bytes = 0
        self._full = False
        self._queued: list[tuple[int, Deferred[list[Message]]]] = []
        self._committing = False
        self._assigned: set[int] = set()
        self._started: set[int] = set()
        self._joined = False
        self._waiters: list[Deferred[None]] = []
        self._committed: dict[int, int] = {}
        self._closed: Deferred[None] = Deferred()
        self._closed.addCallback(self._fail_pending_commands)
        self._pending: set[Deferred[Any]] = set()
        self.failure: str | None = None
        self.last_used = reactor.seconds()
        #: GETs waiting in wait_for(); the consumer is not idle while there are any.
        self.waiting = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poll thread (which creates the consumer and subscribes)."""
        self._thread = threading.Thread(
            target=self._poll_loop,
            name=f"flasfka-consumer-{self.topic}-{self.group}"[:60],
            daemon=True,
        )
        self._thread.start()

    def close(self) -> Deferred[None]:
        """Leave the group and stop the thread; fires once the consumer is closed."""
        self._stopping = True
        self._commands.put(lambda: None)
        self._notify()
        if self._thread is None:
            self._closed.callback(None)
        return self._closed

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

    # --- poll thread -----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        """Create, subscribe, poll until close() is called, then leave the group.

        confluent-kafka serializes the calls on one consumer (a commit waits for the consume
        in progress), so every call runs here: consume never blocks, and the thread waits on
        its command queue instead, which a commit or close wakes at once.
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
            call(self._fail, f"cannot create consumer: {_describe(e)}")
            call(self._closed.callback, None)
            return
        paused = False
        full_since: float | None = None
        try:
            while not self._stopping:
                self._run_commands()
                full = self._full
                if not full:
                    full_since = None
                elif full_since is None:
                    full_since = time.monotonic()
                # Pausing purges librdkafka's fetch queue and a resume costs ~1 s on Tansu,
                # so a busy consumer only stops consuming while its buffer is full (librdkafka
                # then stops at queued.max.messages.kbytes); one full for _PAUSE_AFTER seconds
                # is paused, so that consume() keeps serving the group without fetching.
                pause = full and time.monotonic() - full_since >= _PAUSE_AFTER
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
                wait = _ACTIVE_WAIT if self._waiters else _IDLE_WAIT
                try:
                    command = self._commands.get(timeout=wait)
                except queue.Empty:
                    continue
                command()
        except Exception as e:  # a fatal librdkafka error: report it, leave the group
            call(self._fail, f"consumer failed: {_describe(e)}")
        finally:
            self._run_commands()
            try:
                consumer.close()
            except Exception as e:
                call(log.warn, "closing consumer {group}/{topic}: {e}", **self._ids(), e=e)
            call(self._closed.callback, None)

    def _fail_pending_commands(self, result: None) -> None:
        """Once the thread is gone, fail the commands it will never run (reactor thread)."""
        for d in list(self._pending):
            if not d.called:
                d.errback(Unavailable("the consumer closed before committing; try again"))
        return result

    def _run_commands(self) -> None:
        """Run the commands queued by the reactor (poll thread)."""
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _in_poll_thread(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run f(*args) on the poll thread; a Deferred (fired in the reactor) of its result."""
        if self._closed.called:
            return fail(Unavailable("the consumer is closed; try again"))
        d: Deferred[Any] = Deferred()
        self._pending.add(d)
        d.addBoth(lambda result: (self._pending.discard(d), result)[1])
        call = self._reactor.callFromThread

        def command() -> None:
            try:
                result = f(*args)
            except BaseException as e:
                call(d.errback, e)
            else:
                call(d.callback, result)

        self._commands.put(command)
        return d

    def _consume_once(self, consumer: Consumer, call: Callable[..., None]) -> bool:
        """One non-blocking consume; hand messages, partition ends and errors to the reactor."""
        messages = consumer.consume(_CONSUME_BATCH, 0)
        if not messages:
            return False
        records: list[Message] = []
        ends: list[int] = []
        size = 0
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
                value = message.value()
                if value is not None:
                    size += len(value)
            elif error.code() == KafkaError._PARTITION_EOF:
                ends.append(message.partition())
            else:
                call(
                    log.warn,
                    "consumer {group}/{topic}: {error}",
                    **self._ids(),
                    error=_describe(error),
                )
        call(self._received, records, ends, size)
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Rebalance callback (poll thread): partitions were added."""
        self._repause = True
        self._reactor.callFromThread(self._assign, [p.partition for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Rebalance callback (poll thread): drop their buffered messages, finish commits."""
        numbers = [p.partition for p in partitions]
        if self._stopping:
            self._reactor.callFromThread(self._revoke, numbers)
        else:
            # After this returns, no GET can take a message of these partitions; the commits
            # of those already taken are queued, and run before the partitions are given up.
            blockingCallFromThread(self._reactor, self._revoke, numbers)
        self._run_commands()

    def _ids(self) -> dict[str, str]:
        return {"group": self.group, "topic": self.topic}

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
        for partition in gone:
            self._committed.pop(partition, None)
        if self._buffer:
            kept = [m for m in self._buffer if m.partition() not in gone]
            self._buffer = deque(kept)
            self._buffered_bytes = sum(len(m.value() or b"") for m in kept)
            self._update_full()

    def _received(self, records: list[Message], ends: list[int], size: int) -> None:
        self._buffer.extend(records)
        self._buffered_bytes += size
        if not self._assigned <= self._started:
            self._started.update({m.partition() for m in records})
            self._started.update(ends)
        self._update_full()
        self._notify()

    def _update_full(self) -> None:
        self._full = (
            len(self._buffer) >= self._max_messages or self._buffered_bytes >= self._max_bytes
        )

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Wait (cancellably) until condition() holds, failure or close, or timeout."""
        deadline = self._reactor.seconds() + timeout
        while not (condition() or self.failure or self._stopping):
            remaining = deadline - self._reactor.seconds()
            if remaining <= 0:
                return
            waiter: Deferred[None] = Deferred()
            self._waiters.append(waiter)
            waiter.addTimeout(remaining, self._reactor, onTimeoutCancel=lambda *_: None)
            await waiter

    async def wait_for(self, limit: int, timeout: float, join_timeout: float) -> None:
        """Wait until limit messages are buffered, or the join and then timeout have passed."""
        self.last_used = self._reactor.seconds()
        self.waiting += 1  # not idle while a GET waits, however long the join takes
        try:
            if not self.caught_up:
                await self._wait_until(
                    lambda: self.caught_up or len(self._buffer) >= limit, join_timeout
                )
            if timeout > 0:
                await self._wait_until(lambda: len(self._buffer) >= limit, timeout)
        finally:
            self.waiting -= 1
        self.last_used = self._reactor.seconds()
        if self.failure:
            raise Unavailable(f"consumer {self.group}/{self.topic}: {self.failure}")
        if self._stopping:
            raise Unavailable("the consumer is closing (shutdown or idle expiry); try again")

    def take(self, limit: int) -> list[Message]:
        """Remove and return up to limit buffered messages, oldest first per partition."""
        buffer = self._buffer
        count = min(limit, len(buffer))
        taken = [buffer.popleft() for _ in range(count)]
        if taken:
            self._buffered_bytes -= sum(len(m.value() or b"") for m in taken)
            self._update_full()
        return taken

    def put_back(self, records: list[Message]) -> None:
        """Return records that were taken but not delivered, ahead of the rest."""
        kept = [m for m in records if m.partition() in self._assigned]
        self._buffer.extendleft(reversed(kept))
        self._buffered_bytes += sum(len(m.value() or b"") for m in kept)
        self._update_full()

    def commit(self, records: list[Message]) -> Deferred[None]:
        """Commit the offsets just past records, synchronously with the broker."""
        if not records:
            return succeed(None)
        ends: dict[int, int] = {}
        for message in records:
            ends[message.partition()] = message.offset() + 1
        # Never move a partition's offset back: records put back after a commit (their GET
        # was cancelled) are behind what was already committed.
        committed = self._committed
        for partition, end in ends.items():
            ends[partition] = max(end, committed.get(partition, 0))
        offsets = [TopicPartition(self.topic, p, end) for p, end in ends.items()]
        d = self._in_poll_thread(self._commit_blocking, offsets)
        d.addCallback(lambda _: committed.update(ends))
        return d

    def _commit_blocking(self, offsets: list[TopicPartition]) -> None:
        """Commit offsets (poll thread) and raise Unavailable on any failure."""
        consumer = self._consumer
        if consumer is None or self._stopping:
            raise Unavailable("the consumer is closing; nothing was committed")
        what = f"commit offsets of {self.group}/{self.topic}"
        try:
            results = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            raise _gateway_error(e.args[0], what, True, 0) from None
        except RuntimeError as e:
            raise Unavailable(f"{what}: {e}") from None
        for result in results or ():
            if result.error is not None:
                raise Unavailable(f"{what}: {_describe(result.error)}")

    def consume(self, limit: int) -> Deferred[list[Message]]:
        """Take up to limit messages and commit them; on a failed commit put them back.

        GETs that arrive while a commit is in flight wait for it, then take in arrival order
        and share one commit (a round): the same order and at-most-once guarantee as one
        commit per GET under a lock, with one broker round trip per round.
        """
        d: Deferred[list[Message]] = Deferred(self._cancel_queued)
        self._queued.append((limit, d))
        if not self._committing:
            self._start_round()
        return d

    def _cancel_queued(self, d: Deferred[list[Message]]) -> None:
        """A GET gone before its round started takes nothing."""
        self._queued = [(limit, q) for limit, q in self._queued if q is not d]

    def _start_round(self) -> None:
        queued, self._queued = self._queued, []
        takes = [(d, self.take(limit)) for limit, d in queued]
        records = [record for _, taken in takes for record in taken]
        if not records:
            for d, taken in takes:
                d.callback(taken)
            return
        self._committing = True
        self.commit(records).addBoth(self._end_round, takes)

    def _end_round(
        self, result: object, takes: list[tuple[Deferred[list[Message]], list[Message]]]
    ) -> None:
        """Answer a round's GETs; put back what was not committed or not delivered."""
        self._committing = False
        failed = isinstance(result, Failure)
        for d, taken in reversed(takes):
            if failed or d.called:  # d.called: the GET was cancelled (client gone)
                self.put_back(taken)
        for d, taken in takes:
            if d.called:
                continue
            if failed:
                d.errback(Failure(result.value))
            else:
                d.callback(taken)
        if self._queued:
            self._start_round()
