"""What a POST waits for: the delivery reports of its messages, and which messages carry one.

A report costs a Python call per message, so a POST asks for as few as cover its messages
(see KafkaProducer.send); the producer answers the POST once they came.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message
from twisted.internet.defer import Deferred

from flasfka.errors import Unavailable
from flasfka.records import Delivered, Outgoing


class PendingDelivery:
    """A POST waiting for its delivery reports (see KafkaProducer.send and send_records).

    It is answered when `remaining` reports came without an error, or at the first error.
    With `offsets`, every message carries a report and fills its place in the list.
    """

    __slots__ = ("_done", "deferred", "error", "offsets", "remaining", "started", "topic")

    def __init__(
        self,
        done: list[PendingDelivery],
        topic: str,
        started: float,
        reports: int = 1,
        offsets: list[Delivered | None] | None = None,
    ) -> None:
        self._done = done
        self.topic = topic
        self.started = started
        self.remaining = reports
        self.offsets = offsets
        self.error: KafkaError | None = None
        self.deferred: Deferred[Any] = Deferred()

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery report (reactor thread, inside poll)."""
        if error is not None:
            if self.error is None:
                self.error = error
                self._done.append(self)
            return
        self.remaining -= 1
        if not self.remaining and self.error is None:
            self._done.append(self)

    def on_indexed(self, index: int, error: KafkaError | None, message: Message) -> None:
        """The delivery report of message index of a POST that asked for offsets."""
        if error is None:
            stamp = message.timestamp()[1]
            # A delivered message has its partition and offset.
            self.offsets[index] = (message.partition(), message.offset(), stamp)  # type: ignore[index, assignment]
        self.on_delivery(error, message)

    def fail(self, why: str) -> None:
        """Answer the POST, whose outcome is unknown, with 503."""
        self.deferred.errback(
            Unavailable(
                f"produce to {self.topic!r}: {why}; the messages may or may not have been written"
            )
        )


def plan_reports(
    done: list[PendingDelivery],
    topic: str,
    started: float,
    records: Sequence[Outgoing],
    keyless_partition: int,
    offsets: bool,
) -> tuple[PendingDelivery, list[int], list[Any]]:
    """The POST's PendingDelivery, the partition of each record and its report callback
    (None: no report).

    A record without a partition goes to its key's partition (the partitioner's choice),
    or to keyless_partition if it has no key either. The records of one POST may thus
    go to several partitions, and the last-report argument of KafkaProducer.send() holds per
    partition only: so the last record queued to each partition carries a report, and
    the POST is answered when all of those came. The partitioner is not asked: the last
    record of each explicit partition and the last record of each key (which goes where
    every earlier record of that key goes) carry one, which includes the last record of
    every partition the POST reaches. With offsets, every record carries one.
    """
    total = len(records)
    partitions = [
        record.partition
        if record.partition >= 0
        else (-1 if record.key is not None else keyless_partition)
        for record in records
    ]
    callbacks: list[Any]
    if offsets:
        pending = PendingDelivery(done, topic, started, total, [None] * total)
        callbacks = [partial(pending.on_indexed, index) for index in range(total)]
    else:
        last: dict[object, int] = {}
        for index, partition in enumerate(partitions):
            last[partition if partition >= 0 else records[index].key] = index
        pending = PendingDelivery(done, topic, started, len(last))
        callbacks = [None] * total
        for index in last.values():
            callbacks[index] = pending.on_delivery
    return pending, partitions, callbacks
