"""Oversight over HTTP: statistics for the Post Sentence Authority, and a logged decision
re-run with the bundle version that made it (docs/oversight.md).

`GET /api/v1/oversight/statistics?from&to` gives counts only, from the log's structured
members: the `psa` role may read it and nothing else. `GET /api/v1/audit/records/{id}/explain`
is for those who may read the record itself. Every request is in the access log, like
the rest of the audit API; every error leaves through the one map (broker/http/errors.py).
"""

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request

from audit import AuditStore, Period, PeriodError, Viewer, record_by_id, statistics
from broker.auth import AuthConfig, Principal, Role, TokenVerifier
from broker.http.access import audit_access, bearer_caller, logged_route
from broker.http.audit_models import ERRORS
from broker.http.errors import ApiError
from policies import BundleArchive, BundleNotArchivedError, PolicyBundleError, RecordedDecision
from policies import replay as replay_decision
from routing import RequestRegister, RoutingStore, join_register_figures, request_statistics

NO_REGISTER = "this process has no request register (routing database)"


def with_requests(
    figures: dict[str, Any], requests: RequestRegister | None, period: Period
) -> dict[str, Any]:
    """The figures with the request register's (docs/oversight.md, `requests`)."""
    if requests is None:
        missing = {"notices_issued_and_answered": NO_REGISTER}
        return {**figures, "not_computable": {**figures["not_computable"], **missing}}
    counted = request_statistics(requests, period.start, period.end, datetime.now(UTC))
    rest = {k: v for k, v in figures.items() if k != "not_computable"}
    return {**rest, "requests": counted, "not_computable": figures["not_computable"]}

COUNTERS = frozenset({Role.PSA, Role.MAP_CHAIR, Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN})
VICTORIA = ZoneInfo("Australia/Melbourne")  # a review is overdue from the day after, there
EXPLAINERS = frozenset({Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN})


def oversight_statistics(
    store: AuditStore, routing: RoutingStore | None, period: Period, today: date | None = None
) -> dict[str, Any]:
    """The log's figures, with the CSP, breach and request registers' joined in when this
    process has them (without, those figures stay under `not_computable`)."""
    figures = statistics(store, period)
    if routing is None:
        return with_requests(figures, None, period)
    day = today or datetime.now(VICTORIA).date()
    joined = join_register_figures(figures, routing.register_figures(period.start, period.end, day))
    return with_requests(joined, routing.requests, period)


def oversight_router(
    store: AuditStore,
    auth: AuthConfig,
    bundles: BundleArchive | None,
    routing: RoutingStore | None = None,
) -> APIRouter:
    """Statistics and explain; include with `app.include_router(oversight_router(...))`.
    Without `bundles` (no archive in this process) explain answers 503; without `routing`
    the register's figures stay under `not_computable`."""
    verifier = TokenVerifier(auth)
    route_class = logged_route(audit_access(store))
    router = APIRouter(prefix="/api/v1", route_class=route_class, responses=ERRORS)

    def caller(roles: frozenset[Role]) -> Callable[..., Principal]:
        return bearer_caller(verifier, roles)

    counter = Annotated[Principal, Depends(caller(COUNTERS))]
    explainer = Annotated[Principal, Depends(caller(EXPLAINERS))]

    @router.get("/oversight/statistics", tags=["oversight"], summary="Oversight statistics")
    def get_statistics(
        _who: counter,
        start: Annotated[str, Query(alias="from", description="YYYY-MM-DD or RFC 3339")],
        end: Annotated[str, Query(alias="to", description="YYYY-MM-DD (included) or RFC 3339")],
    ) -> dict[str, Any]:
        """Counts for the period (each defined in docs/oversight.md); never a record."""
        try:
            period = Period.parse(start, end)
        except PeriodError as exc:
            raise ApiError(400, "oversight.bad_period", str(exc)) from None
        return oversight_statistics(store, routing, period)

    @router.get(
        "/audit/records/{record_id}/explain",
        tags=["audit"],
        summary="Re-run a logged decision with its own bundle version",
    )
    def get_explain(request: Request, who: explainer, record_id: str) -> dict[str, Any]:
        """The recorded decision beside the same decision re-run; `same` false, with the
        differences listed, when they disagree."""
        viewer = Viewer(who.role.value, who.agency, who.subject)
        record = record_by_id(store, viewer, record_id)
        if record is None:
            raise ApiError(404, "audit.not_found", "no record with that id is visible to you")
        request.state.results = 1
        return explain_record(record, bundles)

    return router


def explain_record(record: dict[str, Any], bundles: BundleArchive | None) -> dict[str, Any]:
    """The explain answer for one rendered record, or the error the one map answers."""
    if bundles is None:
        raise ApiError(503, "explain.no_archive", "this process has no policy bundle archive")
    try:
        return replay_decision(RecordedDecision.from_record(record), bundles).as_dict()
    except BundleNotArchivedError as exc:
        raise ApiError(409, "explain.bundle_missing", exc.message) from None
    except PolicyBundleError as exc:
        raise ApiError(409, "explain.not_a_decision", exc.message) from None
