"""One listening socket shared by worker processes: what a worker knows of itself, and its endpoint.

The parent binds the port once (any endpoint string: tcp:, ssl:, unix:, systemd:) and hands
the listening socket to each worker as an inherited file descriptor, as in Twisted's "sharing
a listening port among processes" howto. A worker parses the same endpoint string against
an ``AdoptingReactor`` (build()'s listen_reactor): the endpoint's ``listenTCP`` /
``listenSSL`` / ``listenUNIX`` call adopts the inherited socket (``reactor.adoptStreamPort``)
instead of binding a new one, so ``ssl:`` keeps its certificate and options (and
TLS_CLIENT_CA), wrapped in TLS in the worker, and build() wires an ordinary endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater

#: The response header naming the worker that answered (only with WORKERS > 1).
WORKER_HEADER = b"X-Flasfka-Worker"


@dataclass
class WorkerIdentity:
    """Who this worker is among the workers of one flasfka instance."""

    #: 1..WORKERS; a replacement keeps the id of the worker it replaces.
    id: int
    #: PROMETHEUS_MULTIPROC_DIR shared by the workers of the instance.
    metrics_dir: str
    #: Set when the parent replaces this worker (rolling restart): the instance stays up, so
    #: /readyz keeps answering for the instance while this worker drains.
    retiring: bool = False


class AdoptingReactor:
    """The reactor, except that listening adopts an inherited, already listening socket.

    Everything else is the real reactor's. The inherited descriptor is closed once adopted
    (adoptStreamPort works on a duplicate of it).
    """

    def __init__(self, reactor: Any, fd: int, family: int) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = family

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _adopt(self, factory: Any) -> IListeningPort:
        port = self._reactor.adoptStreamPort(self._fd, self._family, factory)
        os.close(self._fd)
        port.__class__ = _one_accept_at_a_time(type(port))
        return port

    def listenTCP(self, port: int, factory: Factory, backlog: int = 50, interface: str = "") -> Any:  # noqa: N802
        """Adopt the shared TCP socket."""
        return self._adopt(factory)

    def listenSSL(  # noqa: N802 (Twisted's name)
        self,
        port: int,
        factory: Factory,
        contextFactory: Any,  # noqa: N803 (Twisted's name: SSL4ServerEndpoint passes it so)
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Adopt the shared TCP socket and speak TLS on it, as reactor.listenSSL does."""
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self._adopt(TLSMemoryBIOFactory(contextFactory, False, factory))

    def listenUNIX(self, address: str, factory: Factory, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        """Adopt the shared Unix socket (the parent created, and will remove, its file)."""
        return self._adopt(factory)

    def adoptStreamPort(self, fd: int, family: int, factory: Factory) -> Any:  # noqa: N802
        """systemd: endpoints: adopt the parent's socket, not the one systemd passed it."""
        return self._adopt(factory)


_ONE_ACCEPT: dict[type, type] = {}


def _one_accept_at_a_time(port_class: type) -> type:
    """port_class, accepting one connection each time the socket is readable.

    Twisted's Port accepts up to ``numberAccepts`` connections per wakeup (100 and growing),
    so the first worker to wake takes a whole burst (e.g. a client's pool of connections)
    and the others get none. Every worker is woken for every new connection; accepting one
    each leaves the rest of a burst to the others, as nginx does by default
    (``multi_accept off``).
    """
    made = _ONE_ACCEPT.get(port_class)
    if made is None:
        one = property(lambda self: 1, lambda self, value: None)
        made = type(f"OneAccept{port_class.__name__}", (port_class,), {"numberAccepts": one})
        _ONE_ACCEPT[port_class] = made
    return made


def scheme_of(description: str) -> str:
    """http or https, for the log line naming the listener's URL."""
    return "https" if description.startswith(("ssl:", "tls:")) else "http"


#: Seconds a worker waits for its producer's connection before it accepts connections anyway.
CONNECT_SECONDS = 10.0


def ready_to_serve(
    clients_started: Callable[[], Deferred[None]],
    connected: Callable[[], bool],
    clock: Any,
    timeout: float = CONNECT_SECONDS,
) -> Callable[[], Deferred[None]]:
    """When a worker may accept: its Kafka clients exist and its producer is connected.

    The other workers serve meanwhile, so a worker that starts (or replaces another) takes
    connections only once its /readyz would say ready: /readyz keeps answering for the
    instance. After timeout it accepts anyway (and /readyz says why it is not ready).
    """

    async def wait_connected() -> None:
        deadline = clock.seconds() + timeout
        while not connected() and clock.seconds() < deadline:
            await deferLater(clock, 0.05, lambda: None)

    def ready() -> Deferred[None]:
        return clients_started().addCallback(lambda _: Deferred.fromCoroutine(wait_connected()))

    return ready
