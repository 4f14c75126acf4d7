"""The topic endpoints: POST messages to a topic, GET the next ones for a group."""

from __future__ import annotations

import orjson
from twisted.web.iweb import IRequest

from flasfka.gateway import Gateway
from flasfka.http.acks import leased_answer, parse_ack, parse_lease, wants_records
from flasfka.http.auth import may_create
from flasfka.http.parsing import check_group, check_topic, parse_limit
from flasfka.http.produce import ProduceRoute
from flasfka.http.rendering import JSON, render_values
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
    ) -> None:
        self._gateway = gateway
        self._produce = ProduceRoute(gateway, idempotency)
        self._metrics = gateway.metrics
        self.default_group = default_group
        self._default_limit = default_limit
        self._max_limit = max_limit

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
        raw_limit = request.args.get(b"limit")
        limit = parse_limit(
            raw_limit[-1] if raw_limit else None, self._default_limit, self._max_limit
        )
        gateway = self._gateway
        lease = parse_lease(request.args, gateway.lease_default, gateway.lease_max)
        records_format = wants_records(request.args) if lease is not None else False
        request.setHeader(b"Content-Type", JSON)
        if request.method == b"HEAD":
            return b""
        if lease is not None:
            leased, cursor = await gateway.fetch_leased(
                topic, group, limit, lease, create=may_create(request)
            )
            return leased_answer(group, leased, cursor, lease, records_format)
        records = await self._gateway.fetch(topic, group, limit, create=may_create(request))
        return orjson.dumps({"group": group, "messages": render_values(records)})

    async def ack(self, request: IRequest, topic: str, group: str) -> bytes:
        """POST /{topic}/{group}/ack: acknowledge (or release) a leased GET's messages."""
        check_topic(topic)
        check_group(group)
        cursor, release = parse_ack(request.content.read())
        await self._gateway.ack(topic, group, cursor, release)
        request.setResponseCode(204)
        return b""
