"""Fixtures: a real nats-server per test on a free loopback port, in a temporary home
(`deployment`, `gateway`), or the in-memory twin of NATS for the fast tier
(`twin_deployment`, `twin_gateway`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import sqlalchemy as sa
from nats.aio.client import Client

from broker.home import Home
from broker.nats.config import ADMIN, inbox_prefix
from broker.nats.server import NatsServer, free_loopback_ports
from broker.nats.tls import client_context
from broker.nats.twin import MemoryNats
from broker.runtime import gateway_running, provision
from broker.sdk import AgencyClient
from broker.settings import Settings
from tests.twin import TwinDeployment


async def raw_nats(home: Home, user: str, **options: Any) -> Client:
    """A bare nats-py connection as `user` (admin included), over the home's TLS: for
    tests that must send what the SDK never would."""
    creds = home.admin_credentials() if user == ADMIN else home.credentials(user)
    login = {"user": creds.user, "password": creds.password.get_secret_value()}
    return await nats.connect(
        home.nats_url,
        **({} if creds.cert else login),
        tls=client_context(creds.ca, creds.cert, creds.key) if creds.ca else None,
        inbox_prefix=inbox_prefix(user).encode(),
        **options,
    )


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


@contextlib.asynccontextmanager
async def started_deployment(
    tmp_path: Path, *, mutual_tls: bool = False
) -> AsyncIterator[Deployment]:
    """A home with keys and NATS config, its nats-server running and its streams provisioned
    with the admin identity (no gateway yet); the server is stopped afterwards."""
    home = Home(tmp_path / "home")
    port = free_port()
    home.init(port, mutual_tls=mutual_tls)
    server = NatsServer(home.nats_conf, port, tmp_path / "nats.log")
    await server.start()
    dep = Deployment(home, port, Settings(home=home.path, ack_wait_s=3.0), server, tmp_path)
    try:
        await provision(dep.settings)
        yield dep
    finally:
        await dep.server.stop()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """A provisioned deployment with its nats-server running (no gateway yet)."""
    async with started_deployment(tmp_path) as dep:
        yield dep


@pytest.fixture
async def gateway(deployment: Deployment) -> AsyncIterator[object]:
    """The policy gateway running in this event loop against the deployment."""
    stop = asyncio.Event()
    async with gateway_running(deployment.settings, stop) as gw:
        yield gw


@pytest.fixture(scope="session")
def _twin_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home's keys and config, made once (key and password generation take a second)."""
    home = Home(tmp_path_factory.mktemp("twin") / "home")
    home.init(free_port())
    return home.path


@pytest.fixture
def twin_deployment(tmp_path: Path, _twin_home_template: Path) -> TwinDeployment:
    """A home with keys on the in-memory twin of NATS (no server, no gateway yet): a copy
    of one template home, with its own empty database. Its NATS URL names a port nobody
    listens on, so nothing can reach a real NATS by mistake."""
    home = Home(tmp_path / "home")
    shutil.copytree(_twin_home_template, home.path)
    template = Home(_twin_home_template)  # and the embedded agencies' homes beside it
    shutil.copytree(template.agencies_path, home.agencies_path)
    shutil.copytree(template.signer_path, home.signer_path)  # the log key, kept apart
    settings = Settings(home=home.path, ack_wait_s=3.0, replay_window_s=300.0)
    return TwinDeployment(home, settings, MemoryNats(), tmp_path)


@pytest.fixture
async def twin_gateway(twin_deployment: TwinDeployment) -> AsyncIterator[object]:
    """The policy gateway, checkpointer and alert flow on the twin, in this event loop."""
    async with twin_deployment.gateway() as gw:
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


PG_URL = os.environ.get("S284_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        with sa.create_engine(PG_URL).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return False
    return True


def require_pg() -> None:
    """PostgreSQL at S284_TEST_PG_URL, or skip; under CI (whose machine has it) a failure."""
    if not _pg_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {PG_URL} (required when CI is set)")
        pytest.skip("PostgreSQL not reachable at S284_TEST_PG_URL")


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema (dropped afterwards); its SQLAlchemy URL."""
    require_pg()
    schema = f"s284_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """An empty audit database: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    with pg_schema() as url:
        yield url


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("broker never became ready")


@pytest.fixture
def running(tmp_path):
    """`s284 up` as a user starts it, on free ports in tmp_path/home; stopped afterwards."""
    home = tmp_path / "home"
    http = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "up",
            "--home",
            str(home),
            "--nats-port",
            str(free_port()),
            "--http-port",
            str(http),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{http}", proc)
        yield home, proc, http
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
