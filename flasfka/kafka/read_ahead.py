"""A member's read-ahead: the records fetched and not yet taken, kept as the fetched batches.

A GET or a stream takes hundreds to thousands of records at once, and the poll thread hands
them over a consume() batch at a time; keeping those batches and slicing them makes a take a
few C-level list operations per batch instead of a Python step per record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from flasfka.records import Record


class ReadAhead:
    """Records in the order they are to be taken: whole lists, the first one partly taken."""

    __slots__ = ("_chunks", "_count", "_start")

    def __init__(self) -> None:
        self._chunks: deque[list[Record]] = deque()
        #: How many records of the first list were already taken.
        self._start = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Record]:
        for index, chunk in enumerate(self._chunks):
            yield from (chunk[self._start :] if index == 0 else chunk)

    def append(self, records: list[Record]) -> None:
        """Add records (a list the caller no longer changes) after the rest."""
        if records:
            self._chunks.append(records)
            self._count += len(records)

    def prepend(self, records: list[Record]) -> None:
        """Put records back ahead of the rest, in their order."""
        if not records:
            return
        if self._start:
            self._chunks[0] = self._chunks[0][self._start :]
            self._start = 0
        self._chunks.appendleft(list(records))
        self._count += len(records)

    def take(self, limit: int) -> list[Record]:
        """Remove and return the first limit records (fewer if fewer are here)."""
        chunks = self._chunks
        taken: list[Record] = []
        while chunks and len(taken) < limit:
            chunk = chunks[0]
            start = self._start
            end = start + limit - len(taken)
            if not start and end >= len(chunk) and not taken:
                taken = chunks.popleft()  # the common case: a whole batch, no copy
                continue
            taken.extend(chunk[start:end])
            if end >= len(chunk):
                chunks.popleft()
                self._start = 0
            else:
                self._start = end
        self._count -= len(taken)
        return taken

    def clear(self) -> list[Record]:
        """Remove every record; return them."""
        everything = list(self)
        self._chunks.clear()
        self._start = self._count = 0
        return everything

    def remove_if(self, condition: Callable[[Record], bool]) -> list[Record]:
        """Remove the records for which condition holds; return them (in order)."""
        kept: list[Record] = []
        removed: list[Record] = []
        for record in self:
            (removed if condition(record) else kept).append(record)
        self._chunks.clear()
        self._start = 0
        self._count = 0
        self.append(kept)
        return removed
