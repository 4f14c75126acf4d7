"""twistd wiring: command-line options and makeService, over build()."""

from __future__ import annotations

from typing import Any

from twisted.python import usage

import twisted
from flasfka import __version__
from flasfka.app.build import BuildError, Flasfka, build
from flasfka.app.config import ConfigError, load_config, worker_count
from flasfka.app.logs import LOG_FORMATS


class Options(usage.Options):
    """flasfka's options, shared by twistd, flasfka-serve and the .tac."""

    synopsis = "[options]"
    longdesc = "HTTP gateway to Kafka: POST /{topic}/ to produce, GET /{topic}/ to consume."
    optParameters = [  # noqa: N815 (Twisted's name)
        ["port", "p", "5000", "Port number, or a Twisted endpoint string (e.g. tcp:5000, ssl:...)"],
        ["interface", "i", "127.0.0.1", "Interface a plain port number listens on"],
        ["config", "c", None, "Config file (a Python file); default: $FLASFKA_CONFIG"],
        ["log-format", None, None, "Log output: text or json (default: LOG_FORMAT of the config)"],
        [
            "workers",
            "w",
            None,
            "Worker processes sharing the port: N or auto, one per CPU (default: WORKERS of "
            "the config, 1)",
        ],
    ]
    optFlags = [  # noqa: N815 (Twisted's name)
        ["embedded-broker", "e", "Start a memory-only Tansu broker on loopback and use it"],
    ]

    def opt_version(self) -> None:
        """Display flasfka's version (and Twisted's) and exit."""
        print(f"flasfka {__version__} (Twisted {twisted.__version__})")
        raise SystemExit(0)

    def postOptions(self) -> None:  # noqa: N802 (Twisted's name)
        """Turn a bare port number into an endpoint string."""
        if self["log-format"] not in (None, *LOG_FORMATS):
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        workers = self["workers"]
        if workers is not None and workers != "auto":
            if not workers.isdigit() or int(workers) < 1:
                raise usage.UsageError("--workers must be a number >= 1 or auto")
            self["workers"] = int(workers)
        port = self["port"]
        if port.isdigit():
            self["endpoint"] = f"tcp:{int(port)}:interface={self['interface']}"
        else:
            self["endpoint"] = port


def options_from(argv: list[str], who: str = "flasfka") -> Options:
    """Options parsed from argv; a bad one ends the process with one line (the .tac)."""
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        raise SystemExit(f"{who}: {e}") from None
    return options


def makeService(options: Options, reactor: Any = None) -> Flasfka:  # noqa: N802
    """twistd's entry (the plugin, the .tac): service_from, a config or build error ending
    the process with one line (twistd would print a traceback of a UsageError here)."""
    try:
        return service_from(options, reactor)
    except usage.UsageError as e:
        raise SystemExit(f"flasfka: {e}") from None


def service_from(options: Options, reactor: Any = None) -> Flasfka:
    """Build flasfka from the options: [embedded broker], the Kafka side, the listener.

    With more than one worker (--workers, WORKERS), the parent of the workers instead.
    Raises UsageError for a config or build error.
    """
    if reactor is None:
        from twisted.internet import reactor  # twistd's reactor, installed by now
    try:
        config = load_config(options["config"])
    except ConfigError as e:
        raise usage.UsageError(f"config error: {e}") from None
    workers = worker_count(options["workers"] if options["workers"] is not None else config.WORKERS)
    try:
        if workers > 1:
            from flasfka.app.workers import build_workers

            return build_workers(
                config,
                reactor,
                options["endpoint"],
                workers,
                options["config"],
                embedded_broker=bool(options["embedded-broker"]),
                log_format=options["log-format"],
                config_source=options["config"] or "defaults",
            )
        return build(
            config,
            reactor,
            options["endpoint"],
            embedded_broker=bool(options["embedded-broker"]),
            log_format=options["log-format"],
            config_source=options["config"] or "defaults",
        )
    except BuildError as e:
        raise usage.UsageError(str(e)) from None
