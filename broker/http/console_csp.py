"""The console's CSP register page, for the MAP chair (and the staff who may read the
register): current plans with their next review due, reviews overdue, and offenders whose
order needs a plan and who have none (`s284 csp plans` / `overdue` / `missing`), each with a
CSV export.

References and dates only: an offender's reference, a plan's id, its status and dates and
the managing officer's id, all from the routing register. Never a log record, a personal
field of one, or a payload: the MAP chair has no role on the audit API.
"""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from broker.auth import Principal, require_role
from broker.http.oversight import VICTORIA
from broker.http.pages import csv_table
from broker.http.routing import CSP_READERS
from routing import RoutingStore

Page = Callable[..., HTMLResponse]
SignedIn = Callable[[Request], Awaitable[Principal]]
TABLES: dict[str, tuple[str, ...]] = {
    "plans": ("offender", "csp_id", "status", "since", "endorsed_on", "review_due"),
    "overdue": ("offender", "csp_id", "last_review", "due", "days_overdue"),
    "missing": ("offender", "order_status", "managing_officer", "in_preparation"),
}


class CspRegister:
    """GET /console/csp and /console/csp/{plans,overdue,missing}.csv."""

    def __init__(self, routing: RoutingStore, signed_in: SignedIn, page: Page) -> None:
        self.routing, self.signed_in, self.page = routing, signed_in, page

    def add_to(self, router: APIRouter) -> None:
        router.add_api_route("/csp", self.register, methods=["GET"])
        for name in TABLES:
            router.add_api_route(f"/csp/{name}.csv", self._exporter(name), methods=["GET"])

    async def _reader(self, request: Request) -> Principal:
        who = await self.signed_in(request)
        require_role(who, CSP_READERS)
        return who

    async def register(self, request: Request) -> HTMLResponse:
        who = await self._reader(request)
        tables = await run_in_threadpool(self.tables)
        request.state.results = sum(len(rows) for rows in tables.values())
        return self.page("console_csp.html", request, who, page="csp", today=_today(), **tables)

    def _exporter(self, name: str) -> Callable[[Request], Awaitable[PlainTextResponse]]:
        async def export(request: Request) -> PlainTextResponse:
            await self._reader(request)
            rows = (await run_in_threadpool(self.tables))[name]
            request.state.results = len(rows)
            return csv_table(TABLES[name], rows, f"s284-csp-{name}-{_today()}.csv")

        return export

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        today = datetime.now(VICTORIA).date()
        due = {r.csp_id: r.due for r in self.routing.csp_reviews()}
        plans = [
            {
                "offender": p.offender,
                "csp_id": p.csp_id,
                "status": p.status,
                "since": p.status_on.isoformat(),
                "endorsed_on": p.endorsed_on.isoformat() if p.endorsed_on else "",
                "review_due": due[p.csp_id].isoformat() if p.csp_id in due else "",
            }
            for p in self.routing.csp_plans()
            if p.current
        ]
        overdue = [
            {
                "offender": r.offender,
                "csp_id": r.csp_id,
                "last_review": r.last_review.isoformat(),
                "due": r.due.isoformat(),
                "days_overdue": (today - r.due).days,
            }
            for r in self.routing.overdue(today)
        ]
        missing = [
            {
                "offender": m.offender,
                "order_status": m.order_status,
                "managing_officer": m.managing_officer,
                "in_preparation": " ".join(m.in_preparation),
            }
            for m in self.routing.csp_missing()
        ]
        return {"plans": plans, "overdue": overdue, "missing": missing}


def _today() -> str:
    return datetime.now(VICTORIA).date().isoformat()
