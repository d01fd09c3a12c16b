"""The console's "Overdue requests" page (/console/requests): the request register's
notices and information requests past their deadline and unanswered, or every one with
`?all=1`, and their CSV export (docs/notices.md). Ids, agencies and dates only: the
register holds no payload. Who sees which: the Authority its own notices and requests; a
privacy officer those its agency sent or received; auditors and admins all.

Mounted on the console's router (broker/http/console.py): the same session, cookie,
error pages and access log.
"""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from broker.auth import Principal, Role
from broker.http.console_csp import Page, SignedIn
from broker.http.pages import csv_table
from routing import RequestRegister, RequestRow, request_summary

COLUMNS = (
    "request_id", "kind", "from", "to", "offender", "purpose",
    "issued_at", "respond_by", "answered_at", "overdue", "late_days",
)  # fmt: skip


class RequestsPage:
    """GET /console/requests and /console/requests.csv, on the console's session and
    pages (mounted by broker/http/console.py when the process has the routing database)."""

    def __init__(self, register: RequestRegister, signed_in: SignedIn, page: Page) -> None:
        self.register, self.signed_in, self.page = register, signed_in, page

    def add_to(self, router: APIRouter) -> None:
        router.add_api_route("/requests", self.requests, methods=["GET"])
        router.add_api_route("/requests.csv", self.export, methods=["GET"])

    async def requests(self, request: Request) -> HTMLResponse:
        who = await self.signed_in(request)
        every = request.query_params.get("all") == "1"
        items = await run_in_threadpool(self._items, who, every)
        request.state.results = len(items)
        return self.page(
            "console_requests.html", request, who, page="requests", rows=items, every=every
        )

    async def export(self, request: Request) -> PlainTextResponse:
        who = await self.signed_in(request)
        every = request.query_params.get("all") == "1"
        items = await run_in_threadpool(self._items, who, every)
        request.state.results = len(items)
        name = "s284-requests.csv" if every else "s284-overdue-requests.csv"
        return csv_table(COLUMNS, items, name)

    def _items(self, who: Principal, every: bool) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        rows = self.register.rows(from_agency="psa" if who.role is Role.PSA else None)
        return [
            request_summary(r, now)
            for r in rows
            if _may_see(who, r) and (every or r.overdue(now))
        ]


def _may_see(who: Principal, row: RequestRow) -> bool:
    if who.role is Role.PRIVACY_OFFICER:
        return who.agency in {row.from_agency, row.recipient}
    return True

