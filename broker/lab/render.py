"""A home's NATS cluster configuration, written to files: one per node.

The logins are the home's (each NATS user's password, bcrypt-hashed again here: the home
keeps only the embedded server's config with the hashes in it), and so is the TLS CA and
server certificate, which names 127.0.0.1 and localhost: fit for the lab on loopback; a
cluster across machines needs certificates naming its hosts (deploy/nats/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import bcrypt

from broker.home import Home
from broker.nats.cluster import ClusterNode, render_node
from broker.nats.config import ALL_USERS, ServerOptions
from broker.nats.server import free_loopback_ports

DEFAULT_NODES = 3


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
        path = out_dir / f"{node.name}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        paths.append(path)
    return paths
