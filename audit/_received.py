"""Confirmations of receipt in the log: which disclosure a recipient's confirmation is
about, and which disclosures no recipient has confirmed yet (`s284 audit unconfirmed`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, not_, select, true

from audit._guard import unavailable_on_db_error
from audit._query import Viewer
from audit._query import _visible as visible
from audit._records import Event, rfc3339
from audit._schema import audit_log
from audit._store import AuditStore


@dataclass(frozen=True)
class Disclosed:
    """A disclosure a confirmation can be about. `confirmed`: a `received` record refers to
    it already, made from the confirmation at stream sequence `confirmation_seq`."""

    record_id: str
    message_id: str
    sender_agency: str | None
    recipient_agency: str
    kind: str | None
    purpose: str | None
    restricted: bool
    confirmed: bool
    confirmation_seq: int | None


def _received() -> Any:
    return audit_log.alias("received")


@unavailable_on_db_error
def disclosure_of(store: AuditStore, message_id: str, recipient: str) -> Disclosed | None:
    """The disclosure of `message_id` to `recipient`, or None if the log holds none."""
    log, rcv = audit_log.c, _received()
    joined = audit_log.outerjoin(
        rcv, and_(rcv.c.refers_to == log.record_id, rcv.c.event == Event.RECEIVED.value)
    )
    query = (
        select(log.record_id, log.sender_agency, log.kind, log.purpose, log.restricted)
        .add_columns(rcv.c.record_id.label("received_id"), rcv.c.canonical.label("received"))
        .select_from(joined)
        .where(
            log.message_id == message_id,
            log.recipient_agency == recipient,
            log.event == Event.DISCLOSED.value,
        )
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return Disclosed(
        row.record_id, message_id, row.sender_agency, recipient, row.kind, row.purpose,
        bool(row.restricted), row.received_id is not None, _ingress_seq(row.received),
    )  # fmt: skip


def _ingress_seq(canonical: str | None) -> int | None:
    """The confirmation's stream sequence, kept in the `received` record's canonical form."""
    seq = None if canonical is None else json.loads(canonical).get("ingress_seq")
    return None if seq is None else int(seq)


@unavailable_on_db_error
def unconfirmed(
    store: AuditStore, older_than: datetime, limit: int = 1000, viewer: Viewer | None = None
) -> list[dict[str, Any]]:
    """Disclosures that occurred before `older_than` with no `received` record, oldest
    first: information the log says was sent that no recipient has confirmed taking. With
    a `viewer` (the API), only those it may see; without, every one (the operator's CLI)."""
    log, rcv = audit_log.c, _received()
    confirmed = exists().where(
        rcv.c.refers_to == log.record_id, rcv.c.event == Event.RECEIVED.value
    )
    query = (
        select(log.seq, log.record_id, log.message_id, log.sender_agency,
               log.recipient_agency, log.kind, log.occurred_at)
        .where(log.event == Event.DISCLOSED.value, log.occurred_at < older_than.astimezone(UTC),
               not_(confirmed), true() if viewer is None else visible(viewer))
        .order_by(log.seq)
        .limit(limit)
    )  # fmt: skip
    with store.engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def _row(row: Any) -> dict[str, Any]:
    occurred = row.occurred_at
    if occurred.tzinfo is None:  # SQLite hands back naive UTC
        occurred = occurred.replace(tzinfo=UTC)
    return {
        "record_id": row.record_id,
        "seq": int(row.seq),
        "message_id": row.message_id,
        "sender_agency": row.sender_agency,
        "recipient_agency": row.recipient_agency,
        "kind": row.kind,
        "occurred_at": rfc3339(occurred),
    }
