"""`s284 lab`: the production shape on this machine (three clustered nats-servers,
PostgreSQL, two gateway workers, the API, four agency homes) until Ctrl-C; `s284 lab
render`: a home's three-node cluster configuration, for a deployment to take."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.errors import ConfigError
from broker.home import Home
from broker.lab import (
    DEFAULT_DB_URL,
    Lab,
    LabOptions,
    render_cluster,
    render_for_hosts,
    run_api,
)
from broker.nats.cluster import ClusterNode, client_urls
from broker.sdk import stop_event_on_signals
from broker.settings import Settings


def _announce(lab: Lab) -> None:
    click.echo(f"s284 lab up (root {lab.options.root.resolve()})")
    for node, proc in zip(lab.nodes, lab.node_procs, strict=True):
        click.echo(
            f"  NATS {node.name}  {node.client_url}  pid {proc.pid}  (routes :{node.route_port}, "
            f"monitor http://127.0.0.1:{node.monitor_port}, log {proc.log_file})"
        )
    click.echo(f"  NATS URL    {lab.nats_url}")
    click.echo(f"  PostgreSQL  schema {lab.schema} in {lab.options.db_url}")
    for worker in lab.workers:
        click.echo(f"  {worker.name}   pid {worker.pid}  (log {worker.log_file})")
    if lab.api is not None:
        click.echo(f"  api         pid {lab.api.pid}  (log {lab.api.log_file})")
    click.echo(f"  HTTP API    {lab.http_url}  (/healthz, /readyz, /docs)")
    for proc in lab.agencies:
        click.echo(f"  {proc.name}  pid {proc.pid}  (its own home only; log {proc.log_file})")
    click.echo(f"  home        {lab.home.path}")
    click.echo(f"  agencies    {lab.home.agencies_path}  (each agency's own keys)")
    click.echo("Press Ctrl-C to stop everything.")


async def _run_lab(options: LabOptions) -> None:
    stop = stop_event_on_signals()
    async with Lab(options) as lab:
        _announce(lab)
        await stop.wait()
    click.echo("s284 lab stopped")


@click.group(invoke_without_command=True)
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the lab keeps its home, node stores and logs (default: a new var/lab-<time>).",
)
@click.option(
    "--db-url",
    default=DEFAULT_DB_URL,
    show_default=True,
    help="PostgreSQL server; the lab works in a schema of its own, dropped when it stops.",
)
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True)
@click.pass_context
def lab(ctx: click.Context, root: Path | None, db_url: str, workers: int) -> None:
    """Start the production shape on loopback and run it until Ctrl-C (or SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        return
    root = root or Path("var") / f"lab-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} is not empty; give the lab a new --root")
    asyncio.run(_run_lab(LabOptions(root, db_url, workers, agency_processes=True)))


@lab.command()
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", default=None,
              help="Home whose logins and TLS files the nodes use. Env: S284_HOME.")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--nodes", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--client-port", type=click.IntRange(1, 65000), default=4222, show_default=True,
              help="Node n listens for clients on this port + n-1, for routes on 6222 + n-1, "
              "for monitoring on 8222 + n-1.")  # fmt: skip
@click.option("--hosts", default=None, metavar="H1,H2,H3",
              help="Nodes on their own hosts instead of loopback: one host name per node "
              "(Compose: nats-1,nats-2,nats-3); each gets a certificate naming it.")  # fmt: skip
@click.option("--store-dir", type=click.Path(path_type=Path), default=Path("/data/jetstream"),
              show_default=True, help="With --hosts: JetStream's store on each node.")  # fmt: skip
@click.option("--tls-dir", type=click.Path(path_type=Path), default=Path("/etc/nats/tls"),
              show_default=True,
              help="With --hosts: where each node finds OUT/tls/ mounted.")  # fmt: skip
def render(
    home: Path | None,
    out: Path,
    nodes: int,
    client_port: int,
    hosts: str | None,
    store_dir: Path,
    tls_dir: Path,
) -> None:
    """Write one nats-server config per node (0600: it holds password hashes).

    \b
    s284 lab render --out DIR                      three nodes on loopback (the lab's)
    s284 lab render --out deploy/rendered --hosts nats-1,nats-2,nats-3 \\
        --tls-dir /run/secrets/nats_tls            Compose (deploy/compose.yaml)
    s284 lab render --out DIR --tls-dir /etc/nats/tls --hosts \\
        nats-0.nats-cluster.s284.svc,nats-1.nats-cluster.s284.svc,nats-2.nats-cluster.s284.svc
                                                   Kubernetes (deploy/k8s/)
    """
    the_home = Home(home or Settings().home)
    the_home.require()
    if hosts is not None:
        names = [h.strip() for h in hosts.split(",") if h.strip()]
        for path in render_for_hosts(the_home, names, out, store_dir, tls_dir):
            click.echo(f"wrote {path}")
        click.echo(f"wrote {out / 'tls'}: the CA and each node's certificate and key; mount it "
                   f"at {tls_dir}")  # fmt: skip
        return
    cluster = [
        ClusterNode(f"s284-{i + 1}", client_port + i, 6222 + i,
                    (out / f"node-{i + 1}" / "jetstream").resolve(), monitor_port=8222 + i)
        for i in range(nodes)
    ]  # fmt: skip
    for path in render_cluster(the_home, cluster, out):
        click.echo(f"wrote {path}")
    click.echo(f"clients connect to {client_urls(cluster)}  (S284_NATS_URL)")


@lab.command(hidden=True)
@click.option("--port", type=click.IntRange(1, 65535), required=True)
def api(port: int) -> None:
    """The lab's HTTP API process (settings from S284_* like `s284 gateway`)."""
    asyncio.run(run_api(Settings(), port))
    sys.exit(0)
