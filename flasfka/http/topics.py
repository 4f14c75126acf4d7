"""The topic endpoints: POST messages to a topic, GET the next ones for a group."""

from __future__ import annotations

from typing import cast

import orjson
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from flasfka.errors import FlasfkaError
from flasfka.gateway import Gateway
from flasfka.http.auth import may_create
from flasfka.http.parsing import (
    check_group,
    check_topic,
    parse_format,
    parse_limit,
    parse_messages,
    parse_timeout,
)
from flasfka.http.rendering import JSON, render_records, render_values, status_of
from flasfka.http.streaming import Streams, stream_kind


class TopicRoutes:
    """Handlers of the topic rows of the route table, over a Gateway."""

    def __init__(
        self,
        gateway: Gateway,
        default_group: str,
        default_limit: int,
        max_limit: int,
        max_timeout: float = 30.0,
        streams: Streams | None = None,
    ) -> None:
        self._gateway = gateway
        self._metrics = gateway.metrics
        self.default_group = default_group
        self._default_limit = default_limit
        self._max_limit = max_limit
        self._max_timeout = max_timeout
        self._streams = streams

    async def produce(self, request: IRequest, topic: str, key: str | bytes | None = None) -> bytes:
        """POST /{topic}/[{key}/]: send the body's messages, 204 once all are acknowledged."""
        check_topic(topic)
        if isinstance(key, str):
            key = key.encode()
        values = parse_messages(request.content.read())
        try:
            await self._gateway.produce(topic, values, key, create=may_create(request))
        except FlasfkaError as e:
            self._metrics.produce_failed(topic, status_of(e))
            raise
        request.setResponseCode(204)
        return b""

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
        kind = stream_kind(request) if self._streams is not None else None
        if kind is not None:
            assert self._streams is not None
            return await self._streams.serve(
                cast(Request, request),
                topic,
                group,
                limit if raw_limit else None,
                records_format,
                kind,
            )
        request.setHeader(b"Content-Type", JSON)
        if request.method == b"HEAD":
            return b""
        records = await self._gateway.fetch(
            topic, group, limit, create=may_create(request), timeout=timeout
        )
        render = render_records if records_format else render_values
        return orjson.dumps({"group": group, "messages": render(records)})
