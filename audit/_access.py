"""The API access log: who asked what, when, and how it ended (refusals included).

Append-only like the disclosure log (database triggers), and tamper-evident: each row
carries `chain` = SHA-256(previous row's chain || canonical JSON of the row), from 32 zero
bytes, so rewriting or deleting a row breaks every later link. The chain's head is sealed
into the Merkle log (`seal_head`, an `access_sealed` record, signed by the next
checkpoint), so a rewrite that recomputes the whole chain is caught too, up to the last
seal. Rows stay outside the tree itself: they record reads, not disclosures. A log made
before the chain existed keeps its older rows unchained (`chain` NULL); the chain starts
from 32 zero bytes at the first row written after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, insert, select, text

from audit._guard import unavailable_on_db_error
from audit._query import MAX_LIMIT, Page, decode_cursor, encode_cursor, utc
from audit._records import canonical_json, rfc3339
from audit._schema import audit_access

if TYPE_CHECKING:
    from audit._store import AuditStore

GENESIS = bytes(32)
MAX_QUERY = 512  # characters of a query string kept: an anonymous caller writes no more
_PG_ACCESS_LOCK = 284_285  # one access-log writer at a time (the chain's head moves)
_COLUMNS = [c for c in audit_access.c if c.name != "chain"]


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
    """Write one entry, chained to the last (`AuditStore.record_access` is the way in)."""
    values = {**entry.__dict__, "at": utc(entry.at)}
    values["path"] = values["path"][:256]
    values["query"] = values["query"][:MAX_QUERY]
    with store.engine.connect() as conn:
        _lock(conn)
        last_id, prev = _head(conn)
        values["id"] = last_id + 1
        values["chain"] = link(prev, values)
        conn.execute(insert(audit_access).values(values))
        conn.commit()


def link(prev: bytes, row: dict[str, Any]) -> bytes:
    """The chain value of `row` (its columns but `chain`) after `prev`."""
    fields = {c.name: row[c.name] for c in _COLUMNS}
    fields["at"] = rfc3339(utc(row["at"]))
    return hashlib.sha256(prev + canonical_json(fields)).digest()


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_ACCESS_LOCK})
    else:
        conn.info["s284_write"] = True  # BEGIN IMMEDIATE (the store's begin hook)
        conn.begin()


def _head(conn: Connection) -> tuple[int, bytes]:
    acc = audit_access.c
    row = conn.execute(select(acc.id, acc.chain).order_by(acc.id.desc()).limit(1)).first()
    if row is None:
        return 0, GENESIS
    return int(row.id), GENESIS if row.chain is None else bytes(row.chain)  # None: see below


@unavailable_on_db_error
def access_head(store: AuditStore) -> tuple[int, bytes]:
    """(last row id, its chain value); (0, 32 zero bytes) for an empty access log."""
    with store.engine.connect() as conn:
        return _head(conn)


def iter_access(store: AuditStore, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every access row, oldest first, `chain` included (for verify)."""
    after = 0
    while True:
        query = select(audit_access).where(audit_access.c.id > after)
        with store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query.order_by("id").limit(batch)).mappings()]
        if not rows:
            return
        yield from rows
        after = rows[-1]["id"]


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
    query = select(*_COLUMNS)
    if filters.subject:
        query = query.where(acc.subject == filters.subject)
    if filters.agency:
        query = query.where(acc.agency == filters.agency)
    if filters.status is not None:
        query = query.where(acc.status == filters.status)
    if filters.since is not None:
        query = query.where(acc.at >= utc(filters.since))
    return query
