"""Unit tests of the operations pieces that need no broker: routes, log lines, wiring."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger, LogLevel, textFileLogObserver
from twisted.python import usage

from flasfka.app.logs import event_as_json_line, text_file_observer
from flasfka.app.tap import Options, makeService
from flasfka.http.access_log import _text, log_access
from flasfka.http.routes import route_label
from flasfka.metrics import GatewayMetrics


class Written:
    """A text stream that keeps what is written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_text_lines_are_twisted_classic_lines_with_the_time_of_each_event():
    ours, twisteds = Written(), Written()
    observers = (text_file_observer(ours), textFileLogObserver(twisteds))
    times = (1_790_000_000.2, 1_790_000_000.9, 1_790_000_001.1, 1_790_003_600.0, None)
    for when in times:
        event = {
            "log_format": "at {when} {x!r}",
            "log_level": LogLevel.info,
            "log_namespace": "flasfka.t",
            "log_time": when,
            "when": when,
            "x": {"a": 1},
        }
        for observer in observers:
            observer(dict(event))
    assert ours.text == twisteds.text
    stamps = [line.split(" ")[0] for line in ours.text.splitlines()]
    assert len(stamps) == 5 and len(set(stamps[:4])) == 3  # three seconds, then "-"


class FinishedRequest:
    """What log_access reads from a finished request."""

    method = b"POST"
    uri = b"/orders/?a=\x1b[31m"
    code = 204
    sentLength = 0  # noqa: N815 (Twisted's name)

    def getClientAddress(self):  # noqa: N802
        return type("Peer", (), {"host": "10.0.0.7"})()


def test_an_access_line_reads_as_before_and_keeps_its_fields(monkeypatch):
    events = []
    monkeypatch.setattr(
        "flasfka.http.access_log.log", Logger(namespace="flasfka.access", observer=events.append)
    )
    log_access(FinishedRequest(), 0.0123)
    (event,) = events
    written = Written()
    textFileLogObserver(written)(event)
    assert written.text.endswith(
        ' [flasfka.access#info] 10.0.0.7 "POST /orders/?a=\\x1b[31m" 204 0 0.012s\n'
    )
    assert (event["client"], event["method"], event["path"]) == (
        "10.0.0.7",
        "POST",
        "/orders/?a=\\x1b[31m",
    )
    assert (event["status"], event["bytes"], event["duration"]) == (204, 0, 0.0123)
    assert json.loads(event_as_json_line(event))["message"] == (
        '10.0.0.7 "POST /orders/?a=\\x1b[31m" 204 0 0.012s'
    )


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        (b"GET", b"/healthz", "/healthz"),
        (b"GET", b"/readyz", "/readyz"),
        (b"GET", b"/metrics", "/metrics"),
        (b"GET", b"/healthz/", "/{topic}/"),
        (b"POST", b"/orders/", "/{topic}/"),
        (b"POST", b"/orders/a/b/", "/{topic}/{key}/"),
        (b"GET", b"/orders/g/", "/{topic}/{group}/"),
        (b"GET", b"/orders", "other"),
        (b"GET", b"/", "/"),
        (b"GET", b"/openapi.json", "/openapi.json"),
    ],
)
def test_route_labels_never_hold_a_topic_name(method, path, route):
    assert route_label(method, path) == route


def test_json_log_line_keeps_fields_and_survives_unencodable_ones():
    event = {
        "log_format": "{who} did {n} things",
        "log_level": LogLevel.warn,
        "log_namespace": "flasfka.test",
        "log_time": 0.0,
        "who": "me",
        "n": 3,
        "obj": object(),
    }
    record = json.loads(event_as_json_line(event))
    assert record["message"] == "me did 3 things"
    assert (record["level"], record["namespace"], record["who"], record["n"]) == (
        "warning",
        "flasfka.test",
        "me",
        3,
    )
    assert record["obj"].startswith("<object")
    assert record["time"] == "1970-01-01T00:00:00+00:00"
    huge = json.loads(event_as_json_line({**event, "n": 2**70}))
    assert set(huge) == {"time", "level", "namespace", "message"}


def test_log_format_option_is_checked():
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--log-format", "xml"])


@pytest.mark.parametrize(
    ("setting", "flag", "json_wanted"),
    [
        ("json", [], True),
        ("text", [], False),
        ("text", ["--log-format", "json"], True),
        ("json", ["--log-format", "text"], False),
    ],
)
def test_json_logging_reaches_twistd_through_the_application(tmp_path, setting, flag, json_wanted):
    config = tmp_path / "flasfka.conf.py"
    config.write_text(f"LOG_FORMAT = {setting!r}\n")
    options = Options()
    options.parseOptions(["--config", str(config), *flag])
    application = Application("flasfka")
    makeService(options).setServiceParent(application)
    observer = application.getComponent(ILogObserver, None)
    assert (observer is not None) == json_wanted


def test_request_metrics_keep_few_label_values_whatever_clients_send():
    metrics = GatewayMetrics()
    for i in range(50):
        method, path = f"M{i}".encode(), f"/t{i}/k{i}/".encode()
        metrics.request_done(route_label(method, path), method, 405, 0.001)
    metrics.request_done(route_label(b"GET", b"/t/"), b"GET", 200, 0.002)
    text = metrics.render().decode()
    assert (
        'flasfka_http_requests_total{method="other",route="/{topic}/{group}/",status="405"} 50.0'
        in text
    )
    assert 'flasfka_http_requests_total{method="GET",route="/{topic}/",status="200"} 1.0' in text
    assert "t1" not in text and "M1" not in text


@given(st.binary(max_size=64))
def test_request_bytes_reach_the_access_line_printable_and_unambiguous(raw):
    text = _text(raw)
    assert text.isascii() and text.isprintable()
    # Unescaping gives back the request's bytes (those over 0x7f as \x escapes).
    assert text.encode().decode("unicode_escape") == raw.decode("ascii", "backslashreplace")
    if raw.isascii() and raw.decode().isprintable() and b"\\" not in raw:
        assert text == raw.decode()
