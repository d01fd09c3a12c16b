"""The designated contacts' web inbox under /inbox: server-rendered pages (Jinja2,
autoescaped, no JavaScript) over the same `AlertActions` as the JSON API.

The token lives in an HttpOnly, SameSite=Strict cookie scoped to /inbox. Every form post
must come from this origin (the Origin header, when sent) and carry a CSRF token that is an
HMAC of that cookie under a key held only by this process (a restart just asks for the
page again). Pages show ids and codes, never names; what an alert says (its level and
summary) only where a gist source can read it (`ApiDeps.alert_gist`), and only on the card
of the contact it is addressed to; otherwise the card says where to read it.
"""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from broker.alerts.actions import AlertActions
from broker.auth import TokenVerifier
from broker.errors import BrokerError
from broker.http.access import ErrorPage, log_access, logged_route
from broker.http.contacts import (
    CONTACTS,
    COOKIE,
    INBOX,
    MAX_FORM_BYTES,
    MAX_REPLY,
    AlertGist,
    GistSource,
    check_own,
    overdue,
    own_alerts,
)
from broker.http.errors import ApiError, Problem
from broker.http.pages import Flash, Pages, Session, Site, local_time
from routing import Alert, RoutingStore

# -- the web inbox ------------------------------------------------------------------------

log = structlog.get_logger("s284.inbox")

FLASH: dict[str, tuple[str, bool]] = {  # key -> (sentence, is an error)
    "acknowledged": ("Alert acknowledged; the managing officer is told.", False),
    "replied": ("Reply sent to the managing officer.", False),
    "signed_out": ("You have signed out.", False),
    "expired": ("Your session has ended or is not valid; sign in again.", True),
    "not_found": ("That alert is not (or no longer) routed to you.", True),
    "conflict": ("That alert could not be changed; it may already be acknowledged.", True),
    "refused": ("The information-sharing policy refused that reply.", True),
    "invalid": ("The form was not valid: write a reply of at most 2000 characters.", True),
    "stale_form": ("That form had expired or came from elsewhere; please try again.", True),
    "unavailable": ("The broker cannot answer just now; please try again in a minute.", True),
}
SITE = Site(
    INBOX,
    COOKIE,
    "s284 alerts",
    "inbox.css",
    FLASH,
    {"max_reply": MAX_REPLY, "back": "Back to your alerts"},
)
STATUS_TEXT = {
    "open": "open",
    "escalated_deputy": "escalated to the deputy",
    "escalated_duty": "escalated to the duty inbox",
    "acknowledged": "acknowledged",
}


@dataclass(frozen=True)
class _Row:
    """One alert as the inbox page shows it: display strings only."""

    alert_id: str
    offender: str
    topic: str
    sender_agency: str
    purpose: str
    received: str
    received_iso: str
    deadline: str | None
    deadline_iso: str | None
    overdue: bool
    status: str
    alert_level: str | None
    summary: str | None
    readable: bool  # whether this process could read what the alert says

    @classmethod
    def of(cls, alert: Alert, now: datetime, gist: AlertGist | None) -> Self:
        return cls(
            alert_id=alert.alert_id,
            offender=alert.offender,
            topic=alert.topic.value.replace("_", " "),
            sender_agency=alert.sender_agency,
            purpose=alert.purpose.replace("_", " "),
            received=local_time(alert.created_at),
            received_iso=alert.created_at.isoformat(),
            deadline=local_time(alert.deadline) if alert.deadline else None,
            deadline_iso=alert.deadline.isoformat() if alert.deadline else None,
            overdue=overdue(alert, now),
            status=STATUS_TEXT.get(alert.status.value, alert.status.value),
            alert_level=gist.alert_level if gist else None,
            summary=gist.summary if gist else None,
            readable=gist is not None,
        )


def _inbox_error(pages: Pages) -> ErrorPage:
    """Signed-out or invalid sessions go to the login page; a refused form post goes back
    to the inbox with a message chosen by the status the one map gives, naming the reason
    code; the inbox page itself failing says so on a page of its own (no redirect loop)."""

    def to_response(request: Request, found: Problem) -> Response:
        if found.status == 401:  # noqa: PLR2004
            return pages.to_login(request)
        key = _flash_key(found)
        if request.method == "GET":
            flash = Flash(FLASH[key][0], error=True, code=found.code)
            return pages.render("problem.html", request, found.status, flash)
        return pages.redirect("", flash=key, code=found.code)

    return to_response


def _flash_key(found: Problem) -> str:
    if found.code == "request.invalid":
        return "invalid"
    if found.status >= 500:  # noqa: PLR2004
        return "unavailable"
    by_status = {403: "stale_form", 404: "not_found", 409: "conflict", 422: "refused"}
    return by_status.get(found.status, "conflict")


class Inbox:
    """The inbox pages and form posts; every handler is one step of a contact's visit."""

    def __init__(
        self,
        store: RoutingStore,
        verifier: TokenVerifier,
        actions: AlertActions,
        gist: GistSource | None = None,
    ) -> None:
        self.store, self.verifier, self.actions = store, verifier, actions
        self.gist = gist
        self.pages = Pages(SITE)
        self.session = Session(
            self.pages, verifier, CONTACTS, "the inbox is for designated contacts",
            "login.html", MAX_FORM_BYTES,
        )  # fmt: skip

    def router(self) -> APIRouter:
        logged = logged_route(log_access, _inbox_error(self.pages))
        router = APIRouter(prefix=INBOX, include_in_schema=False, route_class=logged)
        router.add_api_route("/login", self.session.login_page, methods=["GET"])
        router.add_api_route("/login", self.session.login, methods=["POST"])
        router.add_api_route("", self.inbox, methods=["GET"])
        router.add_api_route("/alerts/{alert_id}/ack", self.acknowledge, methods=["POST"])
        router.add_api_route("/alerts/{alert_id}/reply", self.reply, methods=["POST"])
        router.add_api_route("/logout", self.session.logout, methods=["POST"])
        return router

    async def inbox(self, request: Request) -> HTMLResponse:
        who = await self.session.signed_in(request)
        rows = await run_in_threadpool(self._rows, await own_alerts(self.store, who))
        csrf = self.pages.csrf(request.cookies[COOKIE])
        return self.pages.render("inbox.html", request, who=who, alerts=rows, csrf=csrf)

    def _rows(self, alerts: list[Alert]) -> list[_Row]:
        now = datetime.now(UTC)
        return [_Row.of(a, now, self._gist(a)) for a in alerts]

    def _gist(self, alert: Alert) -> AlertGist | None:
        """One alert that cannot be read must not hide the others: its card says so."""
        if self.gist is None:
            return None
        try:
            return self.gist(alert)
        except BrokerError as exc:
            log.warning("alert_gist_unreadable", alert_id=alert.alert_id, error=type(exc).__name__)
            return None

    async def acknowledge(self, request: Request, alert_id: str) -> Response:
        who, _ = await self.session.posted(request)
        await check_own(self.store, who, alert_id)
        await self.actions.acknowledge(alert_id, who)
        return self.pages.redirect("", flash="acknowledged")

    async def reply(self, request: Request, alert_id: str) -> Response:
        who, form = await self.session.posted(request)
        text = form.get("text", "").replace("\r\n", "\n").strip()
        if not 0 < len(text) <= MAX_REPLY:
            raise ApiError(422, "request.invalid", f"a reply has 1 to {MAX_REPLY} characters")
        await check_own(self.store, who, alert_id)
        await self.actions.reply(alert_id, who, text)
        return self.pages.redirect("", flash="replied")
