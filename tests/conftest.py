"""Fixtures: a real Tansu broker process, and flasfka servers on real loopback sockets."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from flasfka.broker import free_port, tansu_binary, tansu_command, wait_for_port
from flasfka.config import Config
from flasfka.service import KafkaService
from flasfka.web import FlasfkaWeb, make_site

#: librdkafka settings for test consumers: a Tansu group join takes ~session.timeout.ms / 2.
TEST_CONSUMER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


class Broker:
    """A memory-only Tansu broker on 127.0.0.1:port that tests can stop and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port for HOSTS."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it listens."""
        self.process = subprocess.Popen(
            tansu_command(tansu_binary(), self.port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Kill the broker (all its data is lost: it keeps everything in memory)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One Tansu broker for the whole session."""
    running = Broker()
    running.start()
    yield running
    running.stop()


def unique(prefix: str = "t") -> str:
    """A fresh topic or group name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Server:
    """A flasfka running in the test reactor, listening on 127.0.0.1."""

    url: str
    service: KafkaService
    port: Any

    async def stop(self) -> None:
        """Close the listener, then the Kafka side (consumers leave their groups)."""
        await self.port.stopListening()
        await self.service.stopService()


async def start_server(config: Config) -> Server:
    """Start flasfka with config on a free loopback port."""
    from twisted.internet import reactor

    service = KafkaService(reactor, config)
    service.startService()
    web = FlasfkaWeb(
        service.gateway, config.DEFAULT_GROUP, config.CONSUMER_LIMIT, config.CONSUMER_MAX_LIMIT
    )
    site = make_site(web.resource(), config.MAX_BODY_SIZE, config.HTTP_IDLE_TIMEOUT)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return Server(f"http://127.0.0.1:{port.getHost().port}", service, port)


def test_config(broker_address: str, **overrides: Any) -> Config:
    """The config tests run with, pointing at broker_address."""
    settings: dict[str, Any] = {
        "HOSTS": [broker_address],
        "CONSUMER_CONFIG": dict(TEST_CONSUMER_CONFIG),
        "CONSUMER_TIMEOUT": 0.5,
    }
    settings.update(overrides)
    return Config(**settings)


test_config.__test__ = False  # type: ignore[attr-defined]


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
        running = await start_server(test_config(broker.address, **overrides))
        started.append(running)
        return running

    yield make
    for running in started:
        pytest_twisted.blockon(defer.ensureDeferred(running.stop()))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for child processes (no config file unless asked for)."""
    env = {k: v for k, v in os.environ.items() if k != "FLASFKA_CONFIG"}
    env.update(extra)
    return env


@pytest.fixture
def own_broker():
    """A Tansu of the test's own, which it may stop and restart (on the same port)."""
    running = Broker()
    running.start()
    yield running
    running.stop()
