"""The privacy officers' API over the disclosure log, mounted at /api/v1/audit.

Every request, refused ones included, is appended to the access log (`_AccessLogged`),
and every error leaves as `{"error": code, "detail": sentence}` from that same one place.
Who sees which record is decided in SQL by `audit._query`; this module maps HTTP to it.
"""

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from audit import AuditError, AuditRecord, AuditStore, Event
from audit._query import (
    MAX_LIMIT,
    AccessEntry,
    AccessFilters,
    InvalidCursorError,
    Viewer,
    access_log,
    accounting,
    record_access,
    record_by_id,
    refusals,
    review_queue,
    search,
)
from broker.auth import AuthConfig, AuthError, Principal, Role, TokenVerifier, require_role
from broker.errors import BrokerError
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
    export_rows,
)
from broker.ids import new_id

PREFIX = "/api/v1/audit"
READERS = frozenset({Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN})
OVERSIGHT = frozenset({Role.AUDITOR, Role.ADMIN})
REVIEWERS = frozenset({Role.PRIVACY_OFFICER, Role.ADMIN})


class ApiError(BrokerError):
    """A request the API refuses for a reason other than authentication."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


# -- the access log and the one error mapping ------------------------------------------


def _error(status: int, code: str, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None  # noqa: PLR2004
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _as_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, AuthError | ApiError):
        return _error(exc.status, exc.code, exc.detail)
    if isinstance(exc, InvalidCursorError):
        return _error(400, "request.bad_cursor", str(exc))
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "request.invalid", f"{where}: {first.get('msg', 'invalid')}")
    raise exc


def _entry(request: Request, status: int) -> AccessEntry:
    principal: Principal | None = getattr(request.state, "principal", None)
    return AccessEntry(
        subject=principal.subject[:128] if principal else "anonymous",
        role=principal.role.value if principal else "none",
        agency=principal.agency if principal else None,
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        status=status,
        results=getattr(request.state, "results", None),
        at=datetime.now(UTC),
    )


_BEARER = HTTPBearer(auto_error=False, description="JWT with sub, s284_role, s284_agency")


def bearer_caller(verifier: TokenVerifier, roles: frozenset[Role]) -> Callable[..., Principal]:
    """A FastAPI dependency: the verified caller, if their role is one of `roles`."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Principal:
        if credentials is None:
            raise AuthError(401, "auth.missing_token", "send Authorization: Bearer <token>")
        principal = verifier.verify(credentials.credentials)
        request.state.principal = principal
        require_role(principal, roles)
        return principal

    return dependency


def access_logged_route(engine: Engine) -> type[APIRoute]:
    """Routes whose every request (refused ones too) lands in the audit access log, and
    whose errors all leave as {"error", "detail"}."""
    class AccessLogged(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def logged(request: Request) -> Response:
                try:
                    response = await handler(request)
                except (AuthError, ApiError, InvalidCursorError, RequestValidationError) as exc:
                    response = _as_response(exc)
                except Exception:
                    await run_in_threadpool(record_access, engine, _entry(request, 500))
                    raise
                if isinstance(response, StreamingResponse):  # count known once streamed
                    response.background = BackgroundTask(
                        lambda: record_access(engine, _entry(request, response.status_code))
                    )
                else:
                    await run_in_threadpool(
                        record_access, engine, _entry(request, response.status_code)
                    )
                return response

            return logged

    return AccessLogged


# -- the router --------------------------------------------------------------------------


def _hex(values: list[bytes]) -> list[str]:
    return [v.hex() for v in values]


def _viewer(principal: Principal) -> Viewer:
    return Viewer(principal.role.value, principal.agency, principal.subject)


def _counted(request: Request, rows: list[Any]) -> list[Any]:
    request.state.results = len(rows)
    return rows


def audit_router(store: AuditStore, auth: AuthConfig) -> APIRouter:  # noqa: C901, PLR0915
    """All audit endpoints; include with `app.include_router(audit_router(store, auth))`."""
    engine = store.engine
    verifier = TokenVerifier(auth)
    router = APIRouter(
        prefix=PREFIX, tags=["audit"], route_class=access_logged_route(engine), responses=ERRORS
    )

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
        page = search(engine, _viewer(who), params.filters(), params.cursor, params.limit)
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
        record = _visible_record(engine, who, record_id)
        _counted(request, [record])
        try:
            proof = store.inclusion_proof(record["seq"])
        except AuditError as exc:
            raise ApiError(503, "audit.no_proof", str(exc)) from None
        out = InclusionProofOut(
            leaf_index=proof.seq,
            leaf_hash=proof.leaf_hash.hex(),
            tree_size=proof.tree_size,
            root=proof.root.hex(),
            audit_path=_hex(proof.proof),
            checkpoint_note=proof.checkpoint_note,
        )
        return RecordWithProof.model_validate({"record": record, "inclusion_proof": out})

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
        page = accounting(engine, _viewer(who), offender, cursor, limit)
        rows = _counted(request, page.rows)
        return Accounting.model_validate(
            {"offender": offender, "disclosures": rows, "next_cursor": page.next_cursor}
        )

    @router.get("/refusals", summary="Refused messages")
    def get_refusals(
        request: Request,
        who: reader,
        params: Annotated[PageQuery, Query()],
    ) -> RecordPage:
        """Refusals (event `refused`) with their reason codes, newest first."""
        page = refusals(engine, _viewer(who), params.filters(), params.cursor, params.limit)
        return RecordPage.model_validate(
            {"records": _counted(request, page.rows), "next_cursor": page.next_cursor}
        )

    @router.get("/reviews", summary="Disclosures awaiting privacy review")
    def get_reviews(
        request: Request, who: reader, cursor: str | None = None, limit: limit_q = 100
    ) -> RecordPage:
        """Review-marked disclosures (risk_reduction) that nobody has reviewed yet."""
        page = review_queue(engine, _viewer(who), cursor, limit)
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
        target = _visible_record(engine, who, record_id)
        _check_reviewable(who, target)
        review = _review_record(who, target, body)
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
        try:
            proof = store.consistency_proof(old, new)
        except AuditError as exc:
            raise ApiError(400, "audit.no_proof", str(exc)) from None
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
        rows = export_rows(engine, _viewer(who), params.filters(), request)
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
        page = access_log(engine, filters, cursor, limit)
        return AccessPage.model_validate(
            {"entries": _counted(request, page.rows), "next_cursor": page.next_cursor}
        )

    return router


# -- helpers -------------------------------------------------------------------------------


def _visible_record(engine: Engine, who: Principal, record_id: str) -> dict[str, Any]:
    record = record_by_id(engine, _viewer(who), record_id)
    if record is None:
        raise ApiError(404, "audit.not_found", "no record with that id is visible to you")
    return record


def _check_reviewable(who: Principal, target: dict[str, Any]) -> None:
    involved = {target["ingress_agency"], target["sender_agency"], target["recipient_agency"]}
    if who.role is Role.PRIVACY_OFFICER and who.agency not in involved:
        raise AuthError(
            403, "auth.forbidden", "only an involved agency's privacy officer may review"
        )
    if target["event"] != Event.DISCLOSED or not target["review_required"]:
        raise ApiError(409, "audit.not_reviewable", "that record is not marked for review")


def _review_record(who: Principal, target: dict[str, Any], body: ReviewIn) -> AuditRecord:
    record_id = new_id()
    return AuditRecord(
        record_id=record_id,
        dedupe_key=f"reviewed:{target['record_id']}:{record_id}",
        event=Event.REVIEWED.value,
        occurred_at=datetime.now(UTC),
        ingress_agency=who.agency or target["ingress_agency"],
        sender_agency=who.agency,
        sender_person=who.subject,
        decision="none",
        reason_code=f"review.{body.outcome}",
        reason=body.outcome,
        justification=body.note,  # free text may name people: erasable, not canonical
        offender=target.get("offender"),
        kind=target["kind"],
        purpose=target["purpose"],
        restricted=target["restricted"],
        refers_to=target["record_id"],
        node="api",
    )
