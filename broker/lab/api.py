"""The HTTP API as a process of its own (`s284 lab api`), apart from the gateway workers:
in the production shape a worker can die without taking the API with it. It serves the
audit, routing and directory routes from PostgreSQL and the home; alert actions (which
publish on NATS) stay with `s284 up`, whose API lives beside a gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from audit import AuditStore
from broker.auth import AuthConfig
from broker.home import Home
from broker.http.app import ApiDeps, create_app
from broker.runtime import http_tls
from broker.sdk import stop_event_on_signals
from broker.settings import Settings
from routing import RoutingStore


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: our stop event owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_api(settings: Settings, port: int) -> None:
    """Serve until SIGINT/SIGTERM; /readyz is ready while the log's database answers."""
    stop = stop_event_on_signals()
    home = Home(settings.home)
    home.require()
    store = await asyncio.to_thread(AuditStore.open, settings.database_url)
    routing = await asyncio.to_thread(RoutingStore.open, settings.database_url)
    app = create_app(
        {"audit": store.ping},
        ApiDeps(
            store,
            AuthConfig.from_env_and_home(home.path),
            routing,
            node=settings.node,
            directory=home.signed_directory,
        ),
    )
    config = uvicorn.Config(
        app, host=settings.http_host, port=port, log_level="warning", lifespan="off",
        **http_tls(settings),  # type: ignore[arg-type]
    )  # fmt: skip
    server = _QuietServer(config)
    serving = asyncio.create_task(server.serve())
    try:
        await asyncio.wait({serving, asyncio.create_task(stop.wait())},
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    finally:
        server.should_exit = True
        await serving
        routing.close()
        store.close()
