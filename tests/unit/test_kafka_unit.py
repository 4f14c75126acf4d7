"""Unit tests of the Kafka adapter's edges, with a fake librdkafka producer."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from flasfka.errors import Unavailable
from flasfka.kafka import consumer as kafka_consumer
from flasfka.kafka import producer as kafka_producer
from flasfka.records import Outgoing


class SyncReactor(Clock):
    """A Clock whose callFromThread runs at once (the tests run in one thread)."""

    def callFromThread(self, f, *args, **kwargs):  # noqa: N802
        f(*args, **kwargs)


class FakeMessage:
    """A delivered message as a delivery report carries it: partition, offset, timestamp."""

    def __init__(self, value, produced):
        self._index = next(i for i, m in enumerate(produced) if m[0] == value)
        self._partition = produced[self._index][2]

    def partition(self):
        return self._partition

    def offset(self):
        return 1000 + self._index

    def timestamp(self):
        return (1, 1_700_000_000_000 + self._index)


class FakeProducer:
    """Queues up to `room` messages; poll() serves the reports of those report() acknowledged.

    As confluent-kafka, it calls only the callbacks messages were produced with.
    """

    room = 10**9

    def __init__(self, settings):
        self.settings = settings
        self.queued = []
        self.acknowledged = []

    def produce(
        self,
        topic,
        value,
        key,
        partition,
        callback=None,
        on_delivery=None,
        timestamp=0,
        headers=None,
    ):
        """confluent-kafka's signature: on_delivery is an alias of callback; a None callback,
        a 0 timestamp and None headers are the defaults."""
        if len(self.queued) >= self.room:
            raise BufferError("queue full")
        self.queued.append((value, callback or on_delivery))
        fields = {"timestamp": timestamp, "headers": headers}
        fields = {name: field for name, field in fields.items() if field}
        self.produced.append((value, key, partition, fields))

    @property
    def produced(self):
        """Every message produce() took: (value, key, partition, other fields)."""
        return self.__dict__.setdefault("_produced", [])

    def report(self, error=None, only=None):
        """Acknowledge what is queued (or the messages whose values are in only)."""
        chosen = [m for m in self.queued if only is None or m[0] in only]
        self.acknowledged += [(on_delivery, error, value) for value, on_delivery in chosen]
        self.queued = [m for m in self.queued if m not in chosen]

    def poll(self, timeout):
        served, self.acknowledged = self.acknowledged, []
        for on_delivery, error, value in served:
            if on_delivery is not None:
                on_delivery(error, FakeMessage(value, self.produced))
        return len(served)

    def __len__(self):
        return len(self.queued) + len(self.acknowledged)

    def fail_fatally(self):
        """librdkafka reports a fatal error through error_cb, inside the next poll."""
        error_cb = self.settings["error_cb"]
        fatal = KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "lost state", fatal=True)
        poll = self.poll

        def poll_once(timeout):
            del self.poll  # back to the class's poll
            error_cb(fatal)
            return poll(timeout)

        self.poll = poll_once

    def purge(self, blocking=True):
        """Fail whatever is queued; its reports come with the next poll."""
        self.report(KafkaError(KafkaError._PURGE_QUEUE))


@pytest.fixture
def producer(monkeypatch):
    monkeypatch.setattr(kafka_producer, "Producer", FakeProducer)
    wrapper = kafka_producer.KafkaProducer(SyncReactor(), {}, 5.0)
    wrapper.start()
    return wrapper


def acknowledge(producer, error=None):
    """The broker acknowledges everything queued; the reactor's next poll serves it."""
    producer._producer.report(error)
    producer._reactor.advance(0.2)


def results(d):
    out = []
    d.addBoth(out.append)
    return out


def test_send_fires_once_the_last_message_is_acknowledged(producer):
    out = results(producer.send("t", [b"a", b"b", b"c"], None))
    assert out == []
    acknowledge(producer)
    assert out == [None]


def test_delivery_error_becomes_503_naming_the_timeout(producer):
    out = results(producer.send("t", [b"a"], None))
    acknowledge(producer, KafkaError(KafkaError._MSG_TIMED_OUT))
    assert isinstance(out[0].value, Unavailable)
    assert "within 5 s" in out[0].value.message


def test_only_the_last_message_carries_a_delivery_report(producer):
    producer.send("t", [b"a", b"b", b"c"], None)
    callbacks = [on_delivery for _, on_delivery in producer._producer.queued]
    assert callbacks[:2] == [None, None]
    assert callbacks[2] is not None


def test_an_error_on_the_last_report_fails_the_post(producer):
    out = results(producer.send("t", [b"a", b"b"], None))
    acknowledge(producer, KafkaError(KafkaError._PURGE_QUEUE))
    assert isinstance(out[0].value, Unavailable)


def test_a_report_later_than_the_message_timeout_is_not_trusted(producer):
    # Earlier messages of the POST may have timed out before the last one was acknowledged.
    out = results(producer.send("t", [b"a", b"b"], None))
    producer._reactor.advance(5.0)
    acknowledge(producer)
    assert isinstance(out[0].value, Unavailable)
    assert "may have timed out; the messages may or may not have been" in out[0].value.message


def test_a_post_that_does_not_fit_the_queue_fails_with_nothing_queued(monkeypatch):
    monkeypatch.setattr(kafka_producer, "Producer", FakeProducer)
    producer = kafka_producer.KafkaProducer(SyncReactor(), {"queue.buffering.max.messages": 3}, 5.0)
    producer.start()
    producer.send("t", [b"a"], None)
    with pytest.raises(Unavailable, match="nothing was queued"):
        producer.send("t", [b"a", b"b", b"c"], None)
    assert len(producer._producer.queued) == 1


def test_full_queue_midway_fails_at_once_naming_what_was_queued(producer):
    # librdkafka's byte limit (queue.buffering.max.kbytes) is not checked beforehand.
    producer._producer.room = 2
    with pytest.raises(Unavailable, match="2 of 4 messages were queued"):
        producer.send("t", [b"a", b"b", b"c", b"d"], None)


def test_full_queue_with_nothing_queued_fails_at_once(producer):
    producer._producer.room = 0
    with pytest.raises(Unavailable, match="nothing was queued"):
        producer.send("t", [b"a"], None)


def test_empty_send_is_a_no_op(producer):
    assert results(producer.send("t", [], None)) == [None]


def test_reports_that_never_come_still_end_the_post(producer):
    out = results(producer.send("t", [b"a"], None))
    producer._reactor.advance(5.0 + kafka_producer._DELIVERY_SLACK)
    assert isinstance(out[0].value, Unavailable)
    assert "no delivery report" in out[0].value.message


def test_stop_waits_for_queued_reports(producer):
    out = results(producer.send("t", [b"a"], None))
    stopped = results(producer.stop(1.0))
    assert stopped == []
    acknowledge(producer)
    assert out == [None]
    assert stopped == [0]


def test_stop_fails_the_posts_whose_reports_did_not_come(producer):
    out = results(producer.send("t", [b"a"], None))
    stopped = results(producer.stop(1.0))
    producer._reactor.advance(1.0)
    assert stopped == [1]
    assert isinstance(out[0].value, Unavailable)
    assert "stopped before the broker acknowledged" in out[0].value.message


def test_a_cancelled_post_is_forgotten_when_its_report_comes(producer):
    d = producer.send("t", [b"a"], None)
    out = results(d)
    d.cancel()  # the client disconnected
    acknowledge(producer)
    assert len(out) == 1 and out[0].check(CancelledError)
    assert not producer._waiting


def test_send_after_stop_is_refused(producer):
    assert results(producer.stop(1.0)) == [0]
    with pytest.raises(Unavailable):
        producer.send("t", [b"a"], None)


def test_consumer_commands_after_close_fail_instead_of_hanging():
    consumer = kafka_consumer.GroupMember(SyncReactor(), {}, "t", "g", 10, 1000)
    assert results(consumer.close()) == [None]
    out = results(consumer._commands.call(lambda: 1))
    assert isinstance(out[0].value, Unavailable)


def test_commands_queued_when_the_thread_ends_are_failed():
    consumer = kafka_consumer.GroupMember(SyncReactor(), {}, "t", "g", 10, 1000)
    out = results(consumer._commands.call(lambda: 1))
    consumer._closed.callback(None)  # the thread ended without draining the queue
    assert isinstance(out[0].value, Unavailable)


def test_a_fatal_error_replaces_the_producer_and_ends_its_posts(producer):
    failed = producer._producer
    waiting = results(producer.send("t", [b"a", b"b"], None))
    failed.fail_fatally()
    producer._reactor.advance(0.2)
    assert isinstance(waiting[0].value, Unavailable)  # purged: 503, not a hang
    assert producer._producer is not failed
    assert producer.replaced == 1
    assert producer.fatal_error is None
    assert producer._retired == []  # its last reports were served
    after = results(producer.send("t", [b"c"], None))
    acknowledge(producer)
    assert after == [None]


def test_a_fatal_produce_error_fails_the_post_and_replaces_the_producer(producer):
    failed = producer._producer

    def fatal_produce(*args, **kwargs):
        # As confluent-kafka raises it: the code _FATAL, without the fatal flag.
        error = KafkaError(KafkaError._FATAL, "Local: Fatal error")
        raise KafkaException(error)

    failed.produce = fatal_produce
    with pytest.raises(Unavailable, match="replaced"):
        producer.send("t", [b"a"], None)
    producer._reactor.advance(0.2)
    assert producer._producer is not failed
    assert producer.fatal_error is None


def records(*specs):
    """Outgoing records from (value, key, partition) triples."""
    return [Outgoing(value, key, partition=partition) for value, key, partition in specs]


def reported(producer):
    """The values of the queued messages that carry a delivery report."""
    return [value for value, on_delivery in producer._producer.queued if on_delivery is not None]


def test_records_on_several_partitions_wait_for_the_last_of_each(producer):
    sent = records((b"a0", None, 0), (b"b1", None, 1), (b"c0", None, 0), (b"d2", None, 2))
    out = results(producer.send_records("t", sent, keyless_partition=0))
    assert reported(producer) == [b"b1", b"c0", b"d2"]
    # Partitions 0 and 1 acknowledged, 2 not yet: no answer.
    producer._producer.report(only={b"a0", b"b1", b"c0"})
    producer._reactor.advance(0.2)
    assert out == []
    producer._producer.report(only={b"d2"})
    producer._reactor.advance(0.2)
    assert out == [None]


def test_keyed_records_without_a_partition_report_the_last_of_each_key(producer):
    sent = records((b"1", b"k1", -1), (b"2", b"k2", -1), (b"3", b"k1", -1), (b"4", None, -1))
    out = results(producer.send_records("t", sent, keyless_partition=3))
    # Same key, same partition: the last of each key covers it; keyless ones go to 3.
    assert reported(producer) == [b"2", b"3", b"4"]
    assert [m[2] for m in producer._producer.produced] == [-1, -1, -1, 3]
    acknowledge(producer)
    assert out == [None]


def test_one_partition_failing_fails_the_post(producer):
    sent = records((b"a", None, 0), (b"b", None, 1))
    out = results(producer.send_records("t", sent, keyless_partition=0))
    producer._producer.report(only={b"a"})
    producer._producer.report(KafkaError(KafkaError._MSG_TIMED_OUT), only={b"b"})
    producer._reactor.advance(0.2)
    assert len(out) == 1 and isinstance(out[0].value, Unavailable)


def test_records_of_one_partition_carry_one_report(producer):
    sent = records((b"a", None, -1), (b"b", None, -1), (b"c", None, -1))
    producer.send_records("t", sent, keyless_partition=2)
    assert reported(producer) == [b"c"]


def test_offsets_come_from_a_report_of_every_message_in_order(producer):
    sent = records((b"a", None, 1), (b"b", None, 0), (b"c", b"k", -1))
    out = results(producer.send_records("t", sent, keyless_partition=0, offsets=True))
    assert reported(producer) == [b"a", b"b", b"c"]
    # Reports come in any order; the answer is in message order.
    producer._producer.report(only={b"c"})
    producer._producer.report(only={b"b", b"a"})
    producer._reactor.advance(0.2)
    assert out == [
        [(1, 1000, 1_700_000_000_000), (0, 1001, 1_700_000_000_001), (-1, 1002, 1_700_000_000_002)]
    ]


def test_headers_and_timestamps_are_passed_to_librdkafka(producer):
    record = Outgoing(None, b"k", [("h", b"1"), ("h", None)], partition=0, timestamp=1234)
    producer.send_records("t", [record], keyless_partition=0)
    assert producer._producer.produced == [
        (None, b"k", 0, {"timestamp": 1234, "headers": [("h", b"1"), ("h", None)]})
    ]


def test_records_that_do_not_fit_the_queue_are_refused_with_nothing_queued(producer):
    producer._queue_room = 2
    with pytest.raises(Unavailable, match="nothing was queued"):
        producer.send_records("t", records((b"a", None, 0), (b"b", None, 1), (b"c", None, 2)), 0)
    assert producer._producer.queued == []


def test_a_producer_whose_posts_time_out_while_connected_is_replaced(producer):
    # E.g. a restarted broker that forgot the idempotent producer's id: librdkafka retries
    # with local epoch bumps until every message times out, and never recovers by itself.
    failed = producer._producer
    producer.connected = True
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    first = results(producer.send("t", [b"a"], None))
    acknowledge(producer, timed_out)
    assert isinstance(first[0].value, Unavailable)
    assert producer._producer is failed  # one timeout: maybe a slow broker
    second = results(producer.send("t", [b"b"], None))
    acknowledge(producer, timed_out)
    assert isinstance(second[0].value, Unavailable)
    producer._reactor.advance(0.2)
    assert producer._producer is not failed and producer.replaced == 1
    after = results(producer.send("t", [b"c"], None))
    acknowledge(producer)
    assert after == [None]


def test_timeouts_broken_by_an_acknowledgement_or_while_disconnected_keep_the_producer(producer):
    failed = producer._producer
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    producer.connected = True
    for error in (timed_out, None, timed_out):
        producer.send("t", [b"x"], None)
        acknowledge(producer, error)
    producer.connected = False
    producer.send("t", [b"y"], None)
    acknowledge(producer, timed_out)
    producer._reactor.advance(0.2)
    assert producer._producer is failed and producer.replaced == 0
