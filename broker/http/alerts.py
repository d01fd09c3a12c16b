"""Designated contacts' alerts: a JSON API under /api/v1/alerts and a server-rendered web
inbox under /inbox, both calling the same `AlertActions` and accepting the same bearer tokens
as the audit API (role `contact`; the token's `sub` is the contact id, `duty` for a duty
officer).

A contact sees and acts on an alert only while it is routed to them (agency and contact id
both match); anyone else's alert answers 404, so ids of other people's alerts reveal nothing.

The inbox keeps the token in an HttpOnly, SameSite=Strict cookie scoped to /inbox. Every form
post must come from this origin (the Origin header, when sent) and carry a CSRF token that is
an HMAC of that cookie under a key held only by this process (a restart just asks for the
page again). Templates autoescape everything; pages show ids and codes, never names, and
an alert's level and summary only where a gist source reads them (broker/http/inbox.py).
Every request is logged with ids and status only.
"""

# No `from __future__ import annotations`: FastAPI must resolve the `Annotated` dependency
# aliases defined inside `_api` at run time.
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from broker.alerts.actions import AlertActions
from broker.auth import AuthConfig, Principal, TokenVerifier
from broker.http.access import bearer_caller, log_access, logged_route
from broker.http.audit_models import ErrorOut
from broker.http.contacts import (
    CONTACTS,
    MAX_REPLY,
    PREFIX,
    GistSource,
    check_own,
    overdue,
    own_alerts,
)
from broker.http.inbox import Inbox
from routing import Alert, RoutingStore

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (401, 403, 404, 409, 422, 503)
}


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
            overdue=overdue(alert, now),
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


def alerts_router(
    store: RoutingStore, auth: AuthConfig, actions: AlertActions, gist: GistSource | None = None
) -> APIRouter:
    """The JSON API and the web inbox; mount with
    `app.include_router(alerts_router(routing_store, auth, actions))`."""
    verifier = TokenVerifier(auth)
    router = APIRouter()
    router.include_router(_api(store, verifier, actions))
    router.include_router(Inbox(store, verifier, actions, gist).router())
    return router


# -- the JSON API ---------------------------------------------------------------------------


def _api(store: RoutingStore, verifier: TokenVerifier, actions: AlertActions) -> APIRouter:
    router = APIRouter(
        prefix=PREFIX, tags=["alerts"], route_class=logged_route(log_access), responses=ERRORS
    )
    who_t = Annotated[Principal, Depends(bearer_caller(verifier, CONTACTS))]

    @router.get("", summary="Your open alerts, newest first")
    async def list_alerts(who: who_t) -> AlertList:
        """Alerts routed to the caller (agency and contact id) that nobody acknowledged."""
        now = datetime.now(UTC)
        return AlertList(alerts=[AlertOut.of(a, now) for a in await own_alerts(store, who)])

    @router.post("/{alert_id}/ack", summary="Acknowledge an alert")
    async def acknowledge(who: who_t, alert_id: str) -> AlertOut:
        """Records the acknowledgement; the managing officer is told. 409 if already done."""
        await check_own(store, who, alert_id)
        return AlertOut.of(await actions.acknowledge(alert_id, who), datetime.now(UTC))

    @router.post("/{alert_id}/reply", summary="Reply with a concern", status_code=201)
    async def reply(who: who_t, alert_id: str, body: ReplyIn) -> ReplyOut:
        """Sends a concern.report to the managing officer, correlated with the alert's
        message and decided by the s 284 policy (422 with its reason code if refused)."""
        await check_own(store, who, alert_id)
        message_id = await actions.reply(alert_id, who, body.text)
        return ReplyOut(alert_id=alert_id, message_id=message_id)

    return router
