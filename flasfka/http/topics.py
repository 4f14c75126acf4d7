"""The topic endpoints: POST messages to a topic, GET the next ones for a group."""

from __future__ import annotations

from typing import cast

import orjson
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from flasfka.errors import InvalidInput
from flasfka.gateway import Gateway
from flasfka.http.acks import leased_answer, parse_ack, parse_lease
from flasfka.http.auth import may_create
from flasfka.http.parsing import check_group, check_topic, parse_format, parse_limit, parse_timeout
from flasfka.http.produce import ProduceRoute
from flasfka.http.rendering import JSON, render_records, render_values
from flasfka.http.streaming import SSE, Streams, stream_kind
from flasfka.idempotency import IdempotencyStore


class TopicRoutes:
    """Handlers of the topic rows of the route table, over a Gateway."""

    def __init__(
        self,
        gateway: Gateway,
        default_group: str,
        default_limit: int,
        max_limit: int,
        idempotency: IdempotencyStore,
        max_timeout: float = 30.0,
        streams: Streams | None = None,
    ) -> None:
        self._gateway = gateway
        self._produce = ProduceRoute(gateway, idempotency)
        self._metrics = gateway.metrics
        self.default_group = default_group
        self._default_limit = default_limit
        self._max_limit = max_limit
        self._max_timeout = max_timeout
        self._streams = streams

    async def produce(self, request: IRequest, topic: str, key: str | bytes | None = None) -> bytes:
        """POST /{topic}/[{key}/]: send the body's messages, 204 once all are acknowledged
        (flasfka.http.produce: body forms, offsets, Idempotency-Key)."""
        return await self._produce.produce(request, topic, key)

    async def fetch(self, request: IRequest, topic: str, group: str | None = None) -> bytes:
        """GET /{topic}/[{group}/]: the next messages of the group, committed first.

        HEAD answers the same headers and takes nothing.
        """
        check_topic(topic)
        group = self.default_group if group is None else group
        check_group(group)
        args = request.args
        raw_limit = args.get(b"limit")
        limit = parse_limit(
            raw_limit[-1] if raw_limit else None, self._default_limit, self._max_limit
        )
        raw_timeout = args.get(b"timeout")
        timeout = parse_timeout(raw_timeout[-1] if raw_timeout else None, self._max_timeout)
        raw_format = args.get(b"format")
        records_format = parse_format(raw_format[-1] if raw_format else None) == "records"
        gateway = self._gateway
        lease = parse_lease(args, gateway.lease_default, gateway.lease_max)
        kind = stream_kind(request) if self._streams is not None else None
        if kind is not None:
            assert self._streams is not None
            if lease is not None and kind != SSE:
                raise InvalidInput(
                    "an NDJSON stream is at-most-once only: leave out ack= and lease=, or "
                    "stream with Accept: text/event-stream (each event's id is its cursor)"
                )
            return await self._streams.serve(
                cast(Request, request),
                topic,
                group,
                limit if raw_limit else None,
                records_format,
                kind,
                lease,
            )
        request.setHeader(b"Content-Type", JSON)
        if request.method == b"HEAD":
            return b""
        if lease is not None:
            leased, cursor = await gateway.fetch_leased(
                topic, group, limit, lease, create=may_create(request), timeout=timeout
            )
            return leased_answer(group, leased, cursor, lease, records_format)
        records = await gateway.fetch(
            topic, group, limit, create=may_create(request), timeout=timeout
        )
        render = render_records if records_format else render_values
        return orjson.dumps({"group": group, "messages": render(records)})

    async def ack(self, request: IRequest, topic: str, group: str) -> bytes:
        """POST /{topic}/{group}/ack: acknowledge (or release) a leased GET's messages."""
        check_topic(topic)
        check_group(group)
        cursor, release = parse_ack(request.content.read())
        await self._gateway.ack(topic, group, cursor, release)
        request.setResponseCode(204)
        return b""
