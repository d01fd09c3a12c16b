"""Cosignatures over HTTP, mounted under /api/v1/audit beside the checkpoints.

A witness posts the log's checkpoint note with its own cosignature line added (the cosigned
checkpoint as C2SP tlog-cosignature shows it); the broker keeps the lines of registered
witnesses and serves each checkpoint with every cosignature it holds. A cosignature
authenticates itself against the registered key; the bearer token only says who may call.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from audit import (
    AuditStore,
    Checkpoint,
    CosignatureRefusedError,
    NoteError,
    WitnessPolicy,
    add_cosignature,
    quorum_overdue,
    stored_cosignatures,
    witness_status,
)
from broker.auth import AuthConfig, Principal, Role, TokenVerifier
from broker.http.access import audit_access, bearer_caller, logged_route
from broker.http.audit_models import ERRORS, ErrorOut
from broker.http.errors import ApiError

PREFIX = "/api/v1/audit"
READERS = frozenset({Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN})
_MAX_NOTE = 64 * 1024  # a checkpoint and a hundred signature lines fit many times over


class CosignatureOut(BaseModel):
    witness: str
    size: int


class WitnessOut(BaseModel):
    witness: str
    size: int
    age_s: float | None


class WitnessesOut(BaseModel):
    quorum: int
    within_s: float
    overdue_size: int | None
    witnesses: list[WitnessOut]


def _split(note: str) -> tuple[str, list[str]]:
    text, sep, block = note.partition("\n\n")
    if not sep or not note.endswith("\n"):
        raise ApiError(400, "audit.bad_note", "send the checkpoint note with your signature line")
    return text + "\n", block[:-1].split("\n")


def witness_router(
    store: AuditStore, auth: AuthConfig, policy: Callable[[], WitnessPolicy]
) -> APIRouter:
    """POST /cosignatures, GET /checkpoint/cosigned, GET /witnesses."""
    verifier = TokenVerifier(auth)
    router = APIRouter(
        prefix=PREFIX,
        tags=["audit"],
        route_class=logged_route(audit_access(store)),
        responses=ERRORS,
    )
    reader = Annotated[Principal, Depends(bearer_caller(verifier, READERS))]

    @router.post(
        "/cosignatures",
        summary="Hand over a witness's cosignature of a checkpoint",
        status_code=201,
        responses={
            422: {
                "model": ErrorOut,
                "description": "not a registered witness's "
                "valid cosignature of a checkpoint this log signed",
            }
        },
    )
    async def post_cosignature(request: Request, _who: reader) -> list[CosignatureOut]:
        """Body (text/plain): the checkpoint note with the witness's signature line added."""
        raw = await request.body()
        if len(raw) > _MAX_NOTE:
            raise ApiError(413, "request.too_large", "a cosigned checkpoint is a few lines")
        body, lines = _split(raw.decode(errors="replace"))
        held = policy()
        try:
            origin = Checkpoint.parse(body).origin
        except NoteError as exc:
            raise ApiError(400, "audit.bad_note", str(exc)) from None
        names = {w.name for w in held.witnesses}
        ours = [ln for ln in lines if ln.removeprefix("\N{EM DASH} ").split(" ")[0] in names]
        if not ours:
            raise ApiError(422, "audit.cosignature_refused", "no registered witness signed it")
        out = []
        for line in ours:
            try:
                done = add_cosignature(store, held, origin, body, line)
            except CosignatureRefusedError as exc:
                raise ApiError(422, "audit.cosignature_refused", str(exc)) from None
            out.append(CosignatureOut(witness=done.witness, size=done.checkpoint.size))
        request.state.results = len(out)
        return out

    @router.get(
        "/checkpoint/cosigned",
        summary="A checkpoint with every cosignature held",
        response_class=PlainTextResponse,
        responses={404: {"model": ErrorOut, "description": "no such checkpoint"}},
    )
    def get_cosigned(
        request: Request, _who: reader, size: Annotated[int | None, Query(ge=0)] = None
    ) -> Response:
        """The signed note (default: the latest) with the stored witnesses' lines added."""
        rows = store.checkpoints()
        row = rows[-1] if rows and size is None else next((r for r in rows if r.size == size), None)
        if row is None:
            raise ApiError(404, "audit.no_checkpoint", "no checkpoint of that size")
        lines = [line for _, line in stored_cosignatures(store, row.size)]
        request.state.results = 1 + len(lines)
        return PlainTextResponse(row.note + "".join(f"{line}\n" for line in lines))

    @router.get("/witnesses", summary="Each witness's largest cosigned size and its age")
    def get_witnesses(request: Request, _who: reader) -> WitnessesOut:
        """What the quorum alert reads: per registered witness, the largest size it cosigned
        and seconds since its newest cosignature (null: never)."""
        held = policy()
        status = witness_status(store, held)
        late = quorum_overdue(store, held)
        request.state.results = len(status)
        return WitnessesOut(
            quorum=held.quorum,
            within_s=held.within_s,
            overdue_size=late.size if late else None,
            witnesses=[WitnessOut(witness=s.witness, size=s.size, age_s=s.age_s) for s in status],
        )

    return router
