"""flasfka's own record: what was read from Kafka, in the terms the HTTP layer renders."""

from __future__ import annotations

from collections.abc import Sequence

#: Kafka record headers: (key, value) pairs in order, a key may repeat, a value may be null.
Headers = Sequence[tuple[str, bytes | None]]


class Record:
    """One message of a topic partition, as read from Kafka.

    The Kafka layer builds these; nothing above it sees a librdkafka message.
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

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

    @property
    def size(self) -> int:
        """Bytes of value and key, as counted against the read-ahead bounds."""
        return len(self.value or b"") + len(self.key or b"")

    def __repr__(self) -> str:
        return f"Record({self.topic!r}, {self.partition}, {self.offset}, value={self.value!r:.40})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable fields: compared by value
