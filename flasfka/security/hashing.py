"""Password and token hashes as the config stores them.

Passwords: salted scrypt (hashlib, no extra dependency), slow on purpose so that a leaked
config does not give the passwords away cheaply. Tokens are 256 random bits made by
``flasfka-passwd --token``: guessing one is as hard as guessing its hash, so a fast SHA-256
is enough for them, and it lets a bearer token be checked without an scrypt per entry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: scrypt cost: about 16 MiB of memory and some tens of ms per hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_PREFIX = "scrypt"
_TOKEN_PREFIX = "sha256"
_MAXMEM = 64 * 1024 * 1024


class BadHash(ValueError):
    """A stored hash is not one flasfka-passwd makes."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=length)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64) for password, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, 32)
    return f"{_SCRYPT_PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse_password_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCRYPT_PREFIX:
        raise BadHash("not an scrypt$N$r$p$salt$hash string made by flasfka-passwd")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise BadHash("malformed scrypt hash (numbers or base64)") from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or n * r * 128 > _MAXMEM:
        raise BadHash("scrypt parameters out of range")
    if len(salt) < 8 or len(digest) < 16:
        raise BadHash("scrypt salt or hash too short")
    return n, r, p, salt, digest


def check_password_hash(stored: str) -> None:
    """Raise BadHash unless stored is a usable password hash (for config validation)."""
    _parse_password_hash(stored)


def verify_password(password: bytes, stored: str) -> bool:
    """Whether password matches stored (constant-time comparison; slow: not on the reactor)."""
    n, r, p, salt, digest = _parse_password_hash(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(digest)), digest)


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


def hash_token(token: str | bytes) -> str:
    """``sha256$<hex>`` of token."""
    raw = token.encode() if isinstance(token, str) else token
    return f"{_TOKEN_PREFIX}${hashlib.sha256(raw).hexdigest()}"


def check_token_hash(stored: str) -> None:
    """Raise BadHash unless stored is a token hash flasfka-passwd --token makes."""
    prefix, _, hexdigest = stored.partition("$")
    if prefix != _TOKEN_PREFIX or len(hexdigest) != 64:
        raise BadHash("not a sha256$<64 hex digits> string made by flasfka-passwd --token")
    try:
        bytes.fromhex(hexdigest)
    except ValueError:
        raise BadHash(
            "not a sha256$<64 hex digits> string made by flasfka-passwd --token"
        ) from None
