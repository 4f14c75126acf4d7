"""Streaming GETs: Server-Sent Events and NDJSON, at-most-once, with flow control.

A GET of a topic with ``Accept: text/event-stream`` or ``Accept: application/x-ndjson``
streams the group's messages until the client leaves, ``limit`` messages were sent, or
flasfka shuts down. Each batch is taken from the group member's buffer and committed through
the member's CommitRounds (one commit per batch, shared with the plain GETs of the group)
before its bytes are written: what a stream wrote is always committed.

Flow control follows twisted.web's producer/consumer API: a Stream is a push producer
registered on its request. When the connection's write buffer fills, Twisted pauses it and
it stops taking messages until resumed, so a slow reader holds at most one batch beyond the
transport's buffer; the member's own read-ahead bound applies as for any GET, and the other
readers of the group keep taking from the same buffer.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import Counter, Gauge
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import implementer

from flasfka.consumers import GroupReader
from flasfka.errors import FlasfkaError, Unavailable
from flasfka.gateway import Gateway
from flasfka.http.access_log import log_access
from flasfka.http.auth import may_create
from flasfka.http.rendering import render_records, render_values, status_of
from flasfka.reactor import ReactorLike
from flasfka.records import Record

log = Logger(namespace="flasfka.http.streaming")

SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"

#: Most messages one write of a stream takes (and commits) at once.
BATCH = 1000
#: The EventSource reconnection delay a stream announces (ms).
RETRY_MS = 2000


def stream_kind(request: IRequest) -> bytes | None:
    """SSE or NDJSON if the request's Accept asks for a stream, else None (a plain GET)."""
    accept = request.getHeader(b"accept")
    if not accept:
        return None
    types = {part.split(b";", 1)[0].strip().lower() for part in accept.split(b",")}
    if SSE in types:
        return SSE
    if NDJSON in types:
        return NDJSON
    return None


def _sse_events(items: list[Any]) -> bytes:
    return b"".join([b"data: " + orjson.dumps(item) + b"\n\n" for item in items])


def _ndjson_lines(items: list[Any]) -> bytes:
    return b"".join([orjson.dumps(item) + b"\n" for item in items])


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
    ) -> None:
        self._request = request
        self._reader = reader
        self._clock = clock
        self._kind = kind
        self._render = render_records if records_format else render_values
        self._encode = _sse_events if kind == SSE else _ndjson_lines
        self._limit = limit
        self._heartbeat = heartbeat
        self._join_timeout = join_timeout
        self._on_written = on_written
        self._paused = False
        self._resumed: Deferred[None] | None = None
        self._waiting: Deferred[Any] | None = None
        self._ending = False
        self.gone = False
        self.sent = 0
        #: When the stream started writing (reactor seconds).
        self.started = clock.seconds()
        self.done: Deferred[None] = succeed(None)

    # --- IPushProducer (called by the connection) -------------------------------------------

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The client reads slower than we write: take nothing more until resumed."""
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The transport's buffer drained: take and write again."""
        self._paused = False
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
        member.waiting += 1  # a member with an open stream is never idle
        last_write = self._clock.seconds()
        try:
            while not self._ending:
                if self._paused:
                    self._resumed = Deferred()
                    if not await self._wait(self._resumed):
                        break
                    continue
                silent = self._clock.seconds() - last_write
                wait = Deferred.fromCoroutine(
                    member.wait_for(1, max(0.0, self._heartbeat - silent), self._join_timeout)
                )
                if not await self._wait(wait):
                    break
                if not member.buffered:
                    # NDJSON has no comment syntax: only SSE gets heartbeats.
                    if self._clock.seconds() - last_write >= self._heartbeat:
                        if self._kind == SSE:
                            self._write(b":\n\n")
                        last_write = self._clock.seconds()
                    continue
                want = BATCH if self._limit is None else min(BATCH, self._limit - self.sent)
                # Not cancelled by _wait: a batch whose commit is under way is finished.
                records = await self._reader.at_most_once.consume(want)
                if not records:
                    continue
                if self.gone:
                    member.put_back(records)  # committed, not delivered: the next GET gets them
                    break
                self._write(self._encode(self._render(records)))
                last_write = self._clock.seconds()
                self.sent += len(records)
                self._on_written(records)
                if self._limit is not None and self.sent >= self._limit:
                    break
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
            member.waiting -= 1
            member.last_used = self._clock.seconds()
            self._request.unregisterProducer()

    def _write(self, data: bytes) -> None:
        if not self.gone:
            self._request.write(data)


class Streams:
    """The open streams of one flasfka: started by GETs, bounded, ended on shutdown."""

    def __init__(
        self,
        gateway: Gateway,
        clock: ReactorLike,
        max_streams: int,
        heartbeat: float,
        join_timeout: float,
    ) -> None:
        self._gateway = gateway
        self._clock = clock
        self._max = max_streams
        self._heartbeat = heartbeat
        self._join_timeout = join_timeout
        self._open: set[Stream] = set()
        self.closing = False
        registry = gateway.metrics.registry
        self._gauge = Gauge(
            "flasfka_streams_open",
            "Streaming GETs (SSE or NDJSON) open.",
            registry=registry,
        )
        self._gauge.set_function(lambda: len(self._open))
        self._streamed = Counter(
            "flasfka_messages_streamed",
            "Messages written to streaming GETs (and committed first), by topic.",
            ["topic"],
            registry=registry,
        )
        self._streamed_by_topic: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._open)

    async def serve(
        self,
        request: Request,
        topic: str,
        group: str,
        limit: int | None,
        records_format: bool,
        kind: bytes,
    ) -> bytes:
        """Stream (topic, group) to request until it ends; the remaining body (none)."""
        if request.method == b"HEAD":  # the headers of a stream; nothing is taken
            request.setHeader(b"Content-Type", kind)
            return b""
        if self.closing:
            raise Unavailable("flasfka is shutting down", retry_after=1)
        if len(self._open) >= self._max:
            raise Unavailable(
                f"too many streams open ({self._max}, MAX_STREAMS); try again later",
                retry_after=5,
            )
        reader = await self._gateway.reader(topic, group, may_create(request))
        counter = self._streamed_by_topic.get(topic)
        if counter is None:
            counter = self._streamed_by_topic[topic] = self._streamed.labels(topic)

        def written(records: list[Record]) -> None:
            counter.inc(len(records))

        stream = Stream(
            request,
            reader,
            self._clock,
            kind,
            records_format,
            limit,
            self._heartbeat,
            self._join_timeout,
            written,
        )
        self._open.add(stream)
        done = stream.start()
        done.addBoth(self._ended, stream)
        # The handler's wait: cancelling it (client gone) ends the stream, which cleans up.
        waiting: Deferred[None] = Deferred(lambda _: stream.stopProducing())
        done.addBoth(lambda _: _fire(waiting))
        try:
            await waiting
        except CancelledError:
            # The client left: the request is never finished, and twisted.web logs only
            # finished ones. A stream's access line is written when it ends, so log it here.
            log_access(request, self._clock.seconds() - stream.started)
            raise
        return b""

    def _ended(self, result: object, stream: Stream) -> None:
        self._open.discard(stream)
        if isinstance(result, Failure):
            log.failure("stream failed", result)

    def close_all(self, grace: float) -> Deferred[None]:
        """End every stream (shutdown); fires once all have ended, or after grace seconds.

        A stream ends after the batch it is committing, if any, is written. One still open
        after grace (a commit that hangs) is left to the listener's drain, which aborts it.
        """
        self.closing = True
        streams = list(self._open)
        if not streams:
            return succeed(None)
        log.info("ending {count} open streams", count=len(streams))
        for stream in streams:
            stream.end()
        ended: Deferred[None] = Deferred()
        gatherResults([s.done for s in streams], consumeErrors=True).addBoth(lambda _: _fire(ended))
        timer = self._clock.callLater(grace, _fire, ended)
        ended.addBoth(lambda _: timer.cancel() if timer.active() else None)
        return ended


def _fire(d: Deferred[None]) -> None:
    """Fire d with None unless it already fired (e.g. it was cancelled)."""
    if not d.called:
        d.callback(None)


class StreamsService(Service):
    """Ends the open streams when flasfka stops (before the listener drains)."""

    name = "streams"

    def __init__(self, streams: Streams, grace: float) -> None:
        self._streams = streams
        self._grace = grace

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        """End every stream; fires once they all ended (at most SHUTDOWN_GRACE)."""
        Service.stopService(self)
        return self._streams.close_all(self._grace)
