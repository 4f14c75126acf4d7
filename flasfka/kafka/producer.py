"""The Kafka producer, bridged into the reactor: a send is a Deferred of the broker's ack.

The reactor serves the producer's delivery reports with ``poll(0)``, which never blocks, so
no thread is involved and no Deferred is fired outside the reactor thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from flasfka.errors import FlasfkaError, Unavailable
from flasfka.kafka.delivery_reports import PendingDelivery, plan_reports
from flasfka.kafka.errors import describe, domain_error
from flasfka.kafka.settings import ACKNOWLEDGEMENT_SETTINGS
from flasfka.reactor import ReactorLike
from flasfka.records import Delivered, Outgoing

log = Logger(namespace="flasfka.kafka.producer")

#: How often the reactor serves the producer's callbacks while messages are in flight.
_BUSY_POLL = 0.001
#: The same when none are (errors and statistics only).
_IDLE_POLL = 0.1
#: librdkafka's default queue.buffering.max.messages.
_QUEUE_MESSAGES = 100_000
#: Seconds past message.timeout.ms after which a POST stops waiting for its delivery report.
_DELIVERY_SLACK = 5.0
#: POSTs in a row whose messages timed out while the broker was connected, after which the
#: producer is taken for stuck and replaced (see KafkaProducer._note_outcome).
_STUCK_TIMEOUTS = 2


class KafkaProducer:
    """A confluent-kafka Producer whose sends return Deferreds fired in the reactor.

    The reactor serves the producer's callbacks with poll(0), which never blocks: every
    _BUSY_POLL while messages are in flight (and on the next reactor iteration after a send),
    every _IDLE_POLL otherwise. Serving them here rather than on a thread of their own saves
    a GIL hand-off per delivery report and a thread hop per POST (README, Design choices).

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
        self._done: list[PendingDelivery] = []
        #: Every send not yet answered or expired, oldest first (see _expire).
        self._waiting: deque[PendingDelivery] = deque()
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
        #: POSTs in a row that timed out while connected (reset by any acknowledged one).
        self._connected_timeouts = 0

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
            self._done.clear()  # the list every PendingDelivery appends to
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
        self.last_error = describe(error)
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
        produce = self._producer_with_room(topic, len(values)).produce
        pending = PendingDelivery(self._done, topic, self._reactor.seconds())
        last = len(values) - 1
        queued = 0  # on an error: how many were queued before it
        try:
            for queued in range(last):
                produce(topic, values[queued], key, partition)
            queued = last
            produce(topic, values[last], key, partition, pending.on_delivery)
        except (BufferError, KafkaException) as e:
            raise self._not_queued(topic, queued, len(values), e) from None
        return self._wait_for(pending)

    def send_records(
        self,
        topic: str,
        records: Sequence[Outgoing],
        keyless_partition: int,
        offsets: bool = False,
    ) -> Deferred[list[Delivered] | None]:
        """Queue records (in order); fire once the broker has all of them.

        A record without a partition goes to its key's partition, or to keyless_partition if
        it has no key either; which records carry a delivery report: see plan_reports. With
        offsets, the Deferred fires with the (partition, offset, timestamp) of each record,
        in order (only for the POSTs that ask).
        """
        if not records:
            return succeed([] if offsets else None)
        total = len(records)
        produce = self._producer_with_room(topic, total).produce
        pending, partitions, callbacks = plan_reports(
            self._done, topic, self._reactor.seconds(), records, keyless_partition, offsets
        )
        queued = 0
        try:
            for queued in range(total):
                record = records[queued]
                # Positional arguments only: keywords cost librdkafka's binding several times
                # as much, and a None callback is no callback. The 6th is on_delivery, an
                # alias of the callback (the 5th). Timestamp and headers only when set.
                if record.headers is None and not record.timestamp:
                    produce(topic, record.value, record.key, partitions[queued], callbacks[queued])
                else:
                    produce(
                        topic,
                        record.value,
                        record.key,
                        partitions[queued],
                        callbacks[queued],
                        None,
                        record.timestamp,
                        record.headers,  # type: ignore[arg-type]  # a list of pairs
                    )
        except (BufferError, KafkaException) as e:
            raise self._not_queued(topic, queued, total, e) from None
        return self._wait_for(pending)

    def _producer_with_room(self, topic: str, total: int) -> Producer:
        """The producer, if it runs and its local queue has room for total more messages."""
        producer = self._producer
        if producer is None or not self._running:
            raise Unavailable("the producer is not running (shutting down)")
        if len(producer) + total > self._queue_room:
            raise self._not_queued(topic, 0, total, None)
        return producer

    def _wait_for(self, pending: PendingDelivery) -> Deferred[Any]:
        """A POST's messages are queued: its Deferred, answered from a later poll."""
        self._waiting.append(pending)
        self._poll_soon()
        return pending.deferred

    def _not_queued(
        self, topic: str, queued: int, total: int, failure: BufferError | KafkaException | None
    ) -> FlasfkaError:
        """The error of a POST whose messages were not all queued (failure: what produce()
        raised; None: no room was left for them)."""
        error: KafkaError | None = None
        if isinstance(failure, KafkaException):
            error = failure.args[0]
            # produce() reports the fatal state as a plain _FATAL error (fatal() is False),
            # and error_cb may never report it: the next poll replaces the producer.
            if error.fatal() or error.code() == KafkaError._FATAL:
                self.fatal_error = describe(error)
                self._poll_soon()
        if error is None or error.code() == KafkaError._QUEUE_FULL:
            sent = (
                f"{queued} of {total} messages were queued and may still be delivered"
                if queued
                else "nothing was queued"
            )
            return Unavailable(
                f"produce to {topic!r}: the local queue is full; {sent}", retry_after=1
            )
        return domain_error(error, f"produce to {topic!r}", self.connected, 0)

    def _answer(self, pending: PendingDelivery) -> None:
        """Answer a POST from its last message's report (see send()); reactor thread."""
        self._note_outcome(pending.error)
        d = pending.deferred
        if d.called:  # cancelled (the client left) or expired
            return
        if pending.error is not None:
            what = f"produce to {pending.topic!r}"
            d.errback(domain_error(pending.error, what, self.connected, self._timeout))
        elif self._reactor.seconds() - pending.started >= self._timeout:
            pending.fail(
                f"the last message was acknowledged after {self._timeout:g} s, when earlier "
                "ones may have timed out",
            )
        else:
            d.callback(pending.offsets)

    def _note_outcome(self, error: KafkaError | None) -> None:
        """Replace a producer whose messages time out although the broker is connected.

        A broker that lost the idempotent producer's state (a restarted memory broker, an
        expired producer id) answers UNKNOWN_PRODUCER_ID, which librdkafka does not report
        as fatal: it bumps its epoch locally and retries until message.timeout.ms, for every
        POST, and never asks the broker for a new producer id (seen on Tansu: every POST got
        503 for minutes). A new producer does ask: so after _STUCK_TIMEOUTS such POSTs in a
        row, the next poll replaces it as after a fatal error.
        """
        if error is None:
            self._connected_timeouts = 0
            return
        if error.code() != KafkaError._MSG_TIMED_OUT or not self.connected:
            return
        self._connected_timeouts += 1
        if self._connected_timeouts >= _STUCK_TIMEOUTS and self.fatal_error is None:
            self._connected_timeouts = 0
            self.fatal_error = (
                f"{_STUCK_TIMEOUTS} POSTs in a row timed out while the broker was connected"
            )

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
                pending.fail(f"no delivery report within {self._timeout + _DELIVERY_SLACK:g} s")
            waiting.popleft()

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
                    pending.fail("flasfka stopped before the broker acknowledged them")
            done.callback(left)

        check()
        return done
