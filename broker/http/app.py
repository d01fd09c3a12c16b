"""HTTP API (FastAPI): liveness, readiness and Prometheus metrics; under /api/v1 the
disclosure log, the routing table and CSP reviews; the designated contacts' alerts and web
inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from audit import AuditStore, WitnessPolicy
from broker.alerts.actions import AlertActions
from broker.auth import AuthConfig, TokenVerifier
from broker.http.alerts import alerts_router
from broker.http.audit import audit_router
from broker.http.console import Console
from broker.http.contacts import GistSource
from broker.http.directory import directory_router
from broker.http.docs import install_docs
from broker.http.errors import install
from broker.http.limits import install_limits
from broker.http.metrics import Scrape, metrics_router
from broker.http.oversight import oversight_router
from broker.http.routing import routing_router
from broker.http.witness import witness_router
from policies import BundleArchive
from routing import RoutingStore


@dataclass(frozen=True)
class ApiDeps:
    """What the API serves from; the routers mount only for what is given."""

    audit: AuditStore
    auth: AuthConfig
    routing: RoutingStore | None = None
    alerts: AlertActions | None = None
    node: str = "api"
    directory: Callable[[], bytes] | None = None  # the signed key directory held now
    alert_gist: GistSource | None = None  # what an alert says, where this process can read it
    witnesses: Callable[[], WitnessPolicy] = WitnessPolicy  # registered keys, read per request
    bundles: BundleArchive | None = None  # archived policy bundles, for explain


def create_app(
    ready_checks: dict[str, Callable[[], bool]],
    deps: ApiDeps | None = None,
    metrics: Scrape | None = None,
) -> FastAPI:
    """`ready_checks`: name -> cheap probe (NATS connected, gateway consuming, audit store);
    `metrics`: what `/metrics` serves (a gateway worker's listener has only that and the
    probes)."""
    app = FastAPI(title="s284-broker", version="0.1.0", docs_url=None, redoc_url=None)
    install_docs(app)  # /docs and /redoc with their assets served here, not from a CDN
    install(app)  # the one error -> status map, for every router below
    install_limits(app)  # bodies capped before any route reads or authenticates them
    if metrics is not None:
        app.include_router(metrics_router(metrics))
    if deps is not None:
        app.include_router(audit_router(deps.audit, deps.auth))
        console = Console(deps.audit, TokenVerifier(deps.auth), deps.routing)
        app.include_router(console.router())
        app.include_router(witness_router(deps.audit, deps.auth, deps.witnesses))
        app.include_router(oversight_router(deps.audit, deps.auth, deps.bundles, deps.routing))
        if deps.routing is not None:
            app.include_router(routing_router(deps.routing, deps.audit, deps.auth, deps.node))
        _mount_alerts(app, deps)
        if deps.directory is not None:
            app.include_router(directory_router(deps.directory))

    _probes(app, ready_checks)
    return app


def create_inbox_app(
    ready_checks: dict[str, Callable[[], bool]],
    routing: RoutingStore,
    auth: AuthConfig,
    alerts: AlertActions,
    gist: GistSource | None = None,
) -> FastAPI:
    """The designated contacts' web inbox and alert API alone, with the probes: what a
    gateway worker serves (`s284 gateway --inbox-port`) beside the alert flow that acts on
    an acknowledgement or a reply. No disclosure log, no console, no docs."""
    app = FastAPI(title="s284-broker inbox", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    install(app)
    install_limits(app)
    app.include_router(alerts_router(routing, auth, alerts, gist))
    _probes(app, ready_checks)
    return app


def _probes(app: FastAPI, ready_checks: dict[str, Callable[[], bool]]) -> None:
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


def _mount_alerts(app: FastAPI, deps: ApiDeps) -> None:
    """The contacts' alert API and web inbox, when the alert flow runs in this process."""
    if deps.routing is not None and deps.alerts is not None:
        inbox = alerts_router(deps.routing, deps.auth, deps.alerts, deps.alert_gist)
        app.include_router(inbox)
