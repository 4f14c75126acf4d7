"""Cursors: the opaque strings that name one lease, signed so that they cannot be forged.

A cursor is ``<payload>.<signature>``, both URL-safe base64: the payload is JSON naming the
process that issued it (a random id), the topic, the group, the member generation and the
lease; the signature is an HMAC-SHA256 of the payload under a secret drawn at random when
the process starts. Nothing in a cursor is trusted before its signature is checked, and a
cursor only ever names a lease: the offsets it covers are what this process leased, never
what the string says. The payload is readable (it holds no secret) so that a cursor of
another process (another replica, or this one before a restart) is told apart from a forged
one: the first answers 409 (its messages are delivered again), the second 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

import orjson

from flasfka.errors import Conflict, InvalidInput

#: Longest string taken as a cursor (a real one is ~150 characters).
MAX_CURSOR_LENGTH = 1024
_VERSION = 1
_NOT_A_CURSOR = 'not a cursor: send the "cursor" a GET with ack=explicit answered'


class CursorRef:
    """What a verified cursor names: one lease of one member generation."""

    __slots__ = ("generation", "lease", "size")

    def __init__(self, generation: int, lease: int, size: int) -> None:
        self.generation = generation
        self.lease = lease
        #: Messages the lease held when issued (0: an empty answer, nothing to acknowledge).
        self.size = size


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """Issues and checks the cursors of one process (its secret never leaves it)."""

    def __init__(self, secret: bytes | None = None, process: str | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        #: This process's id in its cursors: tells "another process" from "forged".
        self.process = process if process is not None else secrets.token_hex(8)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:20]

    def issue(self, topic: str, group: str, ref: CursorRef) -> str:
        """The cursor of ref, for topic and group."""
        payload = orjson.dumps(
            [_VERSION, self.process, topic, group, ref.generation, ref.lease, ref.size]
        )
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def verify(self, cursor: object, topic: str, group: str) -> CursorRef:
        """What cursor names, if this process issued it for topic and group.

        InvalidInput (400) for anything that is not a cursor of topic and group, or whose
        signature does not hold; Conflict (409) for a cursor of another process.
        """
        if not isinstance(cursor, str) or not cursor:
            raise InvalidInput('"cursor" must be the non-empty string a GET with ack=explicit gave')
        if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise InvalidInput(_NOT_A_CURSOR)
        encoded, signature = cursor.split(".")
        try:
            payload = _unb64(encoded)
            fields = orjson.loads(payload)
            given = _unb64(signature)
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            raise InvalidInput(_NOT_A_CURSOR) from None
        if (
            not isinstance(fields, list)
            or len(fields) != 7
            or fields[0] != _VERSION
            or not all(isinstance(f, str) for f in fields[1:4])
            or not all(isinstance(f, int) and not isinstance(f, bool) for f in fields[4:])
        ):
            raise InvalidInput(_NOT_A_CURSOR)
        _, process, cursor_topic, cursor_group, generation, lease, size = fields
        if (cursor_topic, cursor_group) != (topic, group):
            raise InvalidInput(
                f"this cursor is not one of topic {topic!r} and group {group!r}: acknowledge "
                "it at the /{topic}/{group}/ack of the GET that returned it"
            )
        if not hmac.compare_digest(self._sign(payload), given):
            if process != self.process and len(given) == 20:
                raise Conflict(
                    "this cursor was issued by another flasfka process (another replica, or "
                    "this one before a restart): its lease is not held here, and its "
                    "unacknowledged messages will be delivered again"
                )
            raise InvalidInput("not a cursor: its signature does not hold")
        return CursorRef(generation, lease, size)
