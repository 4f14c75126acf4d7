"""Errors a request can end in, each with its HTTP status and a message for the client."""

from __future__ import annotations


class GatewayError(Exception):
    """An error answered to the client as JSON {"error": message} with a status code."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}


class BadRequest(GatewayError):
    """The request itself is malformed (400)."""

    status = 400


class NotFound(GatewayError):
    """The topic does not exist and auto-creation is off (404)."""

    status = 404


class PayloadTooLarge(GatewayError):
    """A body or a message is over the configured limit (413)."""

    status = 413


class BrokerRejected(GatewayError):
    """The broker answered with an error that retrying will not fix (502)."""

    status = 502


class Unavailable(GatewayError):
    """The broker is unreachable, slow, or a local bound is reached (503 + Retry-After)."""

    status = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """Tell the client when to try again."""
        return {"Retry-After": str(self.retry_after)}
