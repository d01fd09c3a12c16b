"""Designated contacts' alerts: a JSON API under /api/v1/alerts and a server-rendered web
inbox under /inbox, both calling the same `AlertActions` and accepting the same bearer tokens
as the audit API (role `contact`; the token's `sub` is the contact id, `duty` for a duty
officer).

A contact sees and acts on an alert only while it is routed to them (agency and contact id
both match); anyone else's alert answers 404, so ids of other people's alerts reveal nothing.

The inbox keeps the token in an HttpOnly, SameSite=Strict cookie scoped to /inbox. Every form
post must come from this origin (the Origin header, when sent) and carry a CSRF token that is
an HMAC of that cookie under a key held only by this process (a restart just asks for the
page again). Templates autoescape everything; pages show ids and codes, never names or
payloads (the broker stores none). Every request is logged with ids and status only.
"""

# No `from __future__ import annotations`: FastAPI must resolve the `Annotated` dependency
# aliases defined inside `_api` at run time.
import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from broker.alert_actions import AlertActions
from broker.api_audit import ApiError
from broker.api_audit_models import ErrorOut
from broker.auth import AuthConfig, AuthError, Principal, Role, TokenVerifier, require_role
from broker.errors import Refusal
from routing import Alert, RoutingError, RoutingStore

PREFIX = "/api/v1/alerts"
INBOX = "/inbox"
COOKIE = "s284_inbox"
MAX_REPLY = 2000
MAX_FORM_BYTES = 16 * 1024
LOCAL_ZONE = ZoneInfo("Australia/Melbourne")
CONTACTS = frozenset({Role.CONTACT})
NOT_FOUND = frozenset({"routing.unknown_alert"})
MAPPED = (AuthError, ApiError, RoutingError, Refusal, RequestValidationError)
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (401, 403, 404, 409, 422, 503)
}

log = structlog.get_logger("s284.api.alerts")


# -- wire models -------------------------------------------------------------------------


class AlertOut(BaseModel):
    """An alert as its contact sees it: ids and codes only."""

    alert_id: str
    message_id: str
    agency: str
    contact_id: str
    offender: str
    topic: str
    sender_agency: str
    purpose: str
    created_at: datetime
    deadline: datetime | None
    overdue: bool
    status: str
    level: int = Field(description="0 the designated contact, 1 the deputy, 2 the duty inbox")
    route_reason: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None

    @classmethod
    def of(cls, alert: Alert, now: datetime) -> Self:
        return cls(
            alert_id=alert.alert_id,
            message_id=alert.message_id,
            agency=alert.agency,
            contact_id=alert.contact_id,
            offender=alert.offender,
            topic=alert.topic.value,
            sender_agency=alert.sender_agency,
            purpose=alert.purpose,
            created_at=alert.created_at,
            deadline=alert.deadline,
            overdue=_overdue(alert, now),
            status=alert.status.value,
            level=alert.level,
            route_reason=alert.route_reason,
            acknowledged_by=alert.acknowledged_by,
            acknowledged_at=alert.acknowledged_at,
        )


class AlertList(BaseModel):
    alerts: list[AlertOut]


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_REPLY, description="the concern, plain text")


class ReplyOut(BaseModel):
    alert_id: str
    message_id: str = Field(description="the concern.report's message id")


# -- the one error mapping and the access log ---------------------------------------------


def _problem(exc: Exception) -> tuple[int, str, str]:
    """(status, code, detail) of every error these routes raise on purpose."""
    if isinstance(exc, AuthError | ApiError):
        return exc.status, exc.code, exc.detail
    if isinstance(exc, RoutingError):
        status = 404 if exc.reason in NOT_FOUND else 409
        return status, exc.reason, exc.detail or exc.reason
    if isinstance(exc, Refusal):
        return 422, exc.code.value, exc.detail
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return 422, "request.invalid", f"{where}: {first.get('msg', 'invalid')}"
    raise exc


def _json_error(_request: Request, exc: Exception) -> Response:
    status, code, detail = _problem(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None  # noqa: PLR2004
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _logged(to_response: Callable[[Request, Exception], Response]) -> type[APIRoute]:
    class Logged(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler, path = super().get_route_handler(), self.path

            async def logged(request: Request) -> Response:
                try:
                    response = await handler(request)
                except MAPPED as exc:
                    response = to_response(request, exc)
                except Exception:
                    _access(request, path, 500)
                    raise
                _access(request, path, response.status_code)
                return response

            return logged

    return Logged


def _access(request: Request, path: str, status: int) -> None:
    who: Principal | None = getattr(request.state, "principal", None)
    log.info(
        "alerts.access",
        subject=who.subject[:128] if who else "anonymous",
        agency=who.agency if who else None,
        method=request.method,
        route=path,
        alert_id=request.path_params.get("alert_id"),
        status=status,
    )


# -- shared between the API and the inbox ------------------------------------------------


def _overdue(alert: Alert, now: datetime) -> bool:
    return alert.acknowledged_at is None and alert.deadline is not None and alert.deadline < now


async def _own_alerts(store: RoutingStore, who: Principal) -> list[Alert]:
    alerts = await run_in_threadpool(store.open_alerts, who.agency or "", who.subject)
    return sorted(alerts, key=lambda a: a.created_at, reverse=True)


async def _check_own(store: RoutingStore, who: Principal, alert_id: str) -> None:
    alert = await run_in_threadpool(store.alert, alert_id)
    if alert is None or (alert.agency, alert.contact_id) != (who.agency, who.subject):
        raise RoutingError("routing.unknown_alert", "no alert with that id is routed to you")


def alerts_router(store: RoutingStore, auth: AuthConfig, actions: AlertActions) -> APIRouter:
    """The JSON API and the web inbox; mount with
    `app.include_router(alerts_router(routing_store, auth, actions))`."""
    verifier = TokenVerifier(auth)
    router = APIRouter()
    router.include_router(_api(store, verifier, actions))
    router.include_router(_Inbox(store, verifier, actions).router())
    return router


# -- the JSON API ---------------------------------------------------------------------------


def _api(store: RoutingStore, verifier: TokenVerifier, actions: AlertActions) -> APIRouter:
    bearer = HTTPBearer(auto_error=False, description="JWT with sub, s284_role, s284_agency")
    router = APIRouter(
        prefix=PREFIX, tags=["alerts"], route_class=_logged(_json_error), responses=ERRORS
    )

    def contact(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise AuthError(401, "auth.missing_token", "send Authorization: Bearer <token>")
        principal = verifier.verify(credentials.credentials)
        request.state.principal = principal
        require_role(principal, CONTACTS)
        return principal

    who_t = Annotated[Principal, Depends(contact)]

    @router.get("", summary="Your open alerts, newest first")
    async def list_alerts(who: who_t) -> AlertList:
        """Alerts routed to the caller (agency and contact id) that nobody acknowledged."""
        now = datetime.now(UTC)
        return AlertList(alerts=[AlertOut.of(a, now) for a in await _own_alerts(store, who)])

    @router.post("/{alert_id}/ack", summary="Acknowledge an alert")
    async def acknowledge(who: who_t, alert_id: str) -> AlertOut:
        """Records the acknowledgement; the managing officer is told. 409 if already done."""
        await _check_own(store, who, alert_id)
        return AlertOut.of(await actions.acknowledge(alert_id, who), datetime.now(UTC))

    @router.post("/{alert_id}/reply", summary="Reply with a concern", status_code=201)
    async def reply(who: who_t, alert_id: str, body: ReplyIn) -> ReplyOut:
        """Sends a concern.report to the managing officer, correlated with the alert's
        message and decided by the s 284 policy (422 with its reason code if refused)."""
        await _check_own(store, who, alert_id)
        message_id = await actions.reply(alert_id, who, body.text)
        return ReplyOut(alert_id=alert_id, message_id=message_id)

    return router


# -- the web inbox ------------------------------------------------------------------------

CODE = re.compile(r"[a-z_]+(\.[a-z_]+)+")
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
}
STATUS_TEXT = {
    "open": "open",
    "escalated_deputy": "escalated to the deputy",
    "escalated_duty": "escalated to the duty inbox",
    "acknowledged": "acknowledged",
}


@dataclass(frozen=True)
class _Flash:
    text: str
    error: bool
    code: str | None


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

    @classmethod
    def of(cls, alert: Alert, now: datetime) -> Self:
        return cls(
            alert_id=alert.alert_id,
            offender=alert.offender,
            topic=alert.topic.value.replace("_", " "),
            sender_agency=alert.sender_agency,
            purpose=alert.purpose.replace("_", " "),
            received=_local(alert.created_at),
            received_iso=alert.created_at.isoformat(),
            deadline=_local(alert.deadline) if alert.deadline else None,
            deadline_iso=alert.deadline.isoformat() if alert.deadline else None,
            overdue=_overdue(alert, now),
            status=STATUS_TEXT.get(alert.status.value, alert.status.value),
        )


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_ZONE).strftime("%a %d %b %Y %H:%M %Z")


class _Pages:
    """Renders the templates with the headers every inbox page carries."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("broker", "templates"), autoescape=True, undefined=StrictUndefined
        )
        self._css = (files("broker") / "templates" / "inbox.css").read_text(encoding="utf-8")
        digest = base64.b64encode(hashlib.sha256(self._css.encode()).digest()).decode()
        self.headers = {
            "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{digest}'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send Origin: null
            "Cache-Control": "no-store",
        }
        self._csrf_key = secrets.token_bytes(32)

    def render(
        self,
        name: str,
        request: Request,
        status: int = 200,
        flash: _Flash | None = None,
        **ctx: Any,
    ) -> HTMLResponse:
        flash = flash or _flash(request)
        html = self._env.get_template(name).render(
            css=self._css, prefix=INBOX, flash=flash, max_reply=MAX_REPLY, **ctx
        )
        return HTMLResponse(html, status_code=status, headers=self.headers)

    def redirect(self, to: str, **query: str) -> RedirectResponse:
        url = f"{INBOX}{to}" + (f"?{urlencode(query)}" if query else "")
        return RedirectResponse(url, status_code=303, headers=self.headers)

    def csrf(self, token: str) -> str:
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()


def _flash(request: Request) -> _Flash | None:
    key, code = request.query_params.get("flash"), request.query_params.get("code")
    if key not in FLASH:
        return None
    text, error = FLASH[key]
    return _Flash(text, error, code if code and len(code) <= 64 and CODE.fullmatch(code) else None)  # noqa: PLR2004


def _inbox_error(pages: _Pages) -> Callable[[Request, Exception], Response]:
    """Signed-out or invalid sessions go to the login page; other refusals back to the inbox
    with a message naming the reason code."""
    flash_for = {403: "stale_form", 404: "not_found", 409: "conflict", 422: "refused"}

    def to_response(_request: Request, exc: Exception) -> Response:
        status, code, _detail = _problem(exc)
        if status == 401:  # noqa: PLR2004
            response = pages.redirect("/login", flash="expired")
            response.delete_cookie(COOKIE, path=INBOX)
            return response
        flash = "invalid" if code == "request.invalid" else flash_for.get(status, "conflict")
        return pages.redirect("", flash=flash, code=code)

    return to_response


async def _form(request: Request) -> dict[str, str]:
    """The url-encoded form of a post, size-capped, from this origin only."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise AuthError(403, "auth.cross_origin", "the form was posted from another site")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(413, "request.invalid", "the form is too large")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=8))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "request.invalid", "the form cannot be read") from None


class _Inbox:
    """The inbox pages and form posts; every handler is one step of a contact's visit."""

    def __init__(
        self, store: RoutingStore, verifier: TokenVerifier, actions: AlertActions
    ) -> None:
        self.store, self.verifier, self.actions = store, verifier, actions
        self.pages = _Pages()

    def router(self) -> APIRouter:
        logged = _logged(_inbox_error(self.pages))
        router = APIRouter(prefix=INBOX, include_in_schema=False, route_class=logged)
        router.add_api_route("/login", self.login_page, methods=["GET"])
        router.add_api_route("/login", self.login, methods=["POST"])
        router.add_api_route("", self.inbox, methods=["GET"])
        router.add_api_route("/alerts/{alert_id}/ack", self.acknowledge, methods=["POST"])
        router.add_api_route("/alerts/{alert_id}/reply", self.reply, methods=["POST"])
        router.add_api_route("/logout", self.logout, methods=["POST"])
        return router

    def _signed_in(self, request: Request) -> Principal:
        token = request.cookies.get(COOKIE)
        if not token:
            raise AuthError(401, "auth.missing_token", "sign in")
        principal = self.verifier.verify(token)
        request.state.principal = principal
        if principal.role is not Role.CONTACT:
            raise AuthError(401, "auth.forbidden", "the inbox is for designated contacts")
        return principal

    async def _posted(self, request: Request) -> tuple[Principal, dict[str, str]]:
        who = await run_in_threadpool(self._signed_in, request)
        form = await _form(request)
        expected = self.pages.csrf(request.cookies[COOKIE])
        if not hmac.compare_digest(form.get("csrf", ""), expected):
            raise AuthError(403, "auth.bad_csrf", "the form's CSRF token does not match")
        return who, form

    async def login_page(self, request: Request) -> HTMLResponse:
        return self.pages.render("login.html", request)

    async def login(self, request: Request) -> Response:
        try:
            token = (await _form(request)).get("token", "").strip()
            principal = await run_in_threadpool(self.verifier.verify, token)
            request.state.principal = principal
            require_role(principal, CONTACTS)
        except (AuthError, ApiError) as exc:
            flash = _Flash(f"Not signed in: {exc.detail}.", error=True, code=exc.code)
            return self.pages.render("login.html", request, exc.status, flash)
        response = self.pages.redirect("")
        secure = request.url.scheme == "https"
        response.set_cookie(
            COOKIE, token, path=INBOX, httponly=True, samesite="strict", secure=secure
        )
        return response

    async def inbox(self, request: Request) -> HTMLResponse:
        who = await run_in_threadpool(self._signed_in, request)
        now = datetime.now(UTC)
        rows = [_Row.of(a, now) for a in await _own_alerts(self.store, who)]
        csrf = self.pages.csrf(request.cookies[COOKIE])
        return self.pages.render("inbox.html", request, who=who, alerts=rows, csrf=csrf)

    async def acknowledge(self, request: Request, alert_id: str) -> Response:
        who, _ = await self._posted(request)
        await _check_own(self.store, who, alert_id)
        await self.actions.acknowledge(alert_id, who)
        return self.pages.redirect("", flash="acknowledged")

    async def reply(self, request: Request, alert_id: str) -> Response:
        who, form = await self._posted(request)
        text = form.get("text", "").replace("\r\n", "\n").strip()
        if not 0 < len(text) <= MAX_REPLY:
            raise ApiError(422, "request.invalid", f"a reply has 1 to {MAX_REPLY} characters")
        await _check_own(self.store, who, alert_id)
        await self.actions.reply(alert_id, who, text)
        return self.pages.redirect("", flash="replied")

    async def logout(self, request: Request) -> Response:
        await self._posted(request)
        response = self.pages.redirect("/login", flash="signed_out")
        response.delete_cookie(COOKIE, path=INBOX)
        return response
