"""One worker process of ``--workers N``: flasfka on the listening socket the parent passed it.

Started by flasfka.app.workers (``python -m flasfka.app.worker ...``), never by hand. The
worker builds flasfka with build() as a single process would, with three differences:
its endpoint adopts the inherited socket (flasfka.app.sharing), its metrics go to the
instance's multiprocess directory, and its log lines and responses carry its id.

Talking to the parent, in file descriptors it set up:
- fd 3 (LISTEN_FD): the listening socket;
- fd 4 (READY_FD): the worker writes ``ready`` once it listens, then closes it;
- fd 0: the parent's pipe: ``retire`` means "drain and exit, a replacement serves already"
  (rolling restart); end of file means the parent is gone, so the worker stops too.
SIGTERM and SIGINT stop the worker as they stop a single flasfka process (drain, commit,
leave groups, flush); a second one while stopping is ignored.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

#: The child file descriptors the parent maps (see the module docstring).
LISTEN_FD = 3
READY_FD = 4
#: A worker's exit code when the config cannot be used: restarting it cannot help.
EXIT_CONFIG = 78


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The worker's command line, as flasfka.app.workers writes it."""
    parser = argparse.ArgumentParser(prog="python -m flasfka.app.worker")
    parser.add_argument("--id", type=int, required=True, help="worker id, 1..WORKERS")
    parser.add_argument("--family", type=int, required=True, help="address family of fd 3")
    parser.add_argument("--port", required=True, help="the endpoint string the parent bound")
    parser.add_argument("--metrics-dir", required=True, help="PROMETHEUS_MULTIPROC_DIR")
    parser.add_argument("--config", default=None, help="config file (else $FLASFKA_CONFIG)")
    parser.add_argument("--log-format", default=None)
    parser.add_argument("--broker", default=None, help="the parent's embedded broker host:port")
    return parser.parse_args(argv)


@implementer(IReadDescriptor)
class _ParentPipe:
    """Reads the parent's pipe on fd 0 in the reactor: commands, and the parent's death."""

    def __init__(self, on_retire: Any, on_parent_gone: Any) -> None:
        self._on_retire = on_retire
        self._on_parent_gone = on_parent_gone
        self._buffer = b""

    def fileno(self) -> int:
        return 0

    def logPrefix(self) -> str:  # noqa: N802 (Twisted's name)
        return "parent-pipe"

    def doRead(self) -> Any:  # noqa: N802 (Twisted's name)
        from twisted.internet import main

        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return None
        if not data:
            return main.CONNECTION_DONE
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.strip() == b"retire":
                self._on_retire()
        return None

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 (Twisted's name)
        self._on_parent_gone()


def main(argv: list[str] | None = None) -> None:
    """Build flasfka on the inherited socket and run it until told to stop."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Before prometheus_client is imported: it picks its multiprocess mode then.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = args.metrics_dir

    from twisted.internet import fdesc
    from twisted.internet import reactor as _reactor
    from twisted.logger import Logger, globalLogBeginner

    from flasfka.app.build import BuildError, build, embedded_config
    from flasfka.app.config import ConfigError, load_config
    from flasfka.app.logs import stdout_observer, worker_observer
    from flasfka.app.sharing import AdoptingReactor, WorkerIdentity

    reactor: Any = _reactor
    log = Logger(namespace="flasfka.worker")
    try:
        config = load_config(args.config)
        if args.broker:
            config = embedded_config(config, args.broker)
        identity = WorkerIdentity(args.id, args.metrics_dir)
        service = build(
            config,
            reactor,
            args.port,
            log_format=args.log_format,
            config_source=args.config or "defaults",
            worker=identity,
            listen_reactor=AdoptingReactor(reactor, LISTEN_FD, args.family),
        )
    except (ConfigError, BuildError) as e:
        print(f"flasfka worker {args.id}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None
    globalLogBeginner.beginLoggingTo(
        [worker_observer(stdout_observer(service.log_format), args.id)],
        redirectStandardIO=False,
    )

    stopping: list[str] = []

    def stop(why: str) -> None:
        if stopping:
            return
        stopping.append(why)
        log.info("worker {id} (pid {pid}) stopping: {why}", id=args.id, pid=os.getpid(), why=why)
        reactor.stop()

    def retire() -> None:
        identity.retiring = True
        stop("replaced by a new worker")

    def on_signal(number: int, frame: Any) -> None:
        reactor.callFromThread(stop, signal.Signals(number).name)

    def tell_parent(port: Any) -> Any:
        try:
            os.write(READY_FD, b"ready\n")
            os.close(READY_FD)
        except OSError:
            pass
        return port

    def not_listening(reason: Any) -> None:
        log.critical("worker {id} cannot listen: {why}", id=args.id, why=reason.getErrorMessage())
        exit_code.append(1)
        stop("no listening socket")

    exit_code: list[int] = []

    def started() -> None:
        # Twisted's own handlers are in place by now; these make a second signal harmless.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        fdesc.setNonBlocking(0)
        reactor.addReader(_ParentPipe(retire, lambda: stop("the parent process is gone")))
        service.startService()
        listening = service.listener._waitingForPort
        assert listening is not None  # set by startService
        listening.addCallbacks(tell_parent, not_listening)

    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if exit_code:
        raise SystemExit(exit_code[0])


if __name__ == "__main__":
    main()
