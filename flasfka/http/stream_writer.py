"""One streaming response: a push producer that takes a group's messages and writes them.

Each batch is taken from the group member's buffer and committed through the member's
CommitRounds (one commit per batch, shared with the plain GETs of the group) before its
bytes are written: what a stream wrote is always committed.

Flow control follows twisted.web's producer/consumer API: a Stream is a push producer
registered on its request. When the connection's write buffer fills, Twisted pauses it and
it writes nothing until resumed. A batch's write fills the buffer, so a stream is paused
after each one while the transport sends it; meanwhile it takes and commits the next batch
(one batch ahead), so that the commit's round trip to the broker overlaps the sending. If
the client leaves, the batch ahead is put back for the group's next reader, and at shutdown
it is written. Both batches count against the member's read-ahead bound from their take
until the transport sent them (GroupMember.hold), and a batch counts at most BATCH_PART of
it: a stalled stream and the buffer behind it stay within the bound, and the other readers
of the group keep taking from the rest.

With ``ack=explicit`` (SSE only) a stream leases instead of committing: each batch is taken
through the group's Leases (flasfka.leases), one lease per message, and each event's ``id:``
is the cursor of its own message. Leased messages stay bounded by CONSUMER_MAX_LEASED: a
stream holding that many waits (heartbeating) for acks or expiries instead of taking more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.server import Request
from zope.interface import implementer

from flasfka.batches import Batch, Chunk
from flasfka.consumers import GroupReader
from flasfka.cursors import CursorRef
from flasfka.errors import FlasfkaError
from flasfka.http.rendering import render_each, render_records, render_texts, status_of
from flasfka.http.stream_framing import NDJSON_FRAMING, SSE, SSE_FRAMING, leased_events
from flasfka.reactor import ReactorLike

log = Logger(namespace="flasfka.http.streaming")

#: Most messages one write of a leased stream takes at once (one lease and cursor each).
BATCH = 1000
#: Most an at-most-once stream takes and commits at once: all that is buffered, up to this.
#: One commit round trip per batch sets a stream's pace, so batches grow with the backlog.
COMMIT_BATCH = 20000
#: A stream's batch counts at most this part of its member's read-ahead bound: a stream
#: holds two (one being sent, one ahead), and the group's other readers the rest.
BATCH_PART = 4
#: The EventSource reconnection delay a stream announces (ms).
RETRY_MS = 2000
#: How long a leased stream whose group holds CONSUMER_MAX_LEASED waits before trying again.
FULL_WAIT = 1.0


@dataclass(frozen=True)
class Leasing:
    """How an ack=explicit stream leases: for how long, and who signs its cursors."""

    seconds: float
    cursor: Any  # (CursorRef) -> str: the cursor of one lease of this topic and group


@implementer(IPushProducer)
class Stream:
    """One streaming response: takes batches from a group reader and writes them.

    It runs until ``limit`` messages were written, the client left (stopProducing or the
    request's finish errback) or ``end()`` was called (shutdown). A wait for messages or for
    the transport is cancelled at once by either; a batch being committed is finished first,
    so that what was committed is written, or put back if the client is gone.
    """

    def __init__(
        self,
        request: Request,
        reader: GroupReader,
        clock: ReactorLike,
        kind: bytes,
        records_format: bool,
        limit: int | None,
        heartbeat: float,
        join_timeout: float,
        on_written: Any,
        leasing: Leasing | None = None,
    ) -> None:
        self._request = request
        self._reader = reader
        self._clock = clock
        self._kind = kind
        self._records_format = records_format
        self._leasing = leasing
        self._framing = SSE_FRAMING if kind == SSE else NDJSON_FRAMING
        self._limit = limit
        self._heartbeat = heartbeat
        self._join_timeout = join_timeout
        self._on_written = on_written
        self._paused = False
        self._resumed: Deferred[None] | None = None
        self._waiting: Deferred[Any] | None = None
        self._ending = False
        #: Counted against the member's read-ahead (GroupMember.hold): the batch taken and
        #: not yet written, and the bytes written that the transport has not yet sent.
        self._taken = 0
        self._sending = 0
        self.gone = False
        self.sent = 0
        self.done: Deferred[None] = succeed(None)

    # --- IPushProducer (called by the connection) -------------------------------------------

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The client reads slower than we write: take nothing more until resumed."""
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The transport's buffer drained: take and write again."""
        self._paused = False
        self._release_sent()
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.called:
            resumed.callback(None)

    def stopProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The connection is going away."""
        self._client_gone()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Send the headers (and SSE's retry), then stream; fires when the stream ended."""
        request = self._request
        request.setHeader(b"Content-Type", self._kind)
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Accel-Buffering", b"no")  # nginx: do not buffer the stream
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(lambda _: self._client_gone())
        request.write(b"retry: %d\n\n" % RETRY_MS if self._kind == SSE else b"")
        self.done = Deferred.fromCoroutine(self._run())
        return self.done

    def end(self) -> None:
        """End the stream cleanly (shutdown): stop waiting, finish the batch in hand."""
        self._ending = True
        self._interrupt()

    def _client_gone(self) -> None:
        self.gone = True
        self._ending = True
        self._interrupt()

    def _interrupt(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.cancel()

    async def _wait(self, d: Deferred[Any]) -> bool:
        """Wait for d unless the stream ends meanwhile; False if it ended."""
        if self._ending:
            d.cancel()
            return False
        self._waiting = d
        try:
            await d
        except CancelledError:
            if self._ending:
                return False
            raise
        finally:
            self._waiting = None
        return not self._ending

    async def _run(self) -> None:
        member = self._reader.member
        leases = self._reader.leases
        leasing = self._leasing
        member.waiting += 1  # a member with an open stream is never idle
        stream_tag = leases.new_stream() if leasing is not None else 0
        last_write = self._clock.seconds()
        #: The next at-most-once batch, taken and committed while the transport sends.
        ahead: Deferred[Batch] | None = None
        try:
            while not self._ending:
                if self._paused:
                    if ahead is None and leasing is None:
                        ahead = self._take_ahead()
                    self._resumed = Deferred()
                    if not await self._wait(self._resumed):
                        break
                    continue
                if ahead is not None:
                    # Not cancelled by _wait: a batch whose commit is under way is finished.
                    pending, ahead = ahead, None
                    if not self._deliver(await pending):
                        break
                    last_write = self._clock.seconds()
                    continue
                silent = self._clock.seconds() - last_write
                if leasing is not None and leases.leased >= leases.max_leased:
                    # The group holds its bound of leased messages: wait for acks or expiries.
                    wait = deferLater(self._clock, min(FULL_WAIT, self._heartbeat), lambda: None)  # type: ignore[arg-type]
                    if not await self._wait(wait):
                        break
                elif leasing is None or not leases.returned:
                    wait = Deferred.fromCoroutine(
                        member.wait_for(
                            1, max(0.0, self._heartbeat - silent), self._join_timeout, get=False
                        )
                    )
                    if not await self._wait(wait):
                        break
                if leasing is None:
                    ready = member.buffered > 0
                else:  # room for a lease, and returned messages due or the buffer's
                    ready = leases.leased < leases.max_leased and (
                        leases.returned > 0 or member.buffered > 0
                    )
                if not ready:
                    # NDJSON has no comment syntax: only SSE gets heartbeats.
                    if self._clock.seconds() - last_write >= self._heartbeat:
                        if self._kind == SSE:
                            self._write(b":\n\n")
                        last_write = self._clock.seconds()
                    continue
                want = self._want(leased=leasing is not None)
                if leasing is not None:
                    # Synchronous: nothing is taken unless it is written at once.
                    taken = leases.lease_each(want, leasing.seconds, stream_tag)
                    if not taken:
                        continue
                    cursors = [leasing.cursor(CursorRef(leases.generation, t.id, 1)) for t in taken]
                    self._send([leased_events(taken, cursors, self._records_format)])
                    last_write = self._clock.seconds()
                    self.sent += len(taken)
                    self._on_written(len(taken))
                    if self._limit is not None and self.sent >= self._limit:
                        break
                    continue
                # Not cancelled by _wait: a batch whose commit is under way is finished.
                batch = await self._consume(want)
                if not batch:
                    continue
                delivered = self._deliver(batch)
                del batch  # its records are freed while the transport sends its bytes
                if not delivered:
                    break
                last_write = self._clock.seconds()
            if ahead is not None:  # the stream ended while the transport was sending
                pending, ahead = ahead, None
                self._deliver(await pending)
        except FlasfkaError as e:
            log.info(
                "stream of {group}/{topic} ended: {error}",
                group=member.group,
                topic=member.topic,
                error=e.message,
            )
            if self._kind == SSE and not self.gone:
                error = {"error": e.message, "status": status_of(e)}
                self._write(b"event: error\ndata: " + orjson.dumps(error) + b"\n\n")
        finally:
            if ahead is not None:  # ended by an unexpected error: the next reader gets them
                ahead.addCallback(self._put_back)
                ahead.addErrback(lambda _: None)
            self._release_sent()
            member.waiting -= 1
            member.last_used = self._clock.seconds()
            if not self.gone:  # a lost connection's request has no channel to unregister from
                self._request.unregisterProducer()

    def _take_ahead(self) -> Deferred[Batch] | None:
        """Take and start committing the next at-most-once batch, if there is one to take."""
        if self._ending or not self._reader.member.buffered:
            return None
        want = self._want(leased=False)
        return self._consume(want) if want > 0 else None

    def _want(self, leased: bool) -> int:
        """How many messages the next batch takes: within what is left of the limit, and
        for an at-most-once batch all that is buffered, within COMMIT_BATCH and BATCH_PART."""
        member = self._reader.member
        if leased:
            want = BATCH
        else:
            part = max(1, member.read_ahead_bytes // BATCH_PART // member.record_cost)
            want = min(COMMIT_BATCH, part, max(BATCH, member.buffered))
        return want if self._limit is None else min(want, self._limit - self.sent)

    def _consume(self, want: int) -> Deferred[Batch]:
        """Take and commit an at-most-once batch, counted from its take until it is written."""
        d = self._reader.at_most_once.consume_batch(want, self._count_taken)
        d.addErrback(self._taken_failed)
        return d

    def _count_taken(self, batch: Batch) -> None:
        self._taken += self._reader.member.hold(len(batch), batch.size)

    def _taken_failed(self, failure: Any) -> Any:
        """Not committed: CommitRounds put the batch back, which counts it again."""
        self._release_taken()
        return failure

    def _release_taken(self) -> None:
        self._taken = self._release(self._taken)

    def _release_sent(self) -> None:
        self._sending = self._release(self._sending)

    def _release(self, counted: int) -> int:
        """Give the member back what this stream counted; 0, the count left."""
        if counted:
            self._reader.member.release(counted)
        return 0

    def _put_back(self, batch: Batch) -> None:
        """Committed, not delivered: the next reader of the group gets them."""
        self._release_taken()
        self._reader.member.put_back(batch.records())

    def _deliver(self, batch: Batch) -> bool:
        """Write a committed batch, or put it back if the client is gone; False: stop."""
        if not batch:
            self._release_taken()
            return not self._ending
        if self.gone:
            self._put_back(batch)
            return False
        frames = self._frames(batch)
        self._release_taken()
        self._send(frames)
        self.sent += len(batch)
        self._on_written(len(batch))
        return self._limit is None or self.sent < self._limit

    def _send(self, frames: list[bytes]) -> None:
        """Write frames, counted against the read-ahead until the transport sent them: a
        paused stream's bytes stay counted until resumeProducing."""
        if self.gone:
            return
        for data in frames:
            self._request.write(data)
        if self._paused:
            self._sending += self._reader.member.hold(0, sum(map(len, frames)))

    def _frames(self, batch: Batch) -> list[bytes]:
        """The batch's messages, framed a chunk at a time: a few hundred kilobytes each
        rather than one buffer of megabytes, which costs more to allocate than to fill."""
        if self._records_format:
            return [self._framing.frame(render_records(batch.records()))]
        return [self._frame(chunk) for chunk in batch.chunks]

    def _frame(self, chunk: Chunk) -> bytes:
        framed = self._framing.frame_verbatim(chunk.values())
        if framed is not None:
            return framed
        records = chunk.records()
        texts = render_texts(records)
        if texts is not None:
            return self._framing.frame_texts(texts)
        return self._framing.frame(render_each(records))

    def _write(self, data: bytes) -> None:
        if not self.gone:
            self._request.write(data)
