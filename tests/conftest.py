"""Fixtures: a real nats-server per test on a free loopback port, in a temporary home."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.home import Home
from broker.natsserver import NatsServer, free_loopback_ports
from broker.runtime import gateway_running
from broker.sdk import AgencyClient
from broker.settings import Settings


def free_port() -> int:
    return free_loopback_ports(1)[0]


@dataclass
class Deployment:
    home: Home
    port: int
    settings: Settings
    server: NatsServer
    tmp: Path

    async def restart_nats(self) -> None:
        await self.server.stop()
        self.server = NatsServer(self.home.nats_conf, self.port, self.tmp / "nats.log")
        await self.server.start()

    async def client(self, agency: str) -> AgencyClient:
        return await AgencyClient.from_home(self.home.path, agency)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """A home with keys and NATS config, and its nats-server running (no gateway yet)."""
    home = Home(tmp_path / "home")
    port = free_port()
    home.init(port)
    server = NatsServer(home.nats_conf, port, tmp_path / "nats.log")
    await server.start()
    settings = Settings(home=home.path, ack_wait_s=3.0, replay_window_s=300.0)
    dep = Deployment(home, port, settings, server, tmp_path)
    try:
        yield dep
    finally:
        await dep.server.stop()


@pytest.fixture
async def gateway(deployment: Deployment) -> AsyncIterator[object]:
    """The policy gateway running in this event loop against the deployment."""
    stop = asyncio.Event()
    async with gateway_running(deployment.settings, stop) as gw:
        yield gw


def s284(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a user would."""
    return subprocess.run(  # noqa: PLW1510 - callers assert on returncode
        [sys.executable, "-m", "broker.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def cli() -> Iterator[object]:
    yield s284
