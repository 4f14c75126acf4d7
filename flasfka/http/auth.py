"""The authentication and ACL guard: decided for every request before any handler runs.

Like twisted.web's guard wrapper, but on flasfka's root: the route table says what a
request needs (``Route.open``, ``Route.operation``); the guard finds the principal (an
Authorization header, else the TLS client certificate's subject CN), asks the ACL, and
either lets the request through or answers 401 / 403 / 429 itself. A Basic password is
checked with scrypt in a thread, once per credential (the verified cache answers the
rest). No answer, log line or metric names a secret; a 401 never says whether the user
exists, a 403 never says whether the topic does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.x509.oid import NameOID
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from flasfka.http.rendering import JSON, REASONS, error_body
from flasfka.http.routes import Route, path_params, route_of
from flasfka.reactor import ReactorLike
from flasfka.security.acl import Acl
from flasfka.security.principals import Credentials, VerifiedCache
from flasfka.security.throttle import FailureThrottle

if TYPE_CHECKING:
    from flasfka.app.config import Config

log = Logger(namespace="flasfka.auth")

_PRINCIPAL = "flasfka_principal"
_MAY_CREATE = "flasfka_may_create"
_CHALLENGES = (b'Basic realm="flasfka", charset="UTF-8"', b'Bearer realm="flasfka"')
#: Password checks (scrypt, ~16 MiB each) run at once, in threads.
CHECK_THREADS = 4
#: Distinct Basic credentials being checked or queued before new ones get 503.
MAX_CHECKING = 256
#: Longest Basic credential decoded (user:password); longer ones are refused unread.
_MAX_BASIC = 4096

#: What the guard decides: None (serve it), bytes (the answer, already set up), or a
#: Deferred of either (a password being checked).
Verdict = bytes | None


def principal_of(request: IRequest) -> str | None:
    """The authenticated principal of request (None when authentication is off or open)."""
    return getattr(request, _PRINCIPAL, None)


def may_create(request: IRequest) -> bool:
    """Whether the request may create its topic (True when authentication is off)."""
    return bool(getattr(request, _MAY_CREATE, True))


def parse_basic(value: bytes) -> tuple[str, bytes] | None:
    """(user, password) of a Basic credential's base64 part, or None if malformed."""
    value = value.strip()
    if not value or len(value) > _MAX_BASIC:
        return None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon or not user:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def cert_principal(request: IRequest) -> str | None:
    """The subject CN of the client's verified TLS certificate, if it sent one."""
    transport = getattr(getattr(request, "channel", None), "transport", None)
    get_peer = getattr(transport, "getPeerCertificate", None)
    if get_peer is None:
        return None
    try:
        cert = get_peer()
    except Exception:  # not a TLS connection after all
        return None
    if cert is None:
        return None
    names = cert.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = names[0].value if names else None
    return cn if isinstance(cn, str) and cn else None


def topic_and_group(request: IRequest, route: Route, default_group: str) -> tuple[str, str | None]:
    """The topic (and, for a consume, the group) a topic route's path names."""
    params = path_params(route, request.path)
    if params is None:  # a path Klein will refuse: still judge it by its first segment
        segments = request.postpath
        params = {"topic": segments[0].decode("utf-8", "replace") if segments else ""}
    if route.operation != "consume":
        return params["topic"], None
    return params["topic"], params.get("group", default_group)


class Guard:
    """Authenticates and authorizes every request against the config's principals and ACL."""

    def __init__(
        self,
        config: Config,
        clock: ReactorLike,
        run_blocking: Callable[..., Deferred[Any]],
    ) -> None:
        self._credentials = Credentials(config.USERS, config.TOKENS)
        self._cache = VerifiedCache(config.AUTH_CACHE_SIZE)
        self._acl = Acl.from_config(config.ACL)
        self._throttle = FailureThrottle(
            clock,
            config.AUTH_MAX_FAILURES,
            config.AUTH_FAILURE_WINDOW,
            config.AUTH_TRACKED_ADDRESSES,
        )
        self._run_blocking = run_blocking
        self._basic = bool(config.USERS)
        self._bearer = bool(config.TOKENS)
        self._certs = bool(config.TLS_CLIENT_CA)
        self._metrics_auth = config.METRICS_AUTH
        self._default_group = config.DEFAULT_GROUP
        self._slots = DeferredSemaphore(CHECK_THREADS)
        #: Basic credentials being checked -> the requests waiting for the same answer.
        self._checking: dict[bytes, list[Deferred[bool]]] = {}

    def check(self, request: IRequest) -> Verdict | Deferred[Verdict]:
        """Let request through (None), or answer it (its body), now or once verified."""
        if request.method == b"OPTIONS":
            return None  # answered from the route table; takes and reveals nothing
        route = route_of(request.method, request.path)
        if route is not None and (
            route.open or (route.name == "metrics" and not self._metrics_auth)
        ):
            return None
        header = request.getHeader(b"authorization")
        if header is None:
            principal = cert_principal(request) if self._certs else None
            if principal is None:
                return _unauthorized(
                    request, "authentication required: send Basic or Bearer credentials"
                )
            return self._authorize(request, route, principal)
        principal = self._cache.get(header)
        if principal is not None:
            return self._authorize(request, route, principal)
        address = getattr(request.getClientAddress(), "host", "-")
        wait = self._throttle.retry_after(address)
        if wait is not None:
            return _too_many(request, wait)
        scheme, _, value = header.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer" and self._bearer and value.strip():
            name = self._credentials.token_principal(value.strip())
            return self._verified(request, route, header, name, address)
        if scheme == b"basic" and self._basic:
            parsed = parse_basic(value)
            if parsed is not None:
                user, password = parsed
                if header not in self._checking and len(self._checking) >= MAX_CHECKING:
                    request.setHeader(b"Retry-After", b"1")
                    return _refuse(request, 503, "too many passwords being checked: retry")
                return self._check_password(header, user, password).addCallback(
                    lambda ok: self._verified(request, route, header, user if ok else None, address)
                )
        return self._verified(request, route, header, None, address)

    def _check_password(self, header: bytes, user: str, password: bytes) -> Deferred[bool]:
        """Whether the password is user's: one scrypt per distinct credential in flight, at
        most CHECK_THREADS at once (each takes ~16 MiB)."""
        waiters = self._checking.get(header)
        if waiters is None:
            waiters = self._checking[header] = []

            def settle(result: bool | Failure) -> bool | Failure:
                del self._checking[header]
                for waiter in waiters:
                    if isinstance(result, Failure):
                        waiter.errback(result)
                    else:
                        waiter.callback(result)
                return result

            work = self._slots.run(
                self._run_blocking, self._credentials.check_password, user, password
            )
            return work.addBoth(settle)
        waiter: Deferred[bool] = Deferred()
        waiters.append(waiter)
        return waiter

    def _verified(
        self,
        request: IRequest,
        route: Route | None,
        header: bytes,
        principal: str | None,
        address: str,
    ) -> Verdict:
        if principal is None:
            self._throttle.failed(address)
            return _unauthorized(request, "the credentials are not valid", invalid=True)
        self._cache.put(header, principal)
        return self._authorize(request, route, principal)

    def _authorize(self, request: IRequest, route: Route | None, principal: str) -> Verdict:
        setattr(request, _PRINCIPAL, principal)
        if route is None or route.operation is None:
            return None
        topic, group = topic_and_group(request, route, self._default_group)
        if not self._acl.allows(principal, route.operation, topic, group):
            where = f"topic {topic!r}" + (f" as group {group!r}" if group is not None else "")
            return _refuse(
                request, 403, f"principal {principal!r} may not {route.operation} on {where}"
            )
        setattr(request, _MAY_CREATE, self._acl.allows(principal, "create", topic, group))
        return None


def _refuse(request: IRequest, status: int, message: str) -> bytes:
    request.setResponseCode(status, REASONS.get(status))
    request.setHeader(b"Content-Type", JSON)
    return error_body(status, message)


def _unauthorized(request: IRequest, message: str, invalid: bool = False) -> bytes:
    for challenge in _CHALLENGES:
        request.responseHeaders.addRawHeader(b"WWW-Authenticate", challenge)
    return _refuse(request, 401, message)


def _too_many(request: IRequest, wait: int) -> bytes:
    request.setHeader(b"Retry-After", b"%d" % wait)
    return _refuse(
        request,
        429,
        f"too many failed authentications from this address: retry in {wait} s",
    )
