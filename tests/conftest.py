"""Fixtures: a real Tansu broker, and flasfka servers built by build() on loopback sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.support.servers import Broker, Server, start_server, test_config, unique


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One Tansu broker for the whole session."""
    running = Broker()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def server(broker: Broker) -> Iterator[Server]:
    """One flasfka on the session broker, shared by tests that use their own topics."""
    config = test_config(broker.address)
    running = pytest_twisted.blockon(defer.ensureDeferred(start_server(config)))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.stop()))


@pytest.fixture
def make_server(broker: Broker) -> Iterator[Callable[..., Any]]:
    """Start flasfka servers with config overrides; they are stopped after the test."""
    started: list[Server] = []

    async def make(**overrides: Any) -> Server:
        overrides.setdefault("HOSTS", [broker.address])
        # A default group of its own: every server of the session shares the broker, and one
        # group id with members on every topic the suite ever read makes late joins slow.
        overrides.setdefault("DEFAULT_GROUP", unique("default"))
        running = await start_server(test_config(broker.address, **overrides))
        started.append(running)
        return running

    yield make
    for running in started:
        pytest_twisted.blockon(defer.ensureDeferred(running.stop()))


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A Tansu of the test's own, which it may stop and restart (on the same port)."""
    running = Broker()
    running.start()
    yield running
    running.stop()
