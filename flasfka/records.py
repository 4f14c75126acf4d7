"""flasfka's own record: what was read from Kafka, in the terms the HTTP layer renders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from itertools import groupby, repeat
from operator import itemgetter
from typing import Any, Protocol

#: Kafka record headers: (key, value) pairs in order, a key may repeat, a value may be null.
Headers = Sequence[tuple[str, bytes | None]]


class Metadata(Protocol):
    """Where a record's timestamp and headers are read from when asked for: the librdkafka
    message it was fetched as, or Fields."""

    def timestamp(self) -> tuple[int, int | None]: ...
    def headers(self) -> Headers | None: ...


class Fields:
    """The timestamp and headers of a record built from values (not fetched)."""

    __slots__ = ("_headers", "_timestamp")

    def __init__(self, timestamp: int | None, headers: Headers | None) -> None:
        self._timestamp = timestamp
        self._headers = headers

    def timestamp(self) -> tuple[int, int | None]:
        return (0, self._timestamp)

    def headers(self) -> Headers | None:
        return self._headers


class Record(tuple[Any, ...]):
    """One message of a topic partition, as read from Kafka.

    The Kafka layer builds these; nothing above it sees a librdkafka message. A Record is a
    tuple (topic, partition, offset, key, value, metadata, size) so that the poll thread builds a
    fetch's records column by column at C speed (``from_columns``), and reads timestamps and
    headers (``metadata``, the fetched message) only for the records a reader asks them of:
    a GET of a thousand records otherwise spends more time building them than rendering
    them. Loops over many records read a column with the getters below (``map(VALUE, ...)``).
    """

    __slots__ = ()

    def __new__(
        cls,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> Record:
        metadata = Fields(timestamp, headers)
        size = len(value or b"") + len(key or b"")
        return tuple.__new__(cls, (topic, partition, offset, key, value, metadata, size))

    # Fields as C getters: the lease ledger reads partition and offset in loops over every
    # record it leases or acknowledges (a Python property costs several times more).
    topic: str = property(itemgetter(0))  # type: ignore[assignment]
    partition: int = property(itemgetter(1))  # type: ignore[assignment]
    offset: int = property(itemgetter(2))  # type: ignore[assignment]
    key: bytes | None = property(itemgetter(3))  # type: ignore[assignment]
    value: bytes | None = property(itemgetter(4))  # type: ignore[assignment]
    #: Bytes of value and key, as counted against the read-ahead bounds.
    size: int = property(itemgetter(6))  # type: ignore[assignment]

    @property
    def timestamp(self) -> int | None:
        """Milliseconds since the epoch (create or log-append time), None if the broker has none."""
        return self[5].timestamp()[1]

    @property
    def headers(self) -> Headers | None:
        return self[5].headers()

    def fields(
        self,
    ) -> tuple[str, int, int, int | None, bytes | None, bytes | None, Headers | None]:
        """(topic, partition, offset, timestamp, key, value, headers)."""
        return (self[0], self[1], self[2], self.timestamp, self[3], self[4], self.headers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.fields() == other.fields()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # headers are a list: compared by value

    def __repr__(self) -> str:
        return f"Record({self.topic!r}, {self.partition}, {self.offset}, value={self.value!r:.40})"


#: Column getters, for loops over many records (C calls rather than property lookups).
PARTITION = itemgetter(1)
OFFSET = itemgetter(2)
VALUE = itemgetter(4)
SIZE = itemgetter(6)

_new_record = partial(tuple.__new__, Record)


def from_columns(
    topic: str,
    partitions: Iterable[int],
    offsets: Iterable[int],
    keys: Iterable[bytes | None],
    values: Iterable[bytes | None],
    metadata: Iterable[Metadata],
    sizes: Iterable[int],
) -> list[Record]:
    """Records from columns of equal length, without a Python call per record."""
    columns = zip(repeat(topic), partitions, offsets, keys, values, metadata, sizes)
    return list(map(_new_record, columns))


def next_offsets(records: list[Record]) -> dict[int, int]:
    """Partition -> the offset just past its last record in records (what a commit sends).

    Records come in runs of one partition (a fetch hands them over so): one max() per run.
    """
    last: dict[int, int] = {}
    for partition, run in groupby(records, PARTITION):
        highest = max(map(OFFSET, run))
        if highest >= last.get(partition, -1):
            last[partition] = highest
    return {partition: offset + 1 for partition, offset in last.items()}


def size_of(records: Iterable[Record]) -> int:
    """Bytes of the values and keys of records (Record.size summed, at C speed)."""
    return sum(map(SIZE, records))


class Outgoing:
    """One message a POST sends: what a record object (or a string) of the body says.

    partition -1 lets the producer choose (from the key, or the POST's partition for a
    message without one); timestamp 0 lets librdkafka stamp the time of sending.
    """

    __slots__ = ("headers", "key", "partition", "timestamp", "value")

    def __init__(
        self,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        partition: int = -1,
        timestamp: int = 0,
    ) -> None:
        self.value = value
        self.key = key
        self.headers = headers
        self.partition = partition
        self.timestamp = timestamp

    @property
    def size(self) -> int:
        """Bytes of value, key and headers, as checked against message.max.bytes."""
        size = len(self.value or b"") + len(self.key or b"")
        if self.headers:
            size += sum(len(name) + len(value or b"") for name, value in self.headers)
        return size

    def __repr__(self) -> str:
        return f"Outgoing(value={self.value!r:.40}, key={self.key!r:.40}, p={self.partition})"


#: Where the broker put a message: (partition, offset, timestamp in ms or -1).
Delivered = tuple[int, int, int]
