"""HTTP API (FastAPI): liveness, readiness and, under /api/v1/audit, the disclosure log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from audit import AuditStore
from broker.api_audit import audit_router
from broker.auth import AuthConfig


def create_app(
    ready_checks: dict[str, Callable[[], bool]],
    store: AuditStore | None = None,
    auth: AuthConfig | None = None,
) -> FastAPI:
    """`ready_checks`: name -> cheap probe (NATS connected, gateway consuming, audit store).
    With a store and an auth config, the privacy officers' audit API is mounted too."""
    app = FastAPI(title="s284-broker", version="0.1.0", docs_url="/docs", redoc_url=None)
    if store is not None and auth is not None:
        app.include_router(audit_router(store, auth))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready to carry messages: every dependency answers."""
        results = {name: await asyncio.to_thread(check) for name, check in ready_checks.items()}
        ready = all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status_code=200 if ready else 503,
        )

    return app
