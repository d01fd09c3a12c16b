"""`s284 api`: the HTTP API on its own, for a production deployment where gateway workers
and the API run as separate processes on one PostgreSQL (deploy/compose.yaml, deploy/k8s)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from broker.runtime import run_api
from broker.settings import Settings


@click.command()
@click.option(
    "--home", type=click.Path(path_type=Path), envvar="S284_HOME", default=None,
    help="Deployment home (the token issuer's public key, the key directory). Env: S284_HOME.",
)  # fmt: skip
@click.option("--http-host", default=None, help="Bind address (default 127.0.0.1; off "
              "loopback it needs S284_TLS_CERT and S284_TLS_KEY).")  # fmt: skip
@click.option("--http-port", type=click.IntRange(1, 65535), default=None, help="Default 8284.")
def api(home: Path | None, http_host: str | None, http_port: int | None) -> None:
    """Serve the HTTP API alone: the disclosure log, the routing table, the key directory,
    /healthz, /readyz and /metrics, on the database S284_DB_URL names.

    The designated contacts' alert actions need the alert flow beside a gateway; they are
    served by `s284 up`, not here.
    """
    values: dict[str, Any] = {"home": home, "http_host": http_host, "http_port": http_port}
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    asyncio.run(run_api(settings))
    sys.exit(0)
