"""--workers without processes: config and options, log lines, the supervisor on a Clock."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher
from twisted.python import usage
from twisted.python.failure import Failure

from flasfka.app.config import ConfigError, config_from_mapping, worker_count
from flasfka.app.logs import json_file_observer, text_file_observer, worker_observer
from flasfka.app.tap import Options
from flasfka.app.worker import EXIT_CONFIG, LISTEN_FD, READY_FD
from flasfka.app.workers import WorkerSupervisor


def test_workers_config_takes_a_number_or_auto():
    assert config_from_mapping({}, "f.py").WORKERS == 1
    assert config_from_mapping({"WORKERS": 3}, "f.py").WORKERS == 3
    assert config_from_mapping({"WORKERS": "auto"}, "f.py").WORKERS == "auto"
    for bad in (0, -1, "many", "2"):
        with pytest.raises(ConfigError, match="WORKERS must be a number >= 1 or 'auto'"):
            config_from_mapping({"WORKERS": bad}, "f.py")
    with pytest.raises(ConfigError, match="WORKERS must be of type"):
        config_from_mapping({"WORKERS": True}, "f.py")
    assert worker_count("auto") == (os.cpu_count() or 1)
    assert worker_count(4) == 4


def test_workers_option():
    for given, parsed in (("3", 3), ("auto", "auto")):
        options = Options()
        options.parseOptions(["--workers", given])
        assert options["workers"] == parsed
    options = Options()
    options.parseOptions([])
    assert options["workers"] is None  # the config decides
    for bad in ("0", "x", "-2"):
        with pytest.raises(usage.UsageError, match="--workers must be a number >= 1 or auto"):
            Options().parseOptions(["-w", bad])


def test_log_lines_name_the_worker():
    for make, check in (
        (text_file_observer, lambda out: "[worker 2 flasfka.test#info] hello 5" in out),
        (json_file_observer, lambda out: json.loads(out)["worker"] == 2),
    ):
        out = io.StringIO()
        publisher = LogPublisher(worker_observer(make(out), 2))
        Logger(namespace="flasfka.test", observer=publisher).info("hello {n}", n=5)
        assert check(out.getvalue()), out.getvalue()


class FakePort:
    def __init__(self) -> None:
        self.socket = socket.socket()
        self.reading = True
        self.listening = True

    def fileno(self) -> int:
        return self.socket.fileno()

    def stopReading(self) -> None:  # noqa: N802
        self.reading = False

    def stopListening(self) -> None:  # noqa: N802
        self.listening = False
        self.socket.close()


class FakeTransport:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []
        self.written: list[bytes] = []

    def signalProcess(self, name: str) -> None:  # noqa: N802
        self.signals.append(name)

    def writeToChild(self, fd: int, data: bytes) -> None:  # noqa: N802
        self.written.append(data)


class FakeReactor(Clock):
    """A Clock that binds FakePorts and records spawned processes."""

    def __init__(self) -> None:
        super().__init__()
        self.port = FakePort()
        self.spawned: list[tuple[Any, list[str], dict]] = []
        self.stopped = False

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:  # noqa: N802
        return self.port

    def spawnProcess(self, proto: Any, executable: str, args: list[str], env: dict, childFDs: dict):  # noqa: N802, N803
        transport = FakeTransport(1000 + len(self.spawned))
        self.spawned.append((proto, args, childFDs))
        proto.makeConnection(transport)
        return transport

    def callFromThread(self, f: Any, *args: Any) -> None:  # noqa: N802
        f(*args)

    def stop(self) -> None:
        self.stopped = True


def end(proto: Any, **how: Any) -> None:
    proto.processEnded(Failure(error.ProcessTerminated(**how)))


@pytest.fixture
def supervisor():
    reactor = FakeReactor()
    previous = signal.getsignal(signal.SIGHUP)
    running = WorkerSupervisor(reactor, "tcp:0:interface=127.0.0.1", 2, ["--x"], grace=1.0)
    running.startService()
    yield reactor, running
    signal.signal(signal.SIGHUP, previous)
    if running.running:
        running.stopService()
    reactor.port.socket.close()


def test_the_parent_binds_once_and_passes_the_socket_to_each_worker(supervisor):
    reactor, running = supervisor
    assert not reactor.port.reading  # the parent never accepts
    assert [args[args.index("--id") + 1] for _, args, _ in reactor.spawned] == ["1", "2"]
    for _, args, fds in reactor.spawned:
        assert args[1:3] == ["-m", "flasfka.app.worker"] and "--x" in args
        assert fds[LISTEN_FD] == reactor.port.fileno() and fds[READY_FD] == "r"
        assert fds[0] == "w"  # the worker stops if the parent is gone
        assert args[args.index("--metrics-dir") + 1] == running.metrics_dir


def test_a_dead_worker_is_restarted_with_a_growing_backoff(supervisor):
    reactor, running = supervisor
    delays = []
    for _ in range(4):
        before = len(reactor.spawned)
        end(running.workers[1], exitCode=None, signal=9)
        start = reactor.seconds()
        while len(reactor.spawned) == before:
            reactor.advance(0.25)
        delays.append(reactor.seconds() - start)
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert running.workers[2] is reactor.spawned[1][0]  # the other one was left alone
    reactor.advance(60)  # a worker that lived long is restarted after the first backoff
    before = len(reactor.spawned)
    end(running.workers[1], exitCode=1)
    reactor.advance(0.5)
    assert len(reactor.spawned) == before + 1


def test_stop_terminates_every_worker_and_kills_the_late_ones(supervisor):
    reactor, running = supervisor
    first, second = running.workers[1], running.workers[2]
    stopped = running.stopService()
    assert first.transport.signals == ["TERM"] and second.transport.signals == ["TERM"]
    assert not reactor.port.listening  # the parent's copy of the socket is closed at once
    end(first, exitCode=0)
    assert not stopped.called
    reactor.advance(2 * 1.0 + 10)  # twice the grace (requests, then the flush), plus margin
    assert second.transport.signals == ["TERM", "KILL"]
    end(second, exitCode=None, signal=9)
    assert stopped.called
    assert len(reactor.spawned) == 2  # nothing restarted while stopping
    assert not os.path.exists(running.metrics_dir)


def test_rolling_restart_replaces_one_worker_at_a_time(supervisor):
    reactor, running = supervisor
    old1, old2 = running.workers[1], running.workers[2]
    done = running.rolling_restart()
    new1 = reactor.spawned[2][0]
    assert len(reactor.spawned) == 3 and old1.transport.written == []  # old 1 serves on
    new1.childDataReceived(READY_FD, b"ready\n")
    assert old1.transport.written == [b"retire\n"] and running.workers[1] is new1
    assert len(reactor.spawned) == 3  # worker 2 waits until the old worker 1 has gone
    end(old1, exitCode=0)
    new2 = reactor.spawned[3][0]
    new2.childDataReceived(READY_FD, b"ready\n")
    end(old2, exitCode=0)
    assert done.called and running.workers == {1: new1, 2: new2}
    reactor.advance(10)
    assert len(reactor.spawned) == 4  # a retired worker is not restarted


def test_rolling_restart_stops_when_a_replacement_does_not_start(supervisor):
    reactor, running = supervisor
    old1 = running.workers[1]
    done = running.rolling_restart()
    end(reactor.spawned[2][0], exitCode=1)
    assert done.called and running.workers[1] is old1 and old1.transport.written == []


def test_a_worker_that_cannot_use_the_config_stops_flasfka_instead_of_restarting(supervisor):
    reactor, running = supervisor
    end(running.workers[2], exitCode=EXIT_CONFIG)
    reactor.advance(60)
    assert reactor.stopped and len(reactor.spawned) == 2
