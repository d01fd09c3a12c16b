"""A home's NATS cluster configuration, written to files: one per node.

The logins are the home's (each NATS user's password, bcrypt-hashed again here: the home
keeps only the embedded server's config with the hashes in it), and so is the TLS CA and
server certificate, which names 127.0.0.1 and localhost: fit for the lab on loopback; a
cluster across machines needs certificates naming its hosts (deploy/nats/README.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import bcrypt

from broker.errors import ConfigError
from broker.home import Home
from broker.nats.cluster import ClusterNode, render_node
from broker.nats.config import ALL_USERS, ServerOptions
from broker.nats.server import free_loopback_ports
from broker.nats.tls import TlsFiles, issue_node_certificate

DEFAULT_NODES = 3
CLIENT_PORT, ROUTE_PORT, MONITOR_PORT = 4222, 6222, 8222  # each node on its own host


def loopback_nodes(out_dir: Path, count: int = DEFAULT_NODES) -> list[ClusterNode]:
    """`count` nodes on free loopback ports (client, route, monitoring), stores in out_dir."""
    ports = free_loopback_ports(3 * count)
    return [
        ClusterNode(
            f"s284-{i + 1}",
            ports[3 * i],
            ports[3 * i + 1],
            out_dir / f"node-{i + 1}" / "jetstream",
            monitor_port=ports[3 * i + 2],
        )
        for i in range(count)
    ]


def _hashes(home: Home) -> tuple[dict[str, str], bool]:
    """Every NATS user's password hash, and whether the home logs in by certificate."""
    logins = [home.credentials(user) for user in ALL_USERS] + [home.admin_credentials()]
    hashes = {
        creds.user: bcrypt.hashpw(
            creds.password.get_secret_value().encode(), bcrypt.gensalt(10, b"2a")
        ).decode()
        for creds in logins
    }
    return hashes, any(creds.cert is not None for creds in logins)


def render_cluster(home: Home, nodes: list[ClusterNode], out_dir: Path) -> list[Path]:
    """Write `node-<n>.conf` (0600: it holds password hashes) for every node; the paths."""
    hashes, mutual_tls = _hashes(home)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for node in nodes:
        node.store_dir.mkdir(parents=True, exist_ok=True)
        text = render_node(node, nodes, hashes, home.tls_files, ServerOptions(mutual_tls))
        paths.append(_write_private(out_dir / f"{node.name}.conf", text))
    return paths


def render_for_hosts(
    home: Home, hosts: list[str], out_dir: Path, store_dir: Path, tls_dir: Path
) -> list[Path]:
    """Configs for nodes on their own hosts (Compose services, Kubernetes pods): node n is
    named after its host's first label, listens on 4222 (clients), 6222 (routes) and 8222
    (monitoring), keeps JetStream in `store_dir` and reads its TLS files from `tls_dir` as
    the node will see them. Each node's certificate, naming its host, is issued by the
    home's CA into `out_dir/tls/` beside a copy of the CA: mount that folder at `tls_dir`.
    Writes `<name>.conf` (0600) per node; the paths."""
    names = [host.split(".", 1)[0] for host in hosts]
    if len(set(names)) != len(names):
        raise ConfigError(f"the hosts' first labels must differ: {', '.join(names)}")
    hashes, mutual_tls = _hashes(home)
    certs = out_dir / "tls"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(home.tls_files.ca, certs / "ca.pem")
    nodes = [
        ClusterNode(name, CLIENT_PORT, ROUTE_PORT, store_dir, host=host, monitor_port=MONITOR_PORT)
        for name, host in zip(names, hosts, strict=True)
    ]
    paths = []
    for node in nodes:
        issue_node_certificate(home.tls_files.ca.parent, [node.host, node.name], certs, node.name)
        seen = TlsFiles(
            tls_dir / "ca.pem", tls_dir / f"{node.name}.pem", tls_dir / f"{node.name}.key"
        )
        text = render_node(node, nodes, hashes, seen, ServerOptions(mutual_tls))
        paths.append(_write_private(out_dir / f"{node.name}.conf", text))
    return paths


def _write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
