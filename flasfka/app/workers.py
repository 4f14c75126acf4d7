"""``--workers N``: the parent process binds the port and supervises N flasfka workers.

One flasfka process runs one reactor thread, so it uses one core. With WORKERS > 1 the process
that twistd, flasfka-serve or the .tac starts becomes a supervisor: it binds the listening
socket once (any endpoint string) and starts N workers (``python -m flasfka.app.worker``)
that each adopt that socket and accept connections from it directly, as in Twisted's
"sharing a listening port among processes" howto. The parent never touches a request.

Why one socket passed down, rather than SO_REUSEPORT (each worker binding its own): it works
for every endpoint (TCP, TLS, Unix sockets, systemd sockets, port 0), and a connection waiting
in the accept queue is never lost when a worker stops or dies, because the queue belongs to
the one socket the parent keeps open; with SO_REUSEPORT the kernel resets the connections
queued on the socket of a worker that closes, and a port bound by nobody refuses them.

The supervisor restarts a worker that dies (after a backoff, logged), forwards SIGTERM /
SIGINT (through the reactor's shutdown) to every worker and returns once all have drained,
and on SIGHUP replaces the workers one at a time: the replacement listens before the old one
is told to retire, so the port never stops accepting.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client.multiprocess import mark_process_dead
from twisted.application.service import Service
from twisted.internet import endpoints, error
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import flasfka
from flasfka.app.build import Flasfka, parse_endpoint, setup_kafka
from flasfka.app.config import Config
from flasfka.app.worker import EXIT_CONFIG, LISTEN_FD, READY_FD

log = Logger(namespace="flasfka.workers")

#: First and longest wait before a dead worker is started again.
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0
#: A worker that lived this long before dying is restarted after the first backoff again.
_HEALTHY_SECONDS = 30.0
#: Seconds a replacement (rolling restart) gets to listen.
_READY_SECONDS = 60.0


class _Refuse(Factory):
    """The parent's factory: it never accepts (its port does not read), so never builds."""

    noisy = False

    def buildProtocol(self, addr: Any) -> Protocol | None:  # noqa: N802 (Twisted's name)
        return None


class WorkerProcess(ProcessProtocol):
    """One worker as the parent sees it: its pid, when it listens, when it ended."""

    def __init__(self, worker_id: int, started: float) -> None:
        self.id = worker_id
        self.started = started
        self.pid: int | None = None
        self.exit_code: int | None = None
        self._ready: Deferred[bool] = Deferred()
        #: Fires with the exit status text once the process ended.
        self.ended: Deferred[str] = Deferred()

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        self.pid = self.transport.pid  # type: ignore[union-attr]

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if fd == READY_FD and b"ready" in data and not self._ready.called:
            self._ready.callback(True)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 (Twisted's name)
        value: Any = reason.value
        self.exit_code = getattr(value, "exitCode", None)
        if getattr(value, "signal", None):
            how = f"killed by signal {value.signal}"
        else:
            how = f"exit code {getattr(value, 'exitCode', '?')}"
        if not self._ready.called:
            self._ready.callback(False)
        self.ended.callback(how)

    @property
    def alive(self) -> bool:
        """Whether the process has not ended yet."""
        return not self.ended.called

    def ready(self) -> Deferred[bool]:
        """Fires True once the worker listens, False if it ended first."""
        d: Deferred[bool] = Deferred()

        def tell(ok: bool) -> bool:
            if not d.called:
                d.callback(ok)
            return ok

        self._ready.addCallback(tell)
        return d

    def signal(self, name: str) -> None:
        """Send the worker a signal (TERM, KILL), unless it has ended."""
        try:
            self.transport.signalProcess(name)  # type: ignore[union-attr]
        except error.ProcessExitedAlready:
            pass

    def retire(self) -> None:
        """Ask the worker to drain and exit while the instance keeps serving."""
        try:
            self.transport.writeToChild(0, b"retire\n")  # type: ignore[union-attr]
        except Exception:
            self.signal("TERM")


class WorkerSupervisor(Service):
    """Binds the port, runs `count` workers on it, restarts them, stops them all."""

    name = "workers"

    def __init__(
        self,
        reactor: Any,
        description: str,
        count: int,
        worker_args: list[str],
        grace: float,
        broker_ready: Deferred[None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._description = description
        self.count = count
        self._worker_args = worker_args
        #: A worker's stop: in-flight requests (grace), then the producer flush (grace).
        self._stop_seconds = 2 * grace + 10
        self._broker_ready = broker_ready
        self._port: Any = None
        self._listening: Deferred[Any] = succeed(None)
        #: The worker serving each id (a replacement takes its place once it listens).
        self.workers: dict[int, WorkerProcess] = {}
        self._backoff = dict.fromkeys(range(1, count + 1), _BACKOFF_FIRST)
        self._restarts: dict[int, Any] = {}
        self._stopping = False
        self._rolling = False
        self._bind_called = False
        #: Every worker process not ended yet (replacements and retiring ones included).
        self._alive: set[WorkerProcess] = set()
        self.metrics_dir, self._own_metrics_dir = _metrics_dir()

    # --- start ------------------------------------------------------------------------------

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted's name)
        """Bind the port now (twistd may drop privileges after this)."""
        super().privilegedStartService()
        self._bind_called = True
        endpoint = endpoints.serverFromString(self._reactor, self._description)
        self._listening = endpoint.listen(_Refuse()).addCallbacks(self._bound, self._not_bound)

    def _bound(self, port: Any) -> Any:
        port.stopReading()  # the workers accept; the parent only keeps the socket open
        self._port = port
        log.info(
            "flasfka parent (pid {pid}) listening on {description} for {count} workers",
            pid=os.getpid(),
            description=self._description,
            count=self.count,
        )
        return port

    def _not_bound(self, reason: Failure) -> None:
        log.critical(
            "cannot listen on {description}: {why}",
            description=self._description,
            why=reason.getErrorMessage(),
        )
        self._reactor.callLater(0, self._reactor.stop)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        """Start the workers once the port is bound (and the embedded broker listens)."""
        if not self._bind_called:  # flasfka-serve starts services without the privileged step
            self.privilegedStartService()
        super().startService()
        ready = self._listening
        if self._broker_ready is not None:
            ready = DeferredList([ready, self._broker_ready])
        ready.addCallback(lambda _: self._start_all())
        signal.signal(signal.SIGHUP, self._on_sighup)

    def _start_all(self) -> None:
        if self._port is None or not self.running:
            return
        for worker_id in range(1, self.count + 1):
            self.workers[worker_id] = self._spawn(worker_id)

    def _spawn(self, worker_id: int) -> WorkerProcess:
        worker = WorkerProcess(worker_id, self._reactor.seconds())
        argv = [sys.executable, "-m", "flasfka.app.worker", "--id", str(worker_id)]
        argv += ["--family", str(int(self._port.socket.family)), "--port", self._description]
        argv += ["--metrics-dir", self.metrics_dir, *self._worker_args]
        self._reactor.spawnProcess(
            worker,
            sys.executable,
            argv,
            env=_worker_env(self.metrics_dir),
            childFDs={0: "w", 1: 1, 2: 2, LISTEN_FD: self._port.fileno(), READY_FD: "r"},
        )
        log.info("worker {id} started (pid {pid})", id=worker_id, pid=worker.pid)
        self._alive.add(worker)
        worker.ended.addCallback(self._ended, worker)
        return worker

    # --- supervise --------------------------------------------------------------------------

    def _ended(self, how: str, worker: WorkerProcess) -> None:
        self._alive.discard(worker)
        if worker.pid is not None:
            mark_process_dead(worker.pid, self.metrics_dir)  # its gauges; counters stay
        if self._stopping or self.workers.get(worker.id) is not worker:
            log.info("worker {id} (pid {pid}) ended: {how}", id=worker.id, pid=worker.pid, how=how)
            return
        if worker.exit_code == EXIT_CONFIG:
            log.critical(
                "worker {id} cannot use the config (its error is above): stopping flasfka",
                id=worker.id,
            )
            self._reactor.callLater(0, self._reactor.stop)
            return
        lived = self._reactor.seconds() - worker.started
        if lived >= _HEALTHY_SECONDS:
            self._backoff[worker.id] = _BACKOFF_FIRST
        delay = self._backoff[worker.id]
        self._backoff[worker.id] = min(delay * 2, _BACKOFF_MAX)
        log.warn(
            "worker {id} (pid {pid}) died ({how}) after {lived:.1f} s; "
            "starting a new one in {delay:g} s",
            id=worker.id,
            pid=worker.pid,
            how=how,
            lived=lived,
            delay=delay,
        )
        self._restarts[worker.id] = self._reactor.callLater(delay, self._restart, worker)

    def _restart(self, dead: WorkerProcess) -> None:
        self._restarts.pop(dead.id, None)
        if not self._stopping and self.workers.get(dead.id) is dead:
            self.workers[dead.id] = self._spawn(dead.id)

    # --- rolling restart (SIGHUP) -----------------------------------------------------------

    def _on_sighup(self, number: int, frame: Any) -> None:
        self._reactor.callFromThread(self.rolling_restart)

    def rolling_restart(self) -> Deferred[None]:
        """Replace every worker, one at a time; each replacement listens before its
        predecessor is told to retire, so the port keeps accepting throughout."""
        if self._rolling or self._stopping or not self.running:
            log.info("rolling restart not started: one runs already, or flasfka is stopping")
            return succeed(None)
        return ensureDeferred(self._roll())

    async def _roll(self) -> None:
        self._rolling = True
        log.info("rolling restart of {count} workers", count=self.count)
        try:
            for worker_id in sorted(self.workers):
                if self._stopping:
                    return
                old = self.workers[worker_id]
                new = self._spawn(worker_id)
                timeout = self._reactor.callLater(_READY_SECONDS, new.signal, "KILL")
                ok = await new.ready()
                if timeout.active():
                    timeout.cancel()
                if not ok or self._stopping:
                    log.error(
                        "rolling restart stopped: the new worker {id} did not start listening",
                        id=worker_id,
                    )
                    new.signal("TERM")
                    return
                self.workers[worker_id] = new
                if old.alive:
                    old.retire()
                    await self._ended_within(old, self._stop_seconds)
            log.info("rolling restart done")
        finally:
            self._rolling = False

    # --- stop -------------------------------------------------------------------------------

    def _ended_within(self, worker: WorkerProcess, seconds: float) -> Deferred[Any]:
        """worker.ended, with SIGKILL after seconds."""
        if not worker.alive:
            return succeed(None)
        kill = self._reactor.callLater(seconds, self._kill, worker)
        done: Deferred[Any] = Deferred()

        def ended(how: str) -> str:
            if kill.active():
                kill.cancel()
            done.callback(None)
            return how

        worker.ended.addCallback(ended)
        return done

    def _kill(self, worker: WorkerProcess) -> None:
        log.error(
            "worker {id} (pid {pid}) did not stop within {seconds:g} s: killing it",
            id=worker.id,
            pid=worker.pid,
            seconds=self._stop_seconds,
        )
        worker.signal("KILL")

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        """SIGTERM every worker (each drains as a single flasfka does); fire once all ended."""
        super().stopService()
        self._stopping = True
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        if self._port is not None:
            self._port.stopListening()  # the parent's copy; the workers close theirs
        live = [w for w in self._live_processes() if w.alive]
        for worker in live:
            worker.signal("TERM")
        if live:
            log.info("stopping {count} workers", count=len(live))
        d = DeferredList([self._ended_within(w, self._stop_seconds) for w in live])
        return d.addCallback(lambda _: self._cleanup())

    def _live_processes(self) -> list[WorkerProcess]:
        return sorted(self._alive, key=lambda w: (w.id, w.started))

    def _cleanup(self) -> None:
        log.info("all workers stopped")
        if self._own_metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)


def _metrics_dir() -> tuple[str, bool]:
    """$PROMETHEUS_MULTIPROC_DIR emptied, or a new temporary directory (owned: removed at stop)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):  # a previous run's counts
            os.remove(stale)
        return given, False
    return tempfile.mkdtemp(prefix="flasfka-metrics-"), True


def _worker_env(metrics_dir: str) -> dict[str, str]:
    """The parent's environment, with the metrics directory and this flasfka importable."""
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    source = str(Path(flasfka.__file__).resolve().parents[1])
    if Path(source).name in ("site-packages", "dist-packages"):
        return env  # installed: the same interpreter finds it
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = source if not path else f"{source}{os.pathsep}{path}"
    return env


def build_workers(
    config: Config,
    reactor: Any,
    endpoint: str,
    count: int,
    config_path: str | None,
    embedded_broker: bool = False,
    log_format: str | None = None,
    config_source: str = "defaults",
) -> Flasfka:
    """The parent of `count` workers on endpoint: [embedded broker], the supervisor."""
    top = Flasfka(log_format or config.LOG_FORMAT)
    worker_args = ["--log-format", top.log_format]
    if config_path:
        worker_args += ["--config", config_path]
    config, broker = setup_kafka(top, config, reactor, embedded_broker, config_source)
    broker_ready = None
    if broker is not None:
        broker_ready = broker.ready
        worker_args += ["--broker", broker.address]
    parse_endpoint(reactor, endpoint)  # a bad --port is refused here, not by every worker
    supervisor = WorkerSupervisor(
        reactor, endpoint, count, worker_args, config.SHUTDOWN_GRACE, broker_ready
    )
    supervisor.setServiceParent(top)
    top.supervisor = supervisor  # type: ignore[attr-defined]
    return top


__all__ = ["WorkerProcess", "WorkerSupervisor", "build_workers"]
