"""The routing admin API (/api/v1/routing) and CSP review dates (/api/v1/csp).

Changing the routing table is an admin's job and is itself recorded in the disclosure log
(who, when, the digests of the table before and after); reading it and its gaps is open to
auditors too. Every request lands in the access log, like the audit API's; routing errors
leave with the status their reason code has in the one map (broker/http/errors.py).
"""

# No `from __future__ import annotations`: FastAPI resolves the Annotated dependency aliases
# defined inside `routing_router` at run time.
import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel

from audit import AuditStore
from broker.alerts.admin import import_table
from broker.auth import AuthConfig, Principal, Role, TokenVerifier
from broker.http.access import audit_access, bearer_caller, logged_route
from broker.http.audit_models import ERRORS
from routing import RoutingStore

ADMINS = frozenset({Role.ADMIN})
OVERSIGHT = frozenset({Role.ADMIN, Role.AUDITOR})
CSP_READERS = frozenset({Role.ADMIN, Role.AUDITOR, Role.PRIVACY_OFFICER, Role.MAP_CHAIR})


class TableChangeOut(BaseModel):
    version: int
    previous_version: int | None
    digest_before: str | None
    digest_after: str
    added: int
    removed: int
    changed: int


class GapOut(BaseModel):
    agency: str
    area: str | None
    topic: str
    reason: str
    alert_id: str | None


class CspReviewOut(BaseModel):
    offender: str
    csp_id: str
    last_review: str
    due: str


def routing_router(
    routing: RoutingStore, audit: AuditStore, auth: AuthConfig, node: str
) -> APIRouter:
    verifier = TokenVerifier(auth)
    route_class = logged_route(audit_access(audit))
    router = APIRouter(prefix="/api/v1", route_class=route_class, responses=ERRORS)
    admin = Annotated[Principal, Depends(bearer_caller(verifier, ADMINS))]
    overseer = Annotated[Principal, Depends(bearer_caller(verifier, OVERSIGHT))]
    csp_reader = Annotated[Principal, Depends(bearer_caller(verifier, CSP_READERS))]

    @router.get("/routing/table", tags=["routing"], summary="The current routing table")
    async def get_table(_who: overseer) -> dict[str, Any]:
        """The table as imported (YAML shape, as JSON); 404 before the first import."""
        return await asyncio.to_thread(routing.export_table)

    @router.put("/routing/table", tags=["routing"], summary="Replace the routing table")
    async def put_table(who: admin, doc: Annotated[dict[str, Any], Body()]) -> TableChangeOut:
        """A new version of the whole table; recorded in the disclosure log. 422 with the
        reason code and the row at fault when the table is not valid."""
        change = await asyncio.to_thread(import_table, routing, audit, doc, who.subject, node)
        return TableChangeOut.model_validate(change, from_attributes=True)

    @router.get("/routing/check", tags=["routing"], summary="Needs nobody covers")
    async def get_check(_who: overseer) -> list[GapOut]:
        """Every (agency, area, topic) the scheme needs without an active contact, and
        alerts parked at a duty inbox because of a routing failure."""
        gaps = await asyncio.to_thread(routing.check)
        return [GapOut.model_validate(g, from_attributes=True) for g in gaps]

    @router.get("/csp/overdue", tags=["csp"], summary="CSPs past their review date")
    async def get_overdue(_who: csp_reader) -> list[CspReviewOut]:
        """Coordinated services plans whose six-monthly review is overdue, oldest first."""
        today = datetime.now(UTC).date()
        rows = await asyncio.to_thread(routing.overdue, today)
        return [
            CspReviewOut(
                offender=r.offender,
                csp_id=r.csp_id,
                last_review=r.last_review.isoformat(),
                due=r.due.isoformat(),
            )
            for r in rows
        ]

    return router
