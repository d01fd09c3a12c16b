"""HTTP API (FastAPI). For now: liveness and readiness; the audit API lands in issue 4."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_app(ready_checks: dict[str, Callable[[], bool]]) -> FastAPI:
    """`ready_checks`: name -> cheap probe (NATS connected, gateway consuming, audit store)."""
    app = FastAPI(title="s284-broker", version="0.1.0", docs_url="/docs", redoc_url=None)

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
