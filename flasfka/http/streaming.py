"""Streaming GETs: Server-Sent Events and NDJSON, opened, bounded and ended on shutdown.

A GET of a topic with ``Accept: text/event-stream`` or ``Accept: application/x-ndjson``
streams the group's messages until the client leaves, ``limit`` messages were sent, or
flasfka shuts down; flasfka.http.stream_writer writes each one (batches committed before
they are written, or leased with ack=explicit, with Twisted's flow control). Streams here
counts them against MAX_STREAMS and ends them first on shutdown.

A reconnect's ``Last-Event-ID`` (ack=explicit) acknowledges, before the new stream starts,
that event and every earlier one of the stream that sent it; what is never acknowledged is
delivered again when its lease ends.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request

from flasfka.cursors import CursorRef
from flasfka.errors import Conflict, Unavailable
from flasfka.gateway import Gateway
from flasfka.http.auth import may_create
from flasfka.http.stream_framing import NDJSON, SSE, stream_kind
from flasfka.http.stream_writer import Leasing, Stream
from flasfka.reactor import ReactorLike

__all__ = ["NDJSON", "SSE", "Streams", "StreamsService", "stream_kind"]

log = Logger(namespace="flasfka.http.streaming")


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
        lease: float | None = None,
    ) -> bytes:
        """Stream (topic, group) to request until it ends; the remaining body (none).

        lease (seconds, SSE only): ack=explicit, each event leased under a cursor of its own;
        a Last-Event-ID header acknowledges that event and the earlier ones of its stream
        first (events whose leases ended are, or were, delivered again; an id that is not a
        cursor of this topic and group answers 400).
        """
        # HEAD answers as the GET would (a 503 past these bounds), and takes nothing.
        if self.closing:
            raise Unavailable("flasfka is shutting down", retry_after=1)
        if len(self._open) >= self._max:
            raise Unavailable(
                f"too many streams open ({self._max}, MAX_STREAMS); try again later",
                retry_after=5,
            )
        if request.method == b"HEAD":  # the headers of a stream; nothing is taken
            request.setHeader(b"Content-Type", kind)
            return b""
        reader = await self._gateway.reader(topic, group, may_create(request))
        leasing = None
        if lease is not None:
            last = request.getHeader(b"last-event-id")
            if last:
                try:
                    cursor_text = last.decode("utf-8", "replace")
                    await self._gateway.ack(topic, group, cursor_text, False, through=True)
                except Conflict:
                    pass  # its lease ended or is not held here: it is delivered again anyway
            cursors = self._gateway.cursors

            def cursor(ref: CursorRef) -> str:
                return cursors.issue(topic, group, ref)

            leasing = Leasing(lease, cursor)
        counter = self._streamed_by_topic.get(topic)
        if counter is None:
            counter = self._streamed_by_topic[topic] = self._streamed.labels(topic)

        def written(count: int) -> None:
            counter.inc(count)

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
            leasing,
        )
        self._open.add(stream)
        done = stream.start()
        done.addBoth(self._ended, stream)
        # The handler's wait: cancelling it (client gone) ends the stream, which cleans up.
        waiting: Deferred[None] = Deferred(lambda _: stream.stopProducing())
        done.addBoth(lambda _: _fire(waiting))
        await waiting  # a client that left is logged by the Site (ObservedSite._ended)
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
