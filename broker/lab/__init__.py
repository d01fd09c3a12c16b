"""The lab: the production shape (a three-node NATS cluster, PostgreSQL, gateway workers as
separate processes, the API, four agency homes) on one machine, on loopback, for tests,
benchmarks and an operator's first look; and the cluster's configuration files."""

from broker.lab.api import run_api
from broker.lab.render import loopback_nodes, render_cluster, render_for_hosts
from broker.lab.topology import DEFAULT_DB_URL, Lab, LabOptions

__all__ = [
    "DEFAULT_DB_URL",
    "Lab",
    "LabOptions",
    "loopback_nodes",
    "render_cluster",
    "render_for_hosts",
    "run_api",
]
