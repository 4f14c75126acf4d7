"""A member's read-ahead: the records fetched and not yet taken, kept as the fetched chunks.

A GET or a stream takes hundreds to thousands of records at once, and the poll thread hands
them over a consume() batch at a time; keeping those batches and slicing them makes a take a
few C-level list operations per batch instead of a Python step per record. The chunks stay
as fetched (flasfka.batches): a stream takes them as they are, a GET has Records built for
what it takes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from flasfka.batches import Batch, Chunk, RecordChunk
from flasfka.records import Record


class ReadAhead:
    """Records in the order they are to be taken, as chunks."""

    __slots__ = ("_chunks", "_count")

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Record]:
        for chunk in self._chunks:
            yield from chunk.records()

    def append(self, chunk: Chunk | list[Record]) -> None:
        """Add records (a chunk, or a list the caller no longer changes) after the rest."""
        if isinstance(chunk, list):
            chunk = RecordChunk(chunk)
        if len(chunk):
            self._chunks.append(chunk)
            self._count += len(chunk)

    def prepend(self, records: list[Record]) -> None:
        """Put records back ahead of the rest, in their order."""
        if records:
            self._chunks.appendleft(RecordChunk(list(records)))
            self._count += len(records)

    def take_batch(self, limit: int) -> Batch:
        """Remove and return the first limit records (fewer if fewer are here), as chunks."""
        chunks = self._chunks
        taken: list[Chunk] = []
        count = 0
        while chunks and count < limit:
            chunk = chunks[0]
            want = limit - count
            if len(chunk) <= want:  # the common case: a whole batch, no copy
                taken.append(chunks.popleft())
                count += len(chunk)
            else:
                taken.append(chunk.head(want))
                chunks[0] = chunk.tail(want)
                count += want
        self._count -= count
        return Batch(taken)

    def take(self, limit: int) -> list[Record]:
        """Remove and return the first limit records (fewer if fewer are here)."""
        return self.take_batch(limit).records()

    def clear(self) -> Batch:
        """Remove every record; return them."""
        everything = Batch(list(self._chunks))
        self._chunks.clear()
        self._count = 0
        return everything

    def remove_if(self, condition: Callable[[Record], bool]) -> list[Record]:
        """Remove the records for which condition holds; return them (in order)."""
        kept: list[Record] = []
        removed: list[Record] = []
        for record in self:
            (removed if condition(record) else kept).append(record)
        self._chunks.clear()
        self._count = 0
        self.append(kept)
        return removed
