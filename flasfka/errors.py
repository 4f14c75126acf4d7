"""flasfka's domain errors: what went wrong, in words a client can act on.

They know nothing of HTTP; ``flasfka.http.rendering`` decides the status of each.
"""

from __future__ import annotations


class FlasfkaError(Exception):
    """An error a request can end in, with a message for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FlasfkaError):
    """The request itself is malformed: a name, a parameter or a body."""


class UnknownTopic(FlasfkaError):
    """The topic does not exist and auto-creation is off."""


class TooLarge(FlasfkaError):
    """A body or a message is over the configured limit."""


class BrokerRefused(FlasfkaError):
    """The broker answered with an error that retrying will not fix."""


class Unavailable(FlasfkaError):
    """The broker is unreachable or slow, or a local bound is reached: try again later."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(FlasfkaError):
    """The request names state this process no longer holds (e.g. an expired lease)."""


class InFlight(FlasfkaError):
    """A request with the same Idempotency-Key is still being served."""


class KeyReused(FlasfkaError):
    """An Idempotency-Key was used before for another request."""


class NotPermitted(FlasfkaError):
    """The principal is authenticated but its ACL does not allow this (e.g. creating a topic)."""
