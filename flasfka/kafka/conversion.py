"""librdkafka messages into flasfka's Records (on the poll thread that fetched them)."""

from __future__ import annotations

from operator import itemgetter

from confluent_kafka import KafkaError, Message

from flasfka.kafka.errors import describe
from flasfka.records import Record, from_columns

_TIME = itemgetter(1)  # Message.timestamp() is (type, milliseconds)


def records_of(
    topic: str, messages: list[Message]
) -> tuple[list[Record], list[int], int, list[str]]:
    """The records of a consume() batch, the partitions that reached their end, their size
    and the errors met.

    A batch without errors (the common case) is converted column by column: the poll thread
    holds the GIL the reactor needs for every Python call it makes per record.
    """
    if not any(map(Message.error, messages)):
        keys = list(map(Message.key, messages))
        values = list(map(Message.value, messages))
        fetched = from_columns(
            topic,
            map(Message.partition, messages),  # type: ignore[arg-type]  # set when fetched
            map(Message.offset, messages),  # type: ignore[arg-type]
            map(_TIME, map(Message.timestamp, messages)),
            keys,
            values,
            map(Message.headers, messages),  # type: ignore[arg-type]  # a list of pairs
        )
        size = sum(map(len, filter(None, values))) + sum(map(len, filter(None, keys)))
        return fetched, [], size, []
    records: list[Record] = []
    ends: list[int] = []
    errors: list[str] = []
    size = 0
    for message in messages:
        error = message.error()
        if error is None:
            record = Record(
                topic,
                message.partition(),  # type: ignore[arg-type]  # set on every fetched record
                message.offset(),  # type: ignore[arg-type]
                message.timestamp()[1],
                message.key(),
                message.value(),
                message.headers(),  # type: ignore[arg-type]  # a list of pairs, as fetched
            )
            records.append(record)
            size += record.size
        elif error.code() == KafkaError._PARTITION_EOF:
            ends.append(message.partition())  # type: ignore[arg-type]
        else:
            errors.append(describe(error))
    return records, ends, size, errors
