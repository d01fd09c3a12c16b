"""The production shape on one machine, on loopback: three clustered nats-server processes,
PostgreSQL (a schema of the run's own), gateway workers as separate `s284 gateway`
processes sharing the one durable consumer, the HTTP API as its own process, and the four
agencies in their own homes (`<home>.agencies/<agency>`, each holding only its own keys,
connecting to every node).

`Lab` is an async context manager: everything it started, it stops on exit. The fault
tests and `s284 bench --lab` drive it; `s284 lab` runs it until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import audit
from broker.errors import ConfigError, TransportError
from broker.home import AGENCY_NAMES, MAP_AGENCY_NAMES, Home
from broker.lab.processes import Proc, s284_command, wait_http_ok
from broker.lab.render import loopback_nodes, render_cluster
from broker.nats.client import Connection
from broker.nats.cluster import ClusterNode, client_urls
from broker.nats.config import DIRECTORY_SUBJECT, STREAM_DIRECTORY
from broker.nats.server import free_loopback_ports, nats_server_binary
from broker.runtime import provision
from broker.settings import Settings

DEFAULT_DB_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class LabOptions:
    """`root`: where the lab keeps its home, node stores and logs. `db_url`: a PostgreSQL
    server (a schema named for the run is created in it, and dropped at the end unless
    `keep_schema`). `gateway_db_port`: the gateways reach the database on this loopback
    port instead (a proxy a fault test can cut)."""

    root: Path
    db_url: str = DEFAULT_DB_URL
    workers: int = 2
    nodes: int = 3
    ack_wait_s: float = 10.0
    gateway_db_port: int | None = None
    keep_schema: bool = False
    env: dict[str, str] = field(default_factory=dict)
    agency_processes: bool = False  # each agency's own `s284 inbox --follow` process


class Lab:
    """Start with `async with Lab(options) as lab:`; see the module docstring."""

    def __init__(self, options: LabOptions) -> None:
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]
        self.schema = f"s284_lab_{self.run_id}"
        self.home = Home(options.root / "home")
        self.cluster_dir = options.root / "cluster"
        self.nodes: list[ClusterNode] = []
        self.node_procs: list[Proc] = []
        self.workers: list[Proc] = []
        self.api: Proc | None = None
        self.agencies: list[Proc] = []
        self.db_url = ""
        self.http_port = free_loopback_ports(1)[0]
        self._schema_made = False

    @property
    def nats_url(self) -> str:
        return client_urls(self.nodes)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def settings(self) -> Settings:
        return Settings(
            home=self.home.path,
            nats_url=self.nats_url,
            db_url=self.db_url,
            ack_wait_s=self.options.ack_wait_s,
        )

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._database()
        self.home.init(free_loopback_ports(1)[0])  # keys, CA, logins; its one-node config unused
        self.nodes = loopback_nodes(self.cluster_dir, self.options.nodes)
        configs = render_cluster(self.home, self.nodes, self.cluster_dir)
        binary = str(nats_server_binary())
        self.node_procs = [
            Proc(
                node.name,
                [binary, "-c", str(conf)],
                self.options.root / "logs" / f"{node.name}.log",
            )
            for node, conf in zip(self.nodes, configs, strict=True)
        ]
        for index in range(len(self.nodes)):
            await self.start_node(index, wait=False)
        for index in range(len(self.nodes)):
            await self.wait_node(index)
        self._point_everyone_at_the_cluster()
        await self._provision()
        self.workers = [self._worker(i) for i in range(self.options.workers)]
        for worker in self.workers:
            await worker.start()
        self.api = Proc("api", s284_command("lab", "api", "--port", str(self.http_port)),
                        self.options.root / "logs" / "api.log", self._env())  # fmt: skip
        await self.api.start()
        await wait_http_ok(f"{self.http_url}/readyz", self.api)
        await self._wait_directory()
        if self.options.agency_processes:
            self.agencies = [self._agency(agency) for agency in MAP_AGENCY_NAMES]
            for proc in self.agencies:
                await proc.start()

    def _agency(self, agency: str) -> Proc:
        """An agency's system as its own process: it reads and confirms its deliveries with
        its own home only (its keys, its NATS login); the broker's home is not in its
        environment."""
        home = self.home.agency_home(agency).path
        command = s284_command("inbox", "--agency-home", str(home), "--follow", "--json")
        log_file = self.options.root / "logs" / f"agency-{agency}.log"
        return Proc(f"agency-{agency}", command, log_file, {"S284_HOME": str(home)})

    async def _provision(self, patience: float = 60.0) -> None:
        """R3 streams and consumers, as the admin. A cluster that has just started may still
        be electing its JetStream meta leader, and then the stream requests time out:
        provisioning is idempotent, so it is tried again until `patience` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            try:
                await provision(self.settings())
            except TransportError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(1.0)
            else:
                return

    async def _wait_directory(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Until a gateway has published the signed key directory: agencies need it."""
        conn = await Connection.connect(self.nats_url, self.home.admin_credentials(), "s284-lab")
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while await conn.last_message(STREAM_DIRECTORY, DIRECTORY_SUBJECT) is None:
                for worker in self.workers:
                    worker.check_alive()
                if loop.time() > deadline:
                    raise ConfigError(f"no gateway published the key directory in {timeout:.0f} s")
                await asyncio.sleep(0.2)
        finally:
            await conn.close()

    def _database(self) -> None:
        try:
            self.db_url = audit.create_schema(self.options.db_url, self.schema)
        except audit.StoreUnavailableError as exc:
            raise ConfigError(
                f"{exc}; pass --db-url postgresql+psycopg://USER@HOST:PORT/DB"
            ) from None
        self._schema_made = True

    def _point_everyone_at_the_cluster(self) -> None:
        """The home's recorded URL and each agency's connection name every node, so CLI
        commands and agency clients reconnect to another node when theirs goes away."""
        deployment = json.loads(self.home.deployment_path.read_text())
        deployment["nats_url"] = self.nats_url
        self.home.deployment_path.write_text(json.dumps(deployment, indent=2))
        key = json.loads(self.home.directory_public_path.read_text())
        for agency in AGENCY_NAMES:
            self.home.agency_home(agency).trust(self.nats_url, self.home.credentials(agency), key)

    def _env(self, node: str = "lab-api") -> dict[str, str]:
        return {
            "S284_HOME": str(self.home.path),
            "S284_NATS_URL": self.nats_url,
            "S284_DB_URL": self.db_url,
            "S284_ACK_WAIT_S": str(self.options.ack_wait_s),
            "S284_NODE": node,
            **self.options.env,
        }

    def _worker(self, index: int) -> Proc:
        env = self._env(f"gateway-{index + 1}")
        if self.options.gateway_db_port is not None:
            parts = urlsplit(self.db_url)
            netloc = f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{self.options.gateway_db_port}"
            env["S284_DB_URL"] = urlunsplit(parts._replace(netloc=netloc))
        log_file = self.options.root / "logs" / f"gateway-{index + 1}.log"
        return Proc(f"gateway-{index + 1}", s284_command("gateway"), log_file, env)

    async def start_node(self, index: int, *, wait: bool = True) -> None:
        await self.node_procs[index].start()
        if wait:
            await self.wait_node(index)

    async def wait_node(self, index: int) -> None:
        """Until the node says JetStream is current (/healthz: caught up with the meta group)."""
        node = self.nodes[index]
        url = f"http://127.0.0.1:{node.monitor_port}/healthz"
        await wait_http_ok(url, self.node_procs[index])

    async def kill_node(self, index: int) -> None:
        await self.node_procs[index].kill()

    async def restart_node(self, index: int) -> None:
        """A rolling upgrade's step: stop cleanly (SIGTERM), start, wait until current."""
        await self.node_procs[index].stop()
        await self.start_node(index)

    async def kill_worker(self, index: int) -> None:
        await self.workers[index].kill()

    async def start_worker(self, index: int) -> None:
        await self.workers[index].start()

    async def stop(self) -> None:
        """Everything this lab started, API and gateways first, then the nodes."""
        procs = [*self.agencies, *([self.api] if self.api else []), *self.workers]
        for proc in [*procs, *self.node_procs]:
            await proc.stop()
        if self._schema_made and not self.options.keep_schema:
            with contextlib.suppress(audit.StoreUnavailableError):
                audit.drop_schema(self.options.db_url, self.schema)
            self._schema_made = False
