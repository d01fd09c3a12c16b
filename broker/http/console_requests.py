"""The console's "Overdue requests" page (/console/requests): the request register's
notices and information requests past their deadline and unanswered, or every one with
`?all=1`, and their CSV export (docs/notices.md). Ids, agencies and dates only: the
register holds no payload. Who sees which: the Authority its own notices and requests; a
privacy officer those its agency sent or received; auditors and admins all.

Its own router beside the console's (broker/http/console.py), on the same session,
cookie, error pages and access log.
"""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
import csv
import io
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from audit import AuditStore
from broker.auth import AuthError, Principal, Role, TokenVerifier
from broker.http.access import audit_access, logged_route
from broker.http.console import CONSOLE, COOKIE, SITE, console_error
from broker.http.oversight import COUNTERS
from broker.http.pages import Pages
from routing import RequestRegister, RequestRow, request_summary

COLUMNS = (
    "request_id", "kind", "from", "to", "offender", "purpose",
    "issued_at", "respond_by", "answered_at", "overdue", "late_days",
)  # fmt: skip


class RequestsPage:
    def __init__(
        self, store: AuditStore, verifier: TokenVerifier, register: RequestRegister
    ) -> None:
        self.store, self.verifier, self.register = store, verifier, register
        self.pages = Pages(SITE)

    def router(self) -> APIRouter:
        logged = logged_route(audit_access(self.store), console_error(self.pages))
        router = APIRouter(prefix=CONSOLE, include_in_schema=False, route_class=logged)
        router.add_api_route("/requests", self.page, methods=["GET"])
        router.add_api_route("/requests.csv", self.export, methods=["GET"])
        return router

    def _signed_in(self, request: Request) -> Principal:
        token = request.cookies.get(COOKIE)
        if not token:
            raise AuthError(401, "auth.missing_token", "sign in")
        principal = self.verifier.verify(token)
        request.state.principal = principal
        if principal.role not in COUNTERS:
            raise AuthError(401, "auth.forbidden", "the console is for oversight roles")
        return principal

    async def page(self, request: Request) -> HTMLResponse:
        who = await run_in_threadpool(self._signed_in, request)
        every = request.query_params.get("all") == "1"
        items = await run_in_threadpool(self._items, who, every)
        request.state.results = len(items)
        csrf = self.pages.csrf(request.cookies[COOKIE])
        return self.pages.render(
            "console_requests.html", request, who=who, csrf=csrf, page="requests",
            rows=items, every=every,
        )  # fmt: skip

    async def export(self, request: Request) -> PlainTextResponse:
        who = await run_in_threadpool(self._signed_in, request)
        every = request.query_params.get("all") == "1"
        items = await run_in_threadpool(self._items, who, every)
        request.state.results = len(items)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS)
        writer.writeheader()
        writer.writerows(items)
        name = "s284-requests.csv" if every else "s284-overdue-requests.csv"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return PlainTextResponse(buffer.getvalue(), media_type="text/csv", headers=headers)

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

