"""/openapi.json against the running server: schemathesis generates requests from the spec
and checks every answer against it (no 5xx, statuses, headers and bodies as described)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest_twisted
import treq
from twisted.internet import threads

from flasfka.http.routes import ROUTES
from tests.support.servers import unique

ST = Path(sys.executable).parent / "st"


def run_schemathesis(url: str) -> subprocess.CompletedProcess[str]:
    """schemathesis's CLI over the whole spec, bounded in examples and time (thread only)."""
    command = [
        str(ST),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--max-time",
        "90",
        "--request-timeout",
        "20",
        "--seed",
        "20261201",
        "--generation-database",
        "none",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest_twisted.ensureDeferred
async def test_every_route_is_in_the_spec(server):
    spec = await (await treq.get(f"{server.url}/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert operations == {route.name for route in ROUTES}
    fetch = spec["paths"]["/{topic}/"]["get"]
    limit = next(p for p in fetch["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == server.config.CONSUMER_MAX_LIMIT


@pytest_twisted.ensureDeferred
async def test_the_server_conforms_to_its_spec(make_server):
    # A first GET on a new group waits for the join; schemathesis makes a new group per
    # example, so the join is bounded short and idle members expire quickly.
    # A default group of its own: its members on every generated topic would keep the shared
    # default group rebalancing for the tests that run after this one.
    running = await make_server(
        CONSUMER_JOIN_TIMEOUT=1.0,
        MAX_CONSUMERS=500,
        CONSUMER_IDLE_TIMEOUT=5.0,
        DEFAULT_GROUP=unique("schemathesis"),
    )
    result = await threads.deferToThread(run_schemathesis, running.url)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout, result.stdout[-2000:]
    health = await treq.get(f"{running.url}/healthz")
    assert health.code == 200
