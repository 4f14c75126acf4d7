"""`flasfka-serve`: run flasfka in the foreground, logging to stdout."""

from __future__ import annotations

import sys

from twisted.logger import Logger, globalLogBeginner
from twisted.python import usage

from flasfka.app.broker import lost_broker
from flasfka.app.logs import stdout_observer
from flasfka.app.tap import Options, service_from

log = Logger(namespace="flasfka")


class ServeOptions(Options):
    """flasfka's options with -h as a short form of --help."""

    synopsis = "flasfka-serve [options]"

    def opt_h(self) -> None:
        """Display this help and exit."""
        self.opt_help()


def main(argv: list[str] | None = None) -> None:
    """Parse options, start the services, run the reactor until SIGTERM/SIGINT.

    Exits with status 1 if the embedded broker died under flasfka (its data is lost; a
    supervisor restarting on failure starts both afresh).
    """
    options = ServeOptions()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        print(f"flasfka-serve: {e}\n{options}", file=sys.stderr)
        raise SystemExit(2) from None
    from twisted.internet import reactor

    try:
        service = service_from(options, reactor)
    except usage.UsageError as e:
        print(f"flasfka-serve: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    # Events logged so far are buffered by twisted.logger and written now.
    globalLogBeginner.beginLoggingTo(
        [stdout_observer(service.log_format)], redirectStandardIO=False
    )
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if lost_broker(service) is not None:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
