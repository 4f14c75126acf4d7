"""Principals: who a credential names, checked once and then remembered.

A Basic password is checked with scrypt (tens of ms, in a thread); a verified credential is
remembered in a bounded LRU keyed by a keyed BLAKE2b (a MAC, cheaper than HMAC-SHA256) of
the whole credential under a per-process random key, so a client sending the same
Authorization header on every POST pays the slow hash once, and the cache holds no
reusable form of the secret.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from hashlib import blake2b

from flasfka.security.hashing import hash_password, hash_token, verify_password


class VerifiedCache:
    """The last ``size`` credentials that verified, each mapped to its principal."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, str] = OrderedDict()

    def _digest(self, credential: bytes) -> bytes:
        return blake2b(credential, key=self._key, digest_size=16).digest()

    def get(self, credential: bytes) -> str | None:
        """The principal of a credential verified before, else None."""
        digest = self._digest(credential)
        principal = self._entries.get(digest)
        if principal is not None:
            self._entries.move_to_end(digest)
        return principal

    def put(self, credential: bytes, principal: str) -> None:
        """Remember that credential verified as principal (the oldest entry goes if full)."""
        self._entries[self._digest(credential)] = principal
        self._entries.move_to_end(self._digest(credential))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Credentials:
    """The USERS and TOKENS of the config: checks a password or a token."""

    def __init__(self, users: Mapping[str, str], tokens: Mapping[str, str]) -> None:
        self._users = dict(users)
        self._tokens = [(hash_token_value, name) for name, hash_token_value in tokens.items()]
        # An unknown user costs the same scrypt as a known one (no timing oracle).
        self._dummy = hash_password(secrets.token_urlsafe(16))

    def check_password(self, user: str, password: bytes) -> bool:
        """Whether user exists and password is theirs (slow: run it in a thread)."""
        stored = self._users.get(user)
        matches = verify_password(password, stored if stored is not None else self._dummy)
        return matches and stored is not None

    def token_principal(self, token: bytes) -> str | None:
        """The name whose token this is, else None (compares with every entry)."""
        offered = hash_token(token).encode()
        found = None
        for stored, name in self._tokens:
            if hmac.compare_digest(offered, stored.encode()) and found is None:
                found = name
        return found
