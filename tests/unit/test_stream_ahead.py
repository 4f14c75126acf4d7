"""An at-most-once stream commits its next batch while the transport sends the last one, and
that batch ahead is written once resumed, put back when the client left, written at
shutdown; both count against the member's read-ahead until sent (a member without a thread,
whose commits the test fires; a transport that fills)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from flasfka.batches import RecordChunk
from flasfka.consumers import GroupReader
from flasfka.errors import Unavailable
from flasfka.http.stream_framing import NDJSON
from flasfka.http.stream_writer import BATCH_PART, Stream
from flasfka.kafka import GroupMember
from flasfka.kafka.budget import RECORD_OVERHEAD
from flasfka.records import Record


class CommittingMember(GroupMember):
    """A joined GroupMember with no thread: the test fires each commit's Deferred."""

    def __init__(self, buffer_bytes: int = 10**6) -> None:
        super().__init__(Clock(), {}, "t", "g", buffer_messages=1000, buffer_bytes=buffer_bytes)
        self._joined = True
        self._assigned = {0}
        self._started = {0}
        self.commits: list[tuple[dict[int, int], Deferred[None]]] = []
        self._next = 0

    def add(self, count: int) -> None:
        """Hand over the next count records of partition 0, as the poll thread does."""
        records = [
            Record("t", 0, offset, None, None, b"%d" % offset, None)
            for offset in range(self._next, self._next + count)
        ]
        self._next += count
        self._hold(len(records), sum(len(r.value or b"") for r in records))
        self._received(RecordChunk(records), [])

    @property
    def counted(self) -> int:
        """Bytes counted against the read-ahead bound."""
        return self._share.used

    def commit_offsets(self, ends: dict[int, int]) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.commits.append((dict(ends), d))
        return d

    def confirm(self, index: int) -> None:
        self.commits[index][1].callback(None)

    def ends(self) -> list[dict[int, int]]:
        return [ends for ends, _ in self.commits]


class FillingRequest(DummyRequest):
    """A request whose transport is full after each write of messages, until resumed."""

    producer = None

    def registerProducer(self, producer, streaming):  # noqa: N802
        assert streaming  # (DummyRequest's own would loop on resumeProducing)
        self.producer = producer

    def unregisterProducer(self):  # noqa: N802
        # As twisted.web.http.Request, which asks its channel: None once the connection is lost.
        if self.lost:
            raise AttributeError("'NoneType' object has no attribute 'unregisterProducer'")
        self.producer = None

    lost = False

    def lose_connection(self) -> None:
        """The client went away: the transport stops its producer, the request drops its
        channel (twisted.web's order)."""
        assert self.producer is not None
        self.producer.stopProducing()
        self.lost = True

    def write(self, data: bytes) -> None:
        super().write(data)
        if data and self.producer is not None:
            self.producer.pauseProducing()

    def sent(self) -> None:
        """The transport sent what it had: resume the stream."""
        assert self.producer is not None
        self.producer.resumeProducing()


def start(member: CommittingMember, limit: int | None = None):
    request = FillingRequest([b""])
    stream = Stream(
        request,
        GroupReader(member),
        member._reactor,
        NDJSON,
        records_format=False,
        limit=limit,
        heartbeat=15.0,
        join_timeout=1.0,
        on_written=lambda count: None,
    )
    ended: list[object] = []
    stream.start().addBoth(ended.append)
    return stream, request, ended


def written(request: DummyRequest) -> list[int]:
    lines = b"".join(request.written).split(b"\n")
    return [int(json.loads(line)) for line in lines if line]


def test_the_next_batch_is_committed_while_the_transport_sends_the_last():
    member = CommittingMember()
    member.add(5)
    stream, request, _ = start(member)
    assert member.ends() == [{0: 5}]
    member.add(5)
    member.confirm(0)
    assert written(request) == [0, 1, 2, 3, 4]
    # Paused by the full transport, and the next batch is already committing.
    assert member.ends() == [{0: 5}, {0: 10}]
    member.confirm(1)
    assert written(request) == [0, 1, 2, 3, 4]  # nothing is written while paused
    request.sent()
    assert written(request) == list(range(10))
    assert stream.sent == 10
    stream.end()


@pytest.mark.parametrize("committed_first", [False, True])
def test_a_client_gone_with_a_batch_ahead_leaves_it_for_the_next_reader(committed_first):
    member = CommittingMember()
    member.add(5)
    _, request, ended = start(member)
    member.add(5)
    member.confirm(0)
    if committed_first:
        member.confirm(1)
    request.lose_connection()
    if not committed_first:
        assert ended == []  # the batch ahead is still committing
        member.confirm(1)
    assert ended == [None]
    assert written(request) == [0, 1, 2, 3, 4]
    assert member.counted == 5 * (1 + RECORD_OVERHEAD)  # put back: counted once, as buffered
    assert [r.offset for r in member.take(100)] == [5, 6, 7, 8, 9]
    assert member.counted == 0


def test_a_shutdown_with_a_batch_ahead_writes_it():
    member = CommittingMember()
    member.add(5)
    stream, request, ended = start(member)
    member.add(5)
    member.confirm(0)
    stream.end()
    assert ended == []  # the commit ahead is still under way
    member.confirm(1)
    assert ended == [None]
    assert written(request) == list(range(10))  # committed, so written
    assert member.buffered == 0


def test_the_batch_ahead_stays_within_the_limit():
    member = CommittingMember()
    member.add(5)
    _, request, ended = start(member, limit=7)
    member.add(5)
    member.confirm(0)
    assert member.ends() == [{0: 5}, {0: 7}]
    member.confirm(1)
    request.sent()
    assert ended == [None]
    assert written(request) == list(range(7))
    assert member.buffered == 3


def test_nothing_buffered_when_paused_takes_nothing_ahead():
    member = CommittingMember()
    member.add(5)
    stream, request, _ = start(member)
    member.confirm(0)
    assert len(member.commits) == 1
    member.add(5)  # arrives while the transport sends: taken once resumed
    assert len(member.commits) == 1
    request.sent()
    assert member.ends() == [{0: 5}, {0: 10}]
    member.confirm(1)
    assert written(request) == list(range(10))
    stream.end()


def test_a_paused_stream_counts_its_batches_against_the_read_ahead_until_they_are_sent():
    member = CommittingMember()
    member.add(5)
    five = member.counted
    stream, request, _ = start(member)
    assert member.counted == five  # taken and committing: the stream counts it
    member.add(5)
    assert member.counted == 2 * five  # the stream's five and the buffer's
    member.confirm(0)  # written; paused; the next five taken ahead
    first = len(b"".join(request.written))
    assert member.counted == first + five  # the bytes not yet sent, the batch ahead
    member.confirm(1)
    request.sent()  # the first batch was sent, the batch ahead written
    assert member.counted == len(b"".join(request.written)) - first
    request.sent()
    assert member.counted == 0
    stream.end()
    assert member.counted == 0


def test_a_batch_counts_at_most_its_part_of_the_read_ahead():
    record_cost = 1 + RECORD_OVERHEAD  # the values are "0" to "9"
    member = CommittingMember(buffer_bytes=BATCH_PART * 3 * record_cost)
    member._record_size = 1
    member.add(10)
    stream, _, _ = start(member)
    assert member.ends() == [{0: 3}]
    member.confirm(0)
    assert member.ends() == [{0: 3}, {0: 6}]  # the batch ahead is as small
    stream.end()


def test_a_batch_whose_commit_failed_is_counted_once_as_put_back():
    member = CommittingMember()
    member.add(5)
    five = member.counted
    _, request, ended = start(member)
    member.commits[0][1].errback(Unavailable("the broker is down"))
    assert ended == [None]  # the stream ended on the error
    assert written(request) == []
    assert member.counted == five and member.buffered == 5
