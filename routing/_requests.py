"""The request register: the Post Sentence Authority's notices and information requests
(the Authority's, or SOCT's to services), each with its deadline, and the answers to them.

The gateway feeds it when it delivers (docs/notices.md): one row per request and recipient
(id, from, to, kind, purpose, respond_by), answered by the first `info.response` from that
recipient whose `in_reply_to` names the request (answered_at, the response's id). Overdue
means past `respond_by` and unanswered. Only structured members are kept: never a payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    select,
)

from routing._db import from_db, unavailable_on_db_error, upsert, writing
from routing._schema import metadata

routing_requests = Table(
    "routing_requests",
    metadata,
    Column("request_id", String(64), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("offender", String(64), nullable=False),
    Column("from_agency", String(16), nullable=False),
    Column("from_unit", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("respond_by", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    Column("response_id", String(64)),
    PrimaryKeyConstraint("request_id", "recipient"),
    Index("ix_routing_requests_respond_by", "respond_by"),
)
_Q = routing_requests.c
_CHUNK = 500
_ZERO = timedelta(0)


@dataclass(frozen=True)
class OpenRequest:
    """A notice or information request as delivered to one recipient."""

    request_id: str
    recipient: str
    kind: str
    purpose: str
    offender: str
    from_agency: str
    from_unit: str
    issued_at: datetime
    respond_by: datetime


@dataclass(frozen=True)
class RequestRow(OpenRequest):
    """A request in the register, with its answer if any."""

    answered_at: datetime | None = None
    response_id: str | None = None

    def overdue(self, now: datetime) -> bool:
        return self.answered_at is None and self.respond_by < now

    @property
    def late_by(self) -> timedelta | None:
        """How late the answer came (zero when on time); None while unanswered."""
        if self.answered_at is None:
            return None
        return max(self.answered_at - self.respond_by, timedelta(0))


@dataclass(frozen=True)
class Answer:
    """An info.response: `responder` answers `request_id` with message `response_id`."""

    request_id: str
    responder: str
    response_id: str
    at: datetime


class RequestRegister:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @unavailable_on_db_error
    def open(self, requests: Iterable[OpenRequest]) -> None:
        """Record delivered requests; a redelivered one changes nothing."""
        rows = [vars(r) for r in requests]
        if rows:
            with writing(self._engine) as conn:
                stmt = upsert(self._engine, routing_requests).on_conflict_do_nothing()
                conn.execute(stmt, rows)

    @unavailable_on_db_error
    def answer(self, answers: Iterable[Answer]) -> None:
        """The first answer of each recipient counts; a later one changes nothing."""
        with writing(self._engine) as conn:
            for a in answers:
                conn.execute(
                    routing_requests.update()
                    .where(
                        _Q.request_id == a.request_id,
                        _Q.recipient == a.responder,
                        _Q.answered_at.is_(None),
                    )
                    .values(answered_at=a.at, response_id=a.response_id)
                )

    @unavailable_on_db_error
    def of(self, request_ids: Iterable[str]) -> dict[str, list[RequestRow]]:
        """request id -> its rows (one per recipient), for the ids the register knows."""
        ids = list(dict.fromkeys(request_ids))
        found: dict[str, list[RequestRow]] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                query = select(routing_requests).where(_Q.request_id.in_(ids[i : i + _CHUNK]))
                for row in conn.execute(query):
                    found.setdefault(row.request_id, []).append(_row(row))
        return found

    @unavailable_on_db_error
    def rows(
        self,
        *,
        from_agency: str | None = None,
        purpose: str | None = None,
        issued_from: datetime | None = None,
        issued_to: datetime | None = None,
    ) -> list[RequestRow]:
        """The register, oldest deadline first, optionally narrowed."""
        query = select(routing_requests).order_by(_Q.respond_by, _Q.request_id, _Q.recipient)
        if from_agency is not None:
            query = query.where(_Q.from_agency == from_agency)
        if purpose is not None:
            query = query.where(_Q.purpose == purpose)
        if issued_from is not None:
            query = query.where(_Q.issued_at >= issued_from)
        if issued_to is not None:
            query = query.where(_Q.issued_at < issued_to)
        with self._engine.connect() as conn:
            return [_row(row) for row in conn.execute(query)]

    def overdue(
        self, now: datetime, *, from_agency: str | None = None, purpose: str | None = None
    ) -> list[RequestRow]:
        return [r for r in self.rows(from_agency=from_agency, purpose=purpose) if r.overdue(now)]


def request_summary(row: RequestRow, now: datetime) -> dict[str, Any]:
    """One row as the CLI and the console show it: ids, agencies and dates; `late_days` how
    late the answer came, or how late it is now."""
    late = row.late_by if row.answered_at is not None else max(now - row.respond_by, _ZERO)
    return {
        "request_id": row.request_id,
        "kind": row.kind,
        "from": f"{row.from_agency}/{row.from_unit}",
        "to": row.recipient,
        "offender": row.offender,
        "purpose": row.purpose,
        "issued_at": row.issued_at.isoformat(),
        "respond_by": row.respond_by.isoformat(),
        "answered_at": row.answered_at.isoformat() if row.answered_at else None,
        "overdue": row.overdue(now),
        "late_days": round(late.total_seconds() / 86400, 1) if late else 0.0,
    }


def _row(row: Row[Any]) -> RequestRow:
    data = dict(row._asdict())
    for name in ("issued_at", "respond_by", "answered_at"):
        data[name] = from_db(data[name])
    return RequestRow(**data)
