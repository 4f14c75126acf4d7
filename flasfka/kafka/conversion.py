"""librdkafka messages into flasfka's Records (on the poll thread that fetched them)."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from flasfka.kafka.errors import describe
from flasfka.records import Record, from_columns


def records_of(
    topic: str, messages: list[Message]
) -> tuple[list[Record], list[int], int, list[str]]:
    """The records of a consume() batch, the partitions that reached their end, their size
    and the errors met."""
    if not any(map(Message.error, messages)):  # the common case
        records, size = _converted(topic, messages)
        return records, [], size, []
    fetched: list[Message] = []
    ends: list[int] = []
    errors: list[str] = []
    for message in messages:
        error = message.error()
        if error is None:
            fetched.append(message)
        elif error.code() == KafkaError._PARTITION_EOF:
            ends.append(message.partition())  # type: ignore[arg-type]
        else:
            errors.append(describe(error))
    records, size = _converted(topic, fetched)
    return records, ends, size, errors


def _converted(topic: str, messages: list[Message]) -> tuple[list[Record], int]:
    """Records of messages without errors, and their size, column by column.

    The poll thread holds the GIL the reactor needs for every Python call it makes per
    record, so it makes none: each column is one map() of a Message method, and timestamps
    and headers stay in the message until a reader asks for them.
    """
    keys = list(map(Message.key, messages))
    values = list(map(Message.value, messages))
    if any(keys) or None in values:
        sizes = [len(v or b"") + len(k or b"") for k, v in zip(keys, values, strict=True)]
    else:  # no key, no null value: the common case, at C speed
        sizes = list(map(len, values))  # type: ignore[arg-type]  # no None, checked above
    records = from_columns(
        topic,
        map(Message.partition, messages),  # type: ignore[arg-type]  # set when fetched
        map(Message.offset, messages),  # type: ignore[arg-type]
        keys,
        values,
        messages,  # type: ignore[arg-type]  # a Message has timestamp() and headers()
        sizes,
    )
    return records, sum(sizes)
