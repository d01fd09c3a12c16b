"""The API access log: who asked what, when, and how it ended (refusals included).

Append-only like the disclosure log (database triggers), but outside the Merkle tree: it
records reads, not disclosures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, insert, select

from audit._guard import unavailable_on_db_error
from audit._query import MAX_LIMIT, Page, decode_cursor, encode_cursor, utc
from audit._schema import audit_access

if TYPE_CHECKING:
    from audit._store import AuditStore


@dataclass(frozen=True)
class AccessEntry:
    """One API request: who, what, and how it ended. Never a token."""

    subject: str
    role: str
    agency: str | None
    method: str
    path: str
    query: str
    status: int
    results: int | None
    at: datetime


@dataclass(frozen=True)
class AccessFilters:
    """Access-log filters; `None` means any. `since` is inclusive."""

    subject: str | None = None
    agency: str | None = None
    status: int | None = None
    since: datetime | None = None


@unavailable_on_db_error
def append_access(store: AuditStore, entry: AccessEntry) -> None:
    """Write one entry (`AuditStore.record_access` is the public way in)."""
    values = {**entry.__dict__, "at": utc(entry.at)}
    values["path"] = values["path"][:256]
    with store.engine.begin() as conn:
        conn.execute(insert(audit_access).values(values))


@unavailable_on_db_error
def access_log(
    store: AuditStore, filters: AccessFilters, cursor: str | None = None, limit: int = 100
) -> Page:
    """The API access log, newest first."""
    acc = audit_access.c
    limit = max(1, min(limit, MAX_LIMIT))
    query = _filtered(filters)
    before = decode_cursor("access", cursor)
    if before is not None:
        query = query.where(acc.id < before)
    with store.engine.connect() as conn:
        result = conn.execute(query.order_by(acc.id.desc()).limit(limit + 1)).mappings()
        rows = [dict(r) for r in result]
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["at"] = utc(row["at"]).isoformat()
    return Page(rows, encode_cursor("access", rows[-1]["id"]) if more else None)


def _filtered(filters: AccessFilters) -> Select[Any]:
    acc = audit_access.c
    query = select(audit_access)
    if filters.subject:
        query = query.where(acc.subject == filters.subject)
    if filters.agency:
        query = query.where(acc.agency == filters.agency)
    if filters.status is not None:
        query = query.where(acc.status == filters.status)
    if filters.since is not None:
        query = query.where(acc.at >= utc(filters.since))
    return query
