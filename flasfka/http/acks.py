"""At-least-once reads over HTTP: the ?ack=explicit and ?lease= parameters, the ack body,
and the answer of a leased GET."""

from __future__ import annotations

import math
from typing import Any

import orjson

from flasfka.errors import InvalidInput
from flasfka.http.rendering import render_records, render_values
from flasfka.leases import Lease

#: The ack body, quoted in every error about one.
ACK_FORMAT = '{"cursor": "<the cursor of a GET with ack=explicit>", "release": false}'


def _last(args: dict[bytes, list[bytes]], name: bytes) -> str | None:
    values = args.get(name)
    return values[-1].decode("utf-8", "replace") if values else None


def parse_lease(args: dict[bytes, list[bytes]], default: float, maximum: float) -> float | None:
    """The lease of a GET in seconds if it has ?ack=explicit, else None (at-most-once).

    ?lease= alone implies ack=explicit: a client that asks for a lease must never get the
    at-most-once commit instead.
    """
    ack = _last(args, b"ack")
    lease = _last(args, b"lease")
    if ack is None and lease is None:
        return None
    if ack is not None and ack != "explicit":
        raise InvalidInput(
            f"invalid ack {ack[:40]!r}: the only value is 'explicit' (at-least-once); "
            "without ack= a GET commits before it answers"
        )
    if lease is None:
        return default
    try:
        seconds = float(lease)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 1 <= seconds <= maximum):
        raise InvalidInput(
            f"invalid lease {lease[:40]!r}: it must be a number of seconds from 1 to "
            f"{maximum:g} (CONSUMER_MAX_LEASE)"
        )
    return seconds


def wants_records(args: dict[bytes, list[bytes]]) -> bool:
    """Whether ?format=records asks for records with their metadata (else bare values)."""
    form = _last(args, b"format")
    if form is None or form == "values":
        return False
    if form != "records":
        raise InvalidInput(f"invalid format {form[:40]!r}: use 'records' (or leave it out)")
    return True


def leased_answer(group: str, lease: Lease, cursor: str, seconds: float, records: bool) -> bytes:
    """{"group", "messages", "cursor", "lease"}; records carry "deliveries"."""
    messages: list[Any]
    if records:
        messages = render_records(lease.records)
        for message, deliveries in zip(messages, lease.deliveries, strict=True):
            message["deliveries"] = deliveries
    else:
        messages = render_values(lease.records)
    lease_field: float | int = int(seconds) if seconds == int(seconds) else seconds
    return orjson.dumps(
        {"group": group, "messages": messages, "cursor": cursor, "lease": lease_field}
    )


def parse_ack(body: bytes) -> tuple[object, bool]:
    """(cursor, release) of a POST .../ack body, or InvalidInput."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"body is not valid JSON ({e}); expected {ACK_FORMAT}") from None
    if not isinstance(document, dict) or "cursor" not in document:
        raise InvalidInput(f'body must be a JSON object with "cursor"; expected {ACK_FORMAT}')
    unknown = sorted(set(document) - {"cursor", "release"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; expected {ACK_FORMAT}")
    release = document.get("release", False)
    if not isinstance(release, bool):
        raise InvalidInput(f'"release" must be true or false; expected {ACK_FORMAT}')
    return document["cursor"], release
