"""A real Tansu broker process, and flasfka built by build() on real loopback sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flasfka.app.broker import free_port, tansu_binary, tansu_command
from flasfka.app.build import Flasfka, build
from flasfka.app.config import Config
from flasfka.gateway import Gateway
from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until host:port accepts connections (for tools and tests, not the reactor)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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


def unique(prefix: str = "t") -> str:
    """A fresh topic or group name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Server:
    """flasfka as build() makes it, running in the test reactor on 127.0.0.1."""

    url: str
    service: Flasfka
    config: Config

    @property
    def gateway(self) -> Gateway:
        """The Gateway behind the routes."""
        return self.service.gateway

    async def stop(self) -> None:
        """Stop it as SIGTERM would (listener drains first, then Kafka)."""
        if self.service.running:
            await self.service.stopService()


async def start_server(config: Config, endpoint: str | None = None, scheme: str = "http") -> Server:
    """Start flasfka with config on a free loopback port (or on endpoint)."""
    from twisted.internet import reactor

    service = build(config, reactor, endpoint or "tcp:0:interface=127.0.0.1")
    service.startService()
    port = await service.listener._waitingForPort
    return Server(f"{scheme}://127.0.0.1:{port.getHost().port}", service, config)


def test_config(broker_address: str, **overrides: Any) -> Config:
    """The config tests run with, pointing at broker_address."""
    settings: dict[str, Any] = {
        "HOSTS": [broker_address],
        "CONSUMER_CONFIG": dict(TANSU_CONSUMER_SETTINGS),
        "CONSUMER_TIMEOUT": 0.5,
    }
    settings.update(overrides)
    return Config(**settings)


test_config.__test__ = False  # type: ignore[attr-defined]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for child processes (no config file unless asked for)."""
    env = {k: v for k, v in os.environ.items() if k != "FLASFKA_CONFIG"}
    env.update(extra)
    return env
