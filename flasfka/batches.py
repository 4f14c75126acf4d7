"""Records in the form they were buffered in: chunks, for readers that need no Record each.

A stream writes values and commits where each partition's run ends; building a Record per
message for that (a tuple subclass: ~200 ns each, on the thread that also holds the GIL the
reactor needs) cost as much as the fetch itself. A member's read-ahead therefore keeps what
the poll thread fetched as chunks (flasfka.kafka.conversion.Fetched: the librdkafka batch and
its value column), records put back as RecordChunk, and hands a stream a Batch of chunks;
Records are built only for the readers that render them (a plain GET, a lease).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Protocol

from flasfka.records import PARTITION, VALUE, Record, next_offsets, size_of


class Chunk(Protocol):
    """A run of buffered records, oldest first per partition."""

    @property
    def size(self) -> int:
        """Bytes of values and keys, as counted against the read-ahead bounds."""

    def __len__(self) -> int: ...
    def records(self) -> list[Record]: ...
    def values(self) -> list[bytes | None]: ...
    def ends(self) -> dict[int, int]: ...
    def partitions(self) -> set[int]: ...
    def head(self, count: int) -> Chunk: ...
    def tail(self, start: int) -> Chunk: ...


class RecordChunk:
    """Records already built (put back after a GET or a stream could not deliver them)."""

    __slots__ = ("_records",)

    def __init__(self, records: list[Record]) -> None:
        self._records = records

    @property
    def size(self) -> int:
        return size_of(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[Record]:
        return self._records

    def values(self) -> list[bytes | None]:
        return list(map(VALUE, self._records))

    def ends(self) -> dict[int, int]:
        return next_offsets(self._records)

    def partitions(self) -> set[int]:
        return set(map(PARTITION, self._records))

    def head(self, count: int) -> RecordChunk:
        return RecordChunk(self._records[:count])

    def tail(self, start: int) -> RecordChunk:
        return RecordChunk(self._records[start:])


def merge_ends(ends: Iterable[dict[int, int]]) -> dict[int, int]:
    """Partition -> the furthest next offset of any of ends."""
    merged: dict[int, int] = {}
    for each in ends:
        for partition, end in each.items():
            if end > merged.get(partition, -1):
                merged[partition] = end
    return merged


class Batch:
    """What one reader took from a read-ahead: its chunks, in order."""

    __slots__ = ("_count", "chunks")

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self._count = sum(map(len, chunks))

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        return sum(chunk.size for chunk in self.chunks)

    def records(self) -> list[Record]:
        """Every record, built now for chunks kept as fetched."""
        if len(self.chunks) == 1:
            return self.chunks[0].records()
        return list(chain.from_iterable(chunk.records() for chunk in self.chunks))

    def values(self) -> list[bytes | None]:
        """Every value, in order."""
        if len(self.chunks) == 1:
            return self.chunks[0].values()
        return list(chain.from_iterable(chunk.values() for chunk in self.chunks))

    def ends(self) -> dict[int, int]:
        """Partition -> the offset just past its last record here (what a commit sends)."""
        return merge_ends(chunk.ends() for chunk in self.chunks)
