"""The embedded broker's lifecycle without processes: a fake reactor, a fake Tansu transport.

How it stops (SIGINT, SIGKILL only after a bounded wait, an info line), and what an exit
nobody asked for does (an error naming how it ended and the data loss, the reactor stopped,
flasfka-serve's exit status), whatever the timing of a shutdown.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure

from flasfka.app.broker import (
    _START_SECONDS,
    _STOP_SECONDS,
    EmbeddedBroker,
    child_command,
    exit_description,
    lost_broker,
    tansu_command,
)


class FakeTansu:
    """The transport of a spawned Tansu: records signals, refuses them once it is gone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []
        self.gone = False

    def signalProcess(self, name: str) -> None:  # noqa: N802 (Twisted's name)
        if self.gone:
            raise error.ProcessExitedAlready()
        self.signals.append(name)


class FakeReactor(MemoryReactorClock):
    """A clock that spawns FakeTansus and whose stop() refuses a second call, as Twisted's."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, str, list[str], FakeTansu]] = []
        self.stopping = False

    def spawnProcess(self, proto: Any, executable: str, args: list[str], env: Any = None) -> Any:  # noqa: N802
        transport = FakeTansu(4242)
        proto.makeConnection(transport)
        self.spawned.append((proto, executable, args, transport))
        return transport

    def stop(self) -> None:
        if self.stopping:
            raise error.ReactorNotRunning("Can't stop reactor that isn't running.")
        self.stopping = True


def started() -> tuple[FakeReactor, EmbeddedBroker, MultiService]:
    reactor = FakeReactor()
    top = MultiService()
    broker = EmbeddedBroker(reactor, 9099, "/opt/tansu")
    broker.setServiceParent(top)
    top.startService()
    return reactor, broker, top


def end(reactor: FakeReactor, reason: BaseException) -> None:
    """Tansu exits and is reaped: Twisted calls processEnded."""
    proto, _, _, transport = reactor.spawned[-1]
    transport.gone = True
    proto.processEnded(Failure(reason))


def lines(events: list[dict], level: LogLevel) -> list[str]:
    return [formatEvent(e) for e in events if e["log_level"] == level]


def test_tansu_is_spawned_behind_the_setup_that_gives_it_a_group_of_its_own():
    reactor, broker, _ = started()
    _, executable, args, _ = reactor.spawned[0]
    assert executable == sys.executable
    assert args[:4] == [sys.executable, "-I", "-S", "-c"]
    assert "os.setpgid(0, 0)" in args[4]
    assert args[5] == str(os.getpid())
    assert args[6:] == tansu_command("/opt/tansu", 9099)
    assert broker.pid == 4242
    assert child_command("/opt/tansu", 9099) == args


def test_stop_sends_sigint_and_logs_the_stop_at_info():
    reactor, broker, top = started()
    with capturedLogs() as events:
        stopped = top.stopService()
        _, _, _, transport = reactor.spawned[0]
        assert transport.signals == ["INT"]
        assert not stopped.called  # it waits for Tansu to exit
        end(reactor, error.ProcessDone(0))
    assert stopped.called
    assert lines(events, LogLevel.info) == ["embedded Tansu broker stopped (exit code 0)"]
    assert not lines(events, LogLevel.warn) and not lines(events, LogLevel.error)
    assert reactor.getDelayedCalls() == []  # the SIGKILL fallback was cancelled
    assert not reactor.stopping and broker.lost is None and lost_broker(top) is None


def test_sigkill_is_only_a_bounded_fallback():
    reactor, _, top = started()
    _, _, _, transport = reactor.spawned[0]
    with capturedLogs() as events:
        stopped = top.stopService()
        reactor.advance(_STOP_SECONDS - 0.1)
        assert transport.signals == ["INT"]
        reactor.advance(0.1)
        assert transport.signals == ["INT", "KILL"]
        assert not stopped.called
        end(reactor, error.ProcessTerminated(signal=9))
    assert stopped.called
    assert lines(events, LogLevel.warn) == [
        f"embedded Tansu broker still running {_STOP_SECONDS:g} s after SIGINT: killing it",
        "embedded Tansu broker stopped: signal 9 (SIGKILL)",
    ]
    assert not reactor.stopping


@pytest.mark.parametrize(
    "reason, how",
    [
        (error.ProcessTerminated(signal=9), "signal 9 (SIGKILL)"),
        (error.ProcessTerminated(exitCode=101), "exit code 101"),
        (error.ProcessDone(0), "exit code 0"),  # Tansu's answer to a SIGTERM by hand
    ],
)
def test_an_exit_nobody_asked_for_is_an_error_and_stops_flasfka(reason, how):
    reactor, broker, top = started()
    with capturedLogs() as events:
        end(reactor, reason)
    assert reactor.stopping
    assert broker.lost == how and lost_broker(top) == how
    [line] = lines(events, LogLevel.error)
    assert f"embedded Tansu broker (pid 4242) exited unexpectedly with {how}" in line
    assert "all of which are lost" in line
    # The shutdown that follows has nothing left to signal.
    stopped = top.stopService()
    assert stopped.called and reactor.spawned[0][3].signals == []


def test_an_exit_during_flasfkas_shutdown_is_a_warning_only():
    """Say systemd signalled the whole cgroup: flasfka stops anyway, with a clean status."""
    reactor, broker, top = started()
    reactor.stop()  # the shutdown began; the broker is stopped last
    with capturedLogs() as events:
        end(reactor, error.ProcessDone(0))
    assert not lines(events, LogLevel.error)
    [line] = lines(events, LogLevel.warn)
    assert "exited with exit code 0 during flasfka's shutdown" in line
    assert broker.lost is None and lost_broker(top) is None
    assert top.stopService().called


def refuse(reactor: FakeReactor) -> None:
    """The pending connection to Tansu's port is refused."""
    _, _, factory, _, _ = reactor.tcpClients.pop()
    factory.clientConnectionFailed(
        reactor.connectors.pop(), Failure(error.ConnectionRefusedError())
    )


def test_a_broker_that_dies_before_it_listens_never_reports_ready():
    reactor, broker, _ = started()
    refuse(reactor)
    assert len(reactor.getDelayedCalls()) == 1  # not listening yet: tried again soon
    reactor.advance(0.1)
    with capturedLogs() as events:
        end(reactor, error.ProcessTerminated(exitCode=1))
        refuse(reactor)
        reactor.advance(_START_SECONDS + 1)
    assert reactor.getDelayedCalls() == [] and reactor.tcpClients == []  # no more tries
    assert not broker.ready.called  # the Kafka clients never start against a dead port
    assert reactor.stopping
    [line] = lines(events, LogLevel.error)  # not also "not listening after 30 s"
    assert "exited unexpectedly with exit code 1" in line


def test_no_broker_means_nothing_lost():
    assert lost_broker(MultiService()) is None


def test_exit_description():
    assert exit_description(Failure(error.ProcessDone(0))) == "exit code 0"
    assert exit_description(Failure(error.ProcessTerminated(exitCode=2))) == "exit code 2"
    terminated = Failure(error.ProcessTerminated(signal=15))
    assert exit_description(terminated) == "signal 15 (SIGTERM)"
    assert exit_description(Failure(error.ProcessTerminated(signal=99))) == "signal 99"
