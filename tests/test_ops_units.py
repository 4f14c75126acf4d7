"""Unit tests of the operations pieces that need no broker: routes, log lines, wiring."""

from __future__ import annotations

import json

import pytest
from twisted.application.service import Application
from twisted.logger import ILogObserver, LogLevel
from twisted.python import usage

from flasfka.logs import event_as_json_line
from flasfka.metrics import GatewayMetrics, route_of
from flasfka.tap import Options, makeService


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
        (b"GET", b"/", "other"),
    ],
)
def test_route_labels_never_hold_a_topic_name(method, path, route):
    assert route_of(method, path) == route


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
        metrics.request_done(f"M{i}".encode(), f"/t{i}/k{i}/".encode(), 405, 0.001)
    metrics.request_done(b"GET", b"/t/", 200, 0.002)
    text = metrics.render().decode()
    assert (
        'flasfka_http_requests_total{method="other",route="/{topic}/{group}/",status="405"} 50.0'
        in text
    )
    assert 'flasfka_http_requests_total{method="GET",route="/{topic}/",status="200"} 1.0' in text
    assert "t1" not in text and "M1" not in text
