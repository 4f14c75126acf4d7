"""POST /{topic}/[{key}/]: a body in any form, sent; 204, or 200 with the offsets.

Opt-in request headers: ``Content-Type`` picks the body form (flasfka.http.bodies),
``Prefer: return=representation`` asks for the offsets, ``Idempotency-Key`` makes a retry
replay the first answer instead of writing again (flasfka.idempotency). A POST with none of
them is the seed's, on the seed's fast path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import orjson
from twisted.web.iweb import IRequest

from flasfka.errors import FlasfkaError, InvalidInput
from flasfka.gateway import Gateway
from flasfka.http.auth import may_create, principal_of
from flasfka.http.bodies import media_type, parse_body
from flasfka.http.parsing import check_topic
from flasfka.http.rendering import JSON, status_of
from flasfka.idempotency import IdempotencyStore, StoredAnswer, fingerprint
from flasfka.records import Outgoing

_APPLIED = (b"Preference-Applied", b"return=representation")
_REPLAYED = b"Idempotent-Replayed"


def wants_offsets(prefer: list[bytes] | None) -> bool:
    """Whether Prefer headers (RFC 7240) ask for return=representation."""
    if prefer is None:
        return False
    for header in prefer:
        for preference in header.split(b","):
            name, _, value = preference.split(b";", 1)[0].partition(b"=")
            if (
                name.strip().lower() == b"return"
                and value.strip().strip(b'"').lower() == b"representation"
            ):
                return True
    return False


def check_idempotency_key(raw: bytes) -> str:
    """An Idempotency-Key: 1 to 255 printable ASCII characters, else InvalidInput."""
    if 1 <= len(raw) <= 255 and all(0x20 <= byte <= 0x7E for byte in raw):
        return raw.decode("ascii")
    raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters")


class ProduceRoute:
    """Serves the produce rows of the route table over a Gateway."""

    def __init__(self, gateway: Gateway, idempotency: IdempotencyStore) -> None:
        self._gateway = gateway
        self._metrics = gateway.metrics
        self._idempotency = idempotency

    async def produce(self, request: IRequest, topic: str, key: str | bytes | None = None) -> bytes:
        """Send the body's messages; 204 (200 with offsets if asked) once all are acknowledged."""
        check_topic(topic)
        if isinstance(key, str):
            key = key.encode()
        headers = request.requestHeaders
        content_type = headers.getRawHeaders(b"content-type")
        content_type = content_type[-1] if content_type else None
        body = request.content.read()
        offsets = wants_offsets(headers.getRawHeaders(b"prefer"))
        token = headers.getRawHeaders(b"idempotency-key")
        if token is None:
            return await self._produce(request, topic, key, body, content_type, offsets)
        checked = check_idempotency_key(token[-1])
        # What makes a retry the same request: its topic, key, body form and body.
        digest = fingerprint(
            topic.encode(),
            b"" if key is None else b"k" + key,
            media_type(content_type),
            body,
        )
        send = partial(self._produce, request, topic, key, body, content_type, offsets)
        return await self._produce_once(request, checked, digest, send)

    async def _produce(
        self,
        request: IRequest,
        topic: str,
        key: bytes | None,
        body: bytes,
        content_type: bytes | None,
        offsets: bool,
    ) -> bytes:
        parsed = parse_body(body, content_type, key)
        try:
            if parsed.values is not None and not offsets:
                await self._gateway.produce(
                    topic, parsed.values, key, may_create(request), parsed.element
                )
                request.setResponseCode(204)
                return b""
            records = parsed.records
            if records is None:
                records = [Outgoing(value, key) for value in parsed.values or ()]
            delivered = await self._gateway.produce_records(topic, records, offsets, parsed.element)
        except FlasfkaError as e:
            self._metrics.produce_failed(topic, status_of(e))
            raise
        if delivered is None:
            request.setResponseCode(204)
            return b""
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", JSON)
        request.setHeader(*_APPLIED)
        return orjson.dumps(
            {
                "offsets": [
                    {"partition": partition, "offset": offset, "timestamp": timestamp}
                    for partition, offset, timestamp in delivered
                ]
            }
        )

    async def _produce_once(
        self,
        request: IRequest,
        token: str,
        digest: bytes,
        send: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        """send() (a _produce) under an Idempotency-Key: the first answer is kept and replayed
        to a retry of the same request (digest), the key with another request is refused.

        Each authenticated principal has keys of its own: the same key from another
        principal is another key.
        """
        principal = principal_of(request)
        if principal is not None:
            token = f"{principal}\x00{token}"
        stored = self._idempotency.claim(token, digest)
        if stored is not None:
            request.setResponseCode(stored.status)
            for name, value in stored.headers:
                request.setHeader(name, value)
            request.setHeader(_REPLAYED, b"true")
            return stored.body
        try:
            answer = await send()
        except BaseException:  # failed or cancelled: a retry is served as a new request
            self._idempotency.released(token)
            raise
        stored_headers = ((b"Content-Type", JSON), _APPLIED) if answer else ()
        code: int = request.code  # type: ignore[attr-defined]  # a twisted.web Request
        self._idempotency.answered(token, StoredAnswer(code, stored_headers, answer))
        return answer
