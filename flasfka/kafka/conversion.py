"""librdkafka messages into what the read-ahead keeps (on the poll thread that fetched them)."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from flasfka.kafka.errors import describe
from flasfka.records import Record, from_columns


class Fetched:
    """A run of one consume() batch: its messages and their value column, as fetched.

    The poll thread holds the GIL the reactor needs for every Python step it takes per
    record, so it takes none: it reads the columns it must (values and keys, for the sizes
    the read-ahead bound counts) with one map() of a Message method each, and leaves the
    rest in the messages. Records are built, column by column, only for a reader that asks
    (flasfka.batches); a stream needs only the values and where each partition ends.
    """

    __slots__ = ("_keys", "_messages", "_sizes", "_topic", "_values", "size")

    def __init__(
        self,
        topic: str,
        messages: list[Message],
        keys: list[bytes | None],
        values: list[bytes | None],
        sizes: list[int],
    ) -> None:
        self._topic = topic
        self._messages = messages
        self._keys = keys
        self._values = values
        self._sizes = sizes
        self.size = sum(sizes)

    def __len__(self) -> int:
        return len(self._messages)

    def records(self) -> list[Record]:
        messages = self._messages
        return from_columns(
            self._topic,
            map(Message.partition, messages),  # type: ignore[arg-type]  # set when fetched
            map(Message.offset, messages),  # type: ignore[arg-type]
            self._keys,
            self._values,
            messages,  # type: ignore[arg-type]  # a Message has timestamp() and headers()
            self._sizes,
        )

    def values(self) -> list[bytes | None]:
        return self._values

    def ends(self) -> dict[int, int]:
        """Partition -> the offset past its last message: librdkafka hands a partition's
        messages over in offset order, so its last one here is its highest."""
        messages = self._messages
        if not messages:
            return {}
        partitions = list(map(Message.partition, messages))
        if partitions.count(partitions[0]) == len(partitions):  # one partition: the usual
            return {partitions[0]: messages[-1].offset() + 1}  # type: ignore[dict-item,operator]
        last = dict(zip(partitions, messages, strict=True))
        return {partition: message.offset() + 1 for partition, message in last.items()}  # type: ignore[misc,operator]

    def partitions(self) -> set[int]:
        return set(map(Message.partition, self._messages))  # type: ignore[arg-type]

    def head(self, count: int) -> Fetched:
        return self._slice(slice(None, count))

    def tail(self, start: int) -> Fetched:
        return self._slice(slice(start, None))

    def _slice(self, part: slice) -> Fetched:
        keys, values, sizes = self._keys[part], self._values[part], self._sizes[part]
        return Fetched(self._topic, self._messages[part], keys, values, sizes)


def fetched_of(topic: str, messages: list[Message]) -> tuple[Fetched, list[int], list[str]]:
    """The messages of a consume() batch, the partitions that reached their end, and the
    errors met."""
    if not any(map(Message.error, messages)):  # the common case
        return _fetched(topic, messages), [], []
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
    return _fetched(topic, fetched), ends, errors


def records_of(
    topic: str, messages: list[Message]
) -> tuple[list[Record], list[int], int, list[str]]:
    """The records of a consume() batch, the partitions that reached their end, their size
    and the errors met."""
    fetched, ends, errors = fetched_of(topic, messages)
    return fetched.records(), ends, fetched.size, errors


def _fetched(topic: str, messages: list[Message]) -> Fetched:
    """Messages without errors, with their key and value columns and sizes."""
    keys = list(map(Message.key, messages))
    values = list(map(Message.value, messages))
    if any(keys) or None in values:
        sizes = [len(v or b"") + len(k or b"") for k, v in zip(keys, values, strict=True)]
    else:  # no key, no null value: the common case, at C speed
        sizes = list(map(len, values))  # type: ignore[arg-type]  # no None, checked above
    return Fetched(topic, messages, keys, values, sizes)
