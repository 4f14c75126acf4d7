"""flasfka's own record: what was read from Kafka, in the terms the HTTP layer renders."""

from __future__ import annotations

from collections.abc import Sequence

#: Kafka record headers: (key, value) pairs in order, a key may repeat, a value may be null.
Headers = Sequence[tuple[str, bytes | None]]


class Record:
    """One message of a topic partition, as read from Kafka.

    The Kafka layer builds these; nothing above it sees a librdkafka message.
    """

    __slots__ = ("headers", "key", "offset", "partition", "size", "timestamp", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        #: Milliseconds since the epoch (create or log-append time), None if the broker has none.
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
        #: Bytes of value and key, as counted against the read-ahead bounds (computed once:
        #: the reactor counts every record a GET takes).
        self.size = len(value or b"") + len(key or b"")

    def __repr__(self) -> str:
        return f"Record({self.topic!r}, {self.partition}, {self.offset}, value={self.value!r:.40})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable fields: compared by value


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
