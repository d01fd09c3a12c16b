"""The oversight console under /console, for privacy officers, auditors and administrators:
the risk-reduction review queue with the review action, the accounting of disclosures per
offender, the oversight statistics with charts (SVG drawn here, nothing from a CDN), and
CSV exports of each. The Post Sentence Authority (`psa`) signs in to the statistics only
(and its own overdue notices and requests: broker/http/console_requests.py); the MAP chair
(`map_chair`) to the statistics and the CSP register (broker/http/console_csp.py).
Server-rendered like the inbox (broker/http/pages.py: cookie session scoped to /console,
CSRF, strict CSP, no JavaScript).

It reads the log through the same queries as the JSON API (`audit`'s, which decide in SQL
which record each viewer may see: a privacy officer only its agency's), records a review
exactly as `POST /api/v1/audit/reviews/{id}` does, and every request, refused ones too,
lands in the log's access log like the API's. Pages show references and codes; the free
text a viewer sees is what the API would show them.
"""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from audit import (
    AuditStore,
    Filters,
    Period,
    PeriodError,
    accounting,
    record_by_id,
    review_queue,
)
from broker.auth import Principal, Role, TokenVerifier, require_role
from broker.http.access import ErrorPage, audit_access, logged_route
from broker.http.audit import READERS, REVIEWERS, check_reviewable, review_record, viewer_of
from broker.http.audit_models import ReviewIn, csv_document, export_rows
from broker.http.console_csp import CspRegister
from broker.http.console_requests import RequestsPage
from broker.http.errors import ApiError, Problem
from broker.http.oversight import COUNTERS, oversight_statistics
from broker.http.pages import Flash, Pages, Session, Site
from broker.http.routing import CSP_READERS
from broker.wire.envelope import OFFENDER_PATTERN
from routing import RoutingStore

CONSOLE = "/console"
COOKIE = "s284_console"
PAGE = 200  # rows a page shows; the CSV export has them all
DEFAULT_DAYS = 90  # the statistics page's period when none is asked for
MAX_FORM_BYTES = 8 * 1024
FLASH: dict[str, tuple[str, bool]] = {
    "reviewed": ("Review recorded; the disclosure has left the queue.", False),
    "signed_out": ("You have signed out.", False),
    "expired": ("Your session has ended or is not valid; sign in again.", True),
    "forbidden": ("Your role may not do that.", True),
    "not_found": ("That record is not (or no longer) visible to you.", True),
    "conflict": ("That record is not awaiting review.", True),
    "invalid": (
        "The form was not valid: choose an outcome; a note has at most 2000 characters.",
        True,
    ),
    "stale_form": ("That form had expired or came from elsewhere; please try again.", True),
    "unavailable": ("The log cannot answer just now; please try again in a minute.", True),
}
SITE = Site(CONSOLE, COOKIE, "s284 console", "console.css", FLASH, {"back": "Back to the console"})


def _flash_key(found: Problem) -> str:
    if found.code in {"request.invalid", "audit.bad_request"}:
        return "invalid"
    if found.status >= 500:  # noqa: PLR2004
        return "unavailable"
    by_status = {403: "forbidden", 404: "not_found", 409: "conflict"}
    if found.code in {"auth.bad_csrf", "auth.cross_origin"}:
        return "stale_form"
    return by_status.get(found.status, "invalid")


def console_error(pages: Pages) -> ErrorPage:
    """Signed out: the sign-in page; a refused post: back to the queue with the message;
    a page that failed: a page of its own saying so (no redirect loop)."""

    def to_response(request: Request, found: Problem) -> Response:
        if found.status == 401:  # noqa: PLR2004
            return pages.to_login(request)
        key = _flash_key(found)
        if request.method == "GET":  # what is wrong, in the broker's own words (escaped)
            text = FLASH[key][0] if found.status >= 500 else f"{found.detail}."  # noqa: PLR2004
            flash = Flash(text, error=True, code=found.code)
            return pages.render("problem.html", request, found.status, flash)
        return pages.redirect("", flash=key, code=found.code)

    return to_response


class Console:
    """The console's pages and form posts."""

    def __init__(
        self, store: AuditStore, verifier: TokenVerifier, routing: RoutingStore | None = None
    ) -> None:
        self.store, self.verifier, self.routing = store, verifier, routing
        self.pages = Pages(SITE)
        self.session = Session(
            self.pages, verifier, COUNTERS, "the console is for oversight roles",
            "console_login.html", MAX_FORM_BYTES,
        )  # fmt: skip

    def router(self) -> APIRouter:
        logged = logged_route(audit_access(self.store), console_error(self.pages))
        router = APIRouter(prefix=CONSOLE, include_in_schema=False, route_class=logged)
        router.add_api_route("/login", self.session.login_page, methods=["GET"])
        router.add_api_route("/login", self.login, methods=["POST"])
        router.add_api_route("", self.reviews, methods=["GET"])
        router.add_api_route("/reviews.csv", self.reviews_csv, methods=["GET"])
        router.add_api_route("/reviews/{record_id}", self.review, methods=["POST"])
        router.add_api_route("/accounting", self.accounting, methods=["GET"])
        router.add_api_route("/accounting.csv", self.accounting_csv, methods=["GET"])
        router.add_api_route("/statistics", self.statistics, methods=["GET"])
        router.add_api_route("/statistics.csv", self.statistics_csv, methods=["GET"])
        router.add_api_route("/logout", self.session.logout, methods=["POST"])
        if self.routing is not None:  # the CSP register lives in routing's database
            CspRegister(self.routing, self.session.signed_in, self._page).add_to(router)
            pages = RequestsPage(self.routing.requests, self.session.signed_in, self._page)
            pages.add_to(router)
        return router

    # -- the session ---------------------------------------------------------------------

    async def _staff(self, request: Request) -> Principal:
        """Records are for privacy officers, auditors and admins, never the Authority."""
        who = await self.session.signed_in(request)
        require_role(who, READERS)
        return who

    def _page(self, name: str, request: Request, who: Principal, **ctx: Any) -> HTMLResponse:
        csrf = self.pages.csrf(request.cookies[COOKIE])
        has_csp = self.routing is not None and who.role in CSP_READERS
        registers = self.routing is not None
        return self.pages.render(
            name, request, who=who, csrf=csrf, has_csp=has_csp, has_requests=registers, **ctx
        )

    async def login(self, request: Request) -> Response:
        has_csp = self.routing is not None
        return await self.session.login(request, lambda who: _landing(who, has_csp))

    # -- the review queue ----------------------------------------------------------------

    async def reviews(self, request: Request) -> Response:
        who = await self.session.signed_in(request)
        if who.role not in READERS:
            return self.pages.redirect(_landing(who, self.routing is not None))
        page = await run_in_threadpool(review_queue, self.store, viewer_of(who), None, PAGE)
        request.state.results = len(page.rows)
        return self._page(
            "console_reviews.html",
            request,
            who,
            page="reviews",
            rows=page.rows,
            more=page.next_cursor is not None,
            may_review=who.role in REVIEWERS,
        )

    async def reviews_csv(self, request: Request) -> PlainTextResponse:
        who = await self._staff(request)
        rows = await run_in_threadpool(self._all_reviews, who)
        request.state.results = len(rows)
        return _csv(csv_document(rows), "s284-review-queue.csv")

    def _all_reviews(self, who: Principal) -> list[dict[str, Any]]:
        rows, cursor = [], None
        while True:
            page = review_queue(self.store, viewer_of(who), cursor, 500)
            rows += page.rows
            if (cursor := page.next_cursor) is None:
                return rows

    async def review(self, request: Request, record_id: str) -> Response:
        who, form = await self.session.posted(request)
        require_role(who, REVIEWERS)
        try:
            body = ReviewIn.model_validate(
                {"outcome": form.get("outcome", ""), "note": form.get("note") or None}
            )
        except ValidationError:
            detail = "choose an outcome; a note has at most 2000 characters"
            raise ApiError(422, "request.invalid", detail) from None
        await run_in_threadpool(self._record_review, request, who, record_id, body)
        return self.pages.redirect("", flash="reviewed")

    def _record_review(
        self, request: Request, who: Principal, record_id: str, body: ReviewIn
    ) -> None:
        target = record_by_id(self.store, viewer_of(who), record_id)
        if target is None:
            raise ApiError(404, "audit.not_found", "no record with that id is visible to you")
        check_reviewable(who, target)
        review = review_record(who, target, body)
        self.store.append([review])
        request.state.results = 1

    # -- accounting ----------------------------------------------------------------------

    async def accounting(self, request: Request) -> HTMLResponse:
        who = await self._staff(request)
        offender = _offender(request)
        rows: list[dict[str, Any]] = []
        more = False
        if offender:
            page = await run_in_threadpool(
                accounting, self.store, viewer_of(who), offender, None, PAGE
            )
            rows, more = page.rows, page.next_cursor is not None
        request.state.results = len(rows)
        return self._page(
            "console_accounting.html",
            request,
            who,
            page="accounting",
            offender=offender,
            rows=rows,
            more=more,
        )

    async def accounting_csv(self, request: Request) -> PlainTextResponse:
        who = await self._staff(request)
        offender = _offender(request)
        if not offender:
            raise ApiError(400, "request.invalid", "name the offender (?offender=REF)")
        filters = Filters(offender=offender, event="disclosed")
        chunks = await run_in_threadpool(
            lambda: "".join(export_rows(self.store, viewer_of(who), filters, request))
        )
        return _csv(chunks, f"s284-accounting-{offender}.csv")

    # -- statistics ----------------------------------------------------------------------

    async def statistics(self, request: Request) -> HTMLResponse:
        who = await self.session.signed_in(request)
        start, end, period = _period(request)
        figures = await run_in_threadpool(oversight_statistics, self.store, self.routing, period)
        return self._page(
            "console_statistics.html",
            request,
            who,
            page="statistics",
            start=start,
            end=end,
            s=figures,
            minutes=_minutes,
            duration=_duration,
        )

    async def statistics_csv(self, request: Request) -> PlainTextResponse:
        await self.session.signed_in(request)
        start, end, period = _period(request)
        figures = await run_in_threadpool(oversight_statistics, self.store, self.routing, period)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["figure", "value"])
        writer.writerows(_flat(figures))
        request.state.results = 1
        return _csv(buffer.getvalue(), f"s284-statistics-{start}-{end}.csv")


def _landing(who: Principal, has_csp: bool) -> str:
    """Where a role starts: records for staff, the register for the MAP chair, else counts."""
    if who.role in READERS:
        return ""
    return "/csp" if has_csp and who.role is Role.MAP_CHAIR else "/statistics"


def _period(request: Request) -> tuple[str, str, Period]:
    """The period asked for (`from`, `to`: dates, both included), by default the last
    DEFAULT_DAYS days; a bad one is a 400 naming what is wrong."""
    today = datetime.now(UTC).date()
    start = request.query_params.get("from") or (today - timedelta(DEFAULT_DAYS - 1)).isoformat()
    end = request.query_params.get("to") or today.isoformat()
    try:
        return start, end, Period.parse(start, end)
    except PeriodError as exc:
        raise ApiError(400, "oversight.bad_period", str(exc)) from None


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as `a.b.c` rows, for the CSV export."""
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), "" if value is None else value)]


def _duration(seconds: float) -> str:
    """How late an answer was, in the largest unit that reads well."""
    if seconds >= 86400:  # noqa: PLR2004
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:  # noqa: PLR2004
        return f"{seconds / 3600:.1f} h"
    return _minutes(seconds)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"  # noqa: PLR2004


def _offender(request: Request) -> str | None:
    value = request.query_params.get("offender", "").strip()
    if not value:
        return None
    if re.fullmatch(OFFENDER_PATTERN, value) is None:
        raise ApiError(400, "request.invalid", "an offender reference is letters, digits and -")
    return value


def _csv(text: str, filename: str) -> PlainTextResponse:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return PlainTextResponse(text, media_type="text/csv", headers=headers)
