"""The privacy officers' API over the disclosure log, mounted at /api/v1/audit.

Every request, refused ones included, is appended to the access log (the one logged route
class, broker/http/access.py); every error leaves through the one map (broker/http/errors.py).
Who sees which record is decided in SQL by `audit`'s queries; this module maps HTTP to them.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from audit import (
    MAX_LIMIT,
    AccessFilters,
    AuditRecord,
    AuditStore,
    Event,
    Viewer,
    access_log,
    accounting,
    record_by_id,
    records,
    refusals,
    review_queue,
    search,
    stored_canonical,
    unconfirmed,
)
from broker.auth import AuthConfig, AuthError, Principal, Role, TokenVerifier
from broker.http.access import audit_access, bearer_caller, logged_route
from broker.http.audit_models import (
    ERRORS,
    AccessPage,
    Accounting,
    CheckpointOut,
    ConsistencyOut,
    ErrorOut,
    InclusionProofOut,
    PageQuery,
    RecordPage,
    RecordWithProof,
    ReviewIn,
    ReviewOut,
    SearchQuery,
    UnconfirmedList,
    export_rows,
)
from broker.http.errors import ApiError
from broker.ids import new_id

PREFIX = "/api/v1/audit"
READERS = frozenset({Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN})
OVERSIGHT = frozenset({Role.AUDITOR, Role.ADMIN})
REVIEWERS = frozenset({Role.PRIVACY_OFFICER, Role.ADMIN})


# -- the router --------------------------------------------------------------------------


def _hex(values: list[bytes]) -> list[str]:
    return [v.hex() for v in values]


def viewer_of(principal: Principal) -> Viewer:
    return Viewer(principal.role.value, principal.agency, principal.subject)


def _counted(request: Request, rows: list[Any]) -> list[Any]:
    request.state.results = len(rows)
    return rows


def audit_router(store: AuditStore, auth: AuthConfig) -> APIRouter:  # noqa: C901, PLR0915
    """All audit endpoints; include with `app.include_router(audit_router(store, auth))`."""
    verifier = TokenVerifier(auth)
    route_class = logged_route(audit_access(store))
    router = APIRouter(prefix=PREFIX, tags=["audit"], route_class=route_class, responses=ERRORS)

    def caller(roles: frozenset[Role]) -> Callable[..., Principal]:
        return bearer_caller(verifier, roles)

    reader = Annotated[Principal, Depends(caller(READERS))]
    limit_q = Annotated[int, Query(ge=1, le=MAX_LIMIT)]

    @router.get("/records", summary="Search the disclosure log")
    def get_records(
        request: Request,
        who: reader,
        params: Annotated[PageQuery, Query()],
    ) -> RecordPage:
        """Records matching every filter that the caller may see, newest first."""
        page = search(store, viewer_of(who), params.filters(), params.cursor, params.limit)
        return RecordPage.model_validate(
            {"records": _counted(request, page.rows), "next_cursor": page.next_cursor}
        )

    @router.get(
        "/records/{record_id}",
        summary="One record with its inclusion proof",
        responses={404: {"model": ErrorOut, "description": "no such record visible to you"}},
    )
    def get_record(request: Request, who: reader, record_id: str) -> RecordWithProof:
        """The record and an RFC 9162 inclusion proof against the latest checkpoint."""
        record = _visible_record(store, who, record_id)
        _counted(request, [record])
        proof = store.inclusion_proof(record["seq"])
        out = InclusionProofOut(
            leaf_index=proof.seq,
            leaf_hash=proof.leaf_hash.hex(),
            tree_size=proof.tree_size,
            root=proof.root.hex(),
            audit_path=_hex(proof.proof),
            checkpoint_note=proof.checkpoint_note,
        )
        canonical = stored_canonical(store, proof.seq)
        return RecordWithProof.model_validate(
            {"record": record, "inclusion_proof": out, "canonical": canonical}
        )

    @router.get(
        "/offenders/{offender}/disclosures",
        summary="Accounting of disclosures about one offender",
    )
    def get_accounting(
        request: Request,
        who: reader,
        offender: str,
        cursor: str | None = None,
        limit: limit_q = 100,
    ) -> Accounting:
        """Every disclosure about the offender: purpose, s 284 ground, recipient, time."""
        page = accounting(store, viewer_of(who), offender, cursor, limit)
        rows = _counted(request, page.rows)
        return Accounting.model_validate(
            {"offender": offender, "disclosures": rows, "next_cursor": page.next_cursor}
        )

    @router.get("/unconfirmed", summary="Disclosures no recipient has confirmed taking")
    def get_unconfirmed(
        request: Request,
        who: reader,
        older_than_s: Annotated[int, Query(ge=0, le=366 * 86_400)] = 900,
        limit: limit_q = 100,
    ) -> UnconfirmedList:
        """Disclosures older than `older_than_s` seconds with no `received` record, oldest
        first (as `s284 audit unconfirmed`); only those the caller may see."""
        before = datetime.now(UTC) - timedelta(seconds=older_than_s)
        rows = unconfirmed(store, before, limit, viewer_of(who))
        return UnconfirmedList.model_validate(
            {"older_than": before.isoformat(), "disclosures": _counted(request, rows)}
        )

    @router.get("/refusals", summary="Refused messages")
    def get_refusals(
        request: Request,
        who: reader,
        params: Annotated[PageQuery, Query()],
    ) -> RecordPage:
        """Refusals (event `refused`) with their reason codes, newest first."""
        page = refusals(store, viewer_of(who), params.filters(), params.cursor, params.limit)
        return RecordPage.model_validate(
            {"records": _counted(request, page.rows), "next_cursor": page.next_cursor}
        )

    @router.get("/reviews", summary="Disclosures awaiting privacy review")
    def get_reviews(
        request: Request, who: reader, cursor: str | None = None, limit: limit_q = 100
    ) -> RecordPage:
        """Review-marked disclosures (risk_reduction) that nobody has reviewed yet."""
        page = review_queue(store, viewer_of(who), cursor, limit)
        return RecordPage.model_validate(
            {"records": _counted(request, page.rows), "next_cursor": page.next_cursor}
        )

    @router.post(
        "/reviews/{record_id}",
        summary="Record the outcome of a privacy review",
        status_code=201,
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def post_review(
        request: Request,
        who: Annotated[Principal, Depends(caller(REVIEWERS))],
        record_id: str,
        body: ReviewIn,
    ) -> ReviewOut:
        """Appends a `reviewed` record (itself in the Merkle log) referring to the disclosure;
        the disclosure leaves the review queue. Privacy officers of an involved agency or
        admins only."""
        target = _visible_record(store, who, record_id)
        check_reviewable(who, target)
        review = review_record(who, target, body)
        result = store.append([review])
        _counted(request, [review])
        return ReviewOut(
            record_id=review.record_id,
            seq=result.size_before,
            refers_to=record_id,
            outcome=body.outcome,
        )

    @router.get(
        "/checkpoint",
        summary="The latest signed checkpoint",
        response_model=CheckpointOut,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            404: {"model": ErrorOut, "description": "no checkpoint signed yet"},
        },
    )
    def get_checkpoint(request: Request, _who: reader) -> Response:
        """JSON by default; the bare C2SP signed note with `Accept: text/plain`."""
        row = store.latest_checkpoint()
        if row is None:
            raise ApiError(404, "audit.no_checkpoint", "no checkpoint has been signed yet")
        _counted(request, [row])
        accept = request.headers.get("accept", "")
        if "text/plain" in accept and "application/json" not in accept:
            return PlainTextResponse(row.note)
        out = CheckpointOut(
            size=row.size, root=row.root.hex(), note=row.note, signed_at=row.signed_at
        )
        return JSONResponse(out.model_dump(mode="json"))

    @router.get(
        "/consistency",
        summary="Consistency proof between two tree sizes",
    )
    def get_consistency(
        request: Request,
        _who: reader,
        old: Annotated[int, Query(ge=0)],
        new: Annotated[int, Query(ge=0)],
    ) -> ConsistencyOut:
        """Proves the tree of size `new` extends the tree of size `old` (RFC 9162 2.1.4)."""
        if old > new:
            raise ApiError(400, "request.invalid", "old must not exceed new")
        proof = store.consistency_proof(old, new)  # beyond the log: 400 audit.no_proof
        return ConsistencyOut(old=old, new=new, proof=_hex(_counted(request, proof)))

    @router.get(
        "/export.csv",
        summary="Export a search as CSV",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    )
    def get_export(
        request: Request, who: reader, params: Annotated[SearchQuery, Query()]
    ) -> StreamingResponse:
        """Every record the search finds (not paginated), streamed, newest first."""
        rows = export_rows(store, viewer_of(who), params.filters(), request)
        headers = {"Content-Disposition": 'attachment; filename="s284-audit.csv"'}
        return StreamingResponse(rows, media_type="text/csv", headers=headers)

    @router.get("/access", summary="The API access log")
    def get_access(
        request: Request,
        _who: Annotated[Principal, Depends(caller(OVERSIGHT))],
        subject: str | None = None,
        agency: str | None = None,
        status: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        limit: limit_q = 100,
    ) -> AccessPage:
        """Who asked what, when, and how it ended (refusals included). Auditors and admins."""
        filters = AccessFilters(subject, agency, status, since)
        page = access_log(store, filters, cursor, limit)
        return AccessPage.model_validate(
            {"entries": _counted(request, page.rows), "next_cursor": page.next_cursor}
        )

    return router


# -- helpers -------------------------------------------------------------------------------


def _visible_record(store: AuditStore, who: Principal, record_id: str) -> dict[str, Any]:
    record = record_by_id(store, viewer_of(who), record_id)
    if record is None:
        raise ApiError(404, "audit.not_found", "no record with that id is visible to you")
    return record


def check_reviewable(who: Principal, target: dict[str, Any]) -> None:
    involved = {target["ingress_agency"], target["sender_agency"], target["recipient_agency"]}
    if who.role is Role.PRIVACY_OFFICER and who.agency not in involved:
        raise AuthError(
            403, "auth.forbidden", "only an involved agency's privacy officer may review"
        )
    if target["event"] != Event.DISCLOSED or not target["review_required"]:
        raise ApiError(409, "audit.not_reviewable", "that record is not marked for review")


def review_record(who: Principal, target: dict[str, Any], body: ReviewIn) -> AuditRecord:
    origin = records.Origin(datetime.now(UTC), who.agency or target["ingress_agency"], "api")
    about = records.About(
        sender_agency=who.agency,
        sender_person=who.subject,
        justification=body.note,  # free text may name people: erasable, not canonical
        offender=target.get("offender"),
        kind=target["kind"],
        purpose=target["purpose"],
        restricted=target["restricted"],
    )
    return records.review(new_id(), origin, about, target["record_id"], body.outcome)
