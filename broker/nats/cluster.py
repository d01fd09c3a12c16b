"""A NATS cluster's node configurations, from the same account and permission model as
the embedded server (`render_config`), plus what a cluster adds.

Each node gets: its own server name and JetStream store directory (a node's store is never
shared), `sync_interval: always` like the embedded server (a message JetStream has
acknowledged survives a power cut of that node), TLS on client connections, and a
`cluster {}` block whose routes name every other node, over TLS verified both ways against
the same CA (`verify: true`: a node must present a certificate of that CA to join, so a
process that can reach the route port cannot join the cluster and read the streams).

Pure: it renders text. `broker.lab.render.render_cluster` reads a home's logins and TLS
files and writes the files; deploy/nats/ holds an example rendered from fixed inputs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.nats.config import ServerOptions, render_config
from broker.nats.tls import TlsFiles

__all__ = ["CLUSTER_NAME", "ClusterNode", "client_urls", "render_node", "replicas_for"]

CLUSTER_NAME = "s284"
MAX_REPLICAS = 3


@dataclass(frozen=True)
class ClusterNode:
    """Where one node listens: clients, routes (the other nodes), optional monitoring."""

    name: str
    client_port: int
    route_port: int
    store_dir: Path
    host: str = "127.0.0.1"
    monitor_port: int | None = None

    @property
    def client_url(self) -> str:
        return f"tls://{self.host}:{self.client_port}"

    @property
    def route_url(self) -> str:
        return f"nats-route://{self.host}:{self.route_port}"


def client_urls(nodes: list[ClusterNode]) -> str:
    """Every node's client URL, comma-separated: what S284_NATS_URL and an agency's
    connection take, so a client reconnects to another node when its own goes away."""
    return ",".join(node.client_url for node in nodes)


def replicas_for(nodes: int) -> int:
    """R3 on three nodes or more, else one replica per node there is (R1 embedded)."""
    return max(1, min(MAX_REPLICAS, nodes))


def _cluster_block(node: ClusterNode, peers: list[ClusterNode], tls: TlsFiles) -> dict[str, Any]:
    return {
        "name": CLUSTER_NAME,
        "listen": f"{node.host}:{node.route_port}",
        "routes": [p.route_url for p in peers if p.name != node.name],
        "tls": {
            "ca_file": str(tls.ca),
            "cert_file": str(tls.cert),
            "key_file": str(tls.key),
            "timeout": 2,
            "verify": True,  # a node proves itself with a certificate of the same CA
        },
    }


def render_node(
    node: ClusterNode,
    nodes: list[ClusterNode],
    users: dict[str, str],
    tls: TlsFiles,
    options: ServerOptions | None = None,
) -> str:
    """One node's config: the embedded model (accounts, TLS, JetStream, fsync) under the
    node's name and store, and the routes to the others. `users`: bcrypt hashes."""
    opts = dataclasses.replace(options or ServerOptions(), monitor_port=node.monitor_port)
    base = render_config(
        node.client_port, node.store_dir, users, tls, opts, server_name=node.name, host=node.host
    )
    cluster = json.dumps(_cluster_block(node, nodes, tls), indent=2)
    return f"{base}cluster: {cluster}\n"
