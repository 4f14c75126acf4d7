"""What flasfka's classes ask of the reactor they are given (tests pass a Clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred


class ReactorLike(Protocol):
    """The reactor methods flasfka uses."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...  # noqa: N802
    def seconds(self) -> float: ...
    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...  # noqa: N802


#: What runs a blocking callable off the reactor thread and returns a Deferred of its result.
RunBlocking = Callable[..., Deferred[Any]]
