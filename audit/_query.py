"""Read side of the disclosure log for privacy officers and auditors.

Who may see which record is decided in SQL (`_visible`), never by filtering rows in
Python, so a page is always full and a count is always honest. Every search walks a
`(column, seq)` index newest first (`WHERE col = ? AND seq < :cursor ORDER BY seq DESC
LIMIT n`), so its cost follows the page size, not the size of the log.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from audit._errors import AuditError
from audit._guard import unavailable_on_db_error
from audit._records import PERSONAL_FIELDS, Event
from audit._schema import audit_log, audit_personal

if TYPE_CHECKING:
    from audit._store import AuditStore

ROLES = ("privacy_officer", "auditor", "admin", "contact")
RFC3339 = "%Y-%m-%dT%H:%M:%S.%fZ"  # as audit._records.rfc3339 writes occurred_at
# Filters served by a (column, seq) index; without one, a date range walks the date index.
_INDEXED = ("offender", "sender_agency", "recipient_agency", "purpose", "kind", "event")
MAX_LIMIT = 500
# Widest date range (in records) whose seq span `_seq_span` reads off the date index.
_SPAN_SCAN = 200_000
_NOTHING = (-1, -1)  # `_seq_span`: no record in the range


class InvalidCursorError(AuditError, ValueError):
    """A pagination cursor was not one this API handed out."""


@dataclass(frozen=True)
class Viewer:
    """Who is asking: decides, in SQL, which records they may see."""

    role: str
    agency: str | None
    subject: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        if self.role == "privacy_officer" and not self.agency:
            raise ValueError("a privacy officer belongs to an agency")


@dataclass(frozen=True)
class Filters:
    """Search filters; `None` means any. Dates bound `occurred_at`, inclusive-exclusive."""

    offender: str | None = None
    sender_agency: str | None = None
    recipient_agency: str | None = None
    purpose: str | None = None
    kind: str | None = None
    event: str | None = None
    decision: str | None = None
    policy_id: str | None = None
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None


@dataclass(frozen=True)
class Page:
    """One page, newest first; `next_cursor` is None on the last page."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


# -- cursors ---------------------------------------------------------------------------


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_MAX_CURSOR = 256  # characters: every cursor this API hands out is far shorter
_MAX_POSITION = 2**63 - 1  # a BIGINT: anything larger the database cannot even compare


def _decode(cursor: str) -> dict[str, Any]:
    """A cursor this API handed out, else `InvalidCursorError` (400), whatever was sent:
    garbage, huge numbers, or JSON nested deep enough to exhaust the parser."""
    if len(cursor) > _MAX_CURSOR:
        raise InvalidCursorError("the cursor is not one this API handed out")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidCursorError("the cursor is not one this API handed out") from None
    if not isinstance(payload, dict):
        raise InvalidCursorError("the cursor is not one this API handed out")
    return payload


def _position(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_POSITION:
        raise InvalidCursorError("the cursor is not one this API handed out")
    return value


def encode_cursor(kind: str, position: int) -> str:
    return _encode({kind: position})


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    return None if cursor is None else _position(_decode(cursor).get(kind))


def _time_cursor(row: dict[str, Any]) -> str:
    return _encode({"t": row["occurred_at"], "seq": row["seq"]})


def _decode_time_cursor(cursor: str) -> tuple[datetime, int]:
    payload = _decode(cursor)
    try:
        at = datetime.strptime(payload["t"], RFC3339).replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError):
        raise InvalidCursorError("the cursor is not one this API handed out") from None
    return at, _position(payload.get("seq"))


# -- visibility and filters --------------------------------------------------------------


def _visible(viewer: Viewer) -> ColumnElement[bool]:
    """Restricted records: only privacy officers of the sender or recipient agency.
    Otherwise privacy officers see their agency's records and every review-marked one;
    auditors and admins see everything else."""
    log = audit_log.c
    unrestricted = log.restricted == false()
    if viewer.role in ("auditor", "admin"):
        return unrestricted
    if viewer.role != "privacy_officer" or viewer.agency is None:
        return false()
    agency = viewer.agency
    # Wrapped so no index serves this OR: SQLite would otherwise union three index scans
    # and sort them, where walking the filter's (column, seq) index stops after one page.
    sender, recipient = _unindexed(log.sender_agency), _unindexed(log.recipient_agency)
    involved = or_(sender == agency, recipient == agency)
    ours = or_(_unindexed(log.ingress_agency) == agency, log.review_required == true())
    return or_(involved, and_(unrestricted, ours))


def _unindexed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(column, column)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(filters: Filters) -> list[ColumnElement[bool]]:
    log = audit_log.c
    equal = {
        log.sender_agency: filters.sender_agency,
        log.recipient_agency: filters.recipient_agency,
        log.purpose: filters.purpose,
        log.kind: filters.kind,
        log.event: filters.event,
        log.decision: filters.decision,
        audit_personal.c.offender: filters.offender,
    }
    conds: list[ColumnElement[bool]] = [col == value for col, value in equal.items() if value]
    if filters.policy_id:
        # policy_ids is a JSON array of strings; a quoted member cannot match a substring.
        pattern = "%" + _like_literal(json.dumps(filters.policy_id)) + "%"
        conds.append(log.policy_ids.like(pattern, escape="\\"))
    # With an indexed equality filter, walk its (column, seq) index and test dates on
    # the way; otherwise walk the date index itself (see `by_time`).
    occurred = log.occurred_at if by_time(filters) else _unindexed(log.occurred_at)
    return conds + _date_conditions(filters, occurred)


def _date_conditions(filters: Filters, occurred: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if filters.occurred_from is not None:
        conds.append(occurred >= utc(filters.occurred_from))
    if filters.occurred_before is not None:
        conds.append(occurred < utc(filters.occurred_before))
    return conds


def by_time(filters: Filters) -> bool:
    """A date range with no indexed filter: results come newest *occurred* first, walking
    the occurred_at index (ordering by seq would sort every row in the range first)."""
    ranged = filters.occurred_from is not None or filters.occurred_before is not None
    return ranged and not any(getattr(filters, name) for name in _INDEXED)


def utc(value: datetime) -> datetime:
    # SQLite keeps no offset: every stored time is UTC, so compare in UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _base(viewer: Viewer, filters: Filters) -> Select[Any]:
    personal = audit_personal
    joined = (
        audit_log.join(personal, personal.c.seq == audit_log.c.seq)
        if filters.offender  # inner join: the planner may drive from the offender index
        else audit_log.outerjoin(personal, personal.c.seq == audit_log.c.seq)
    )
    return (
        select(
            audit_log.c.seq,
            audit_log.c.canonical,
            personal.c.seq.label("personal_seq"),
            personal.c.fields,
        )
        .select_from(joined)
        .where(_visible(viewer), *_conditions(filters))
    )


def _render(row: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(row.canonical)
    if row.personal_seq is None:  # erased after the retention period
        record.update(dict.fromkeys(PERSONAL_FIELDS))
        record["expired"] = True
    else:
        record.update(json.loads(row.fields))
        record["expired"] = False
    return record


def _page(
    store: AuditStore, query: Select[Any], cursor: str | None, limit: int, filters: Filters
) -> Page:
    limit = max(1, min(limit, MAX_LIMIT))
    timed = by_time(filters)
    query = _after_time(query, cursor) if timed else _after_seq(query, cursor, _seq_key(filters))
    with store.engine.connect() as conn:
        if _ranged(filters) and not timed:
            span = _seq_span(conn, filters)
            if span is _NOTHING:
                return Page([], None)
            if span is not None:
                query = query.where(_seq_key(filters).between(*span))
        rows = [_render(r) for r in conn.execute(query.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return Page(rows, None)
    return Page(rows, _time_cursor(rows[-1]) if timed else encode_cursor("seq", rows[-1]["seq"]))


def _ranged(filters: Filters) -> bool:
    return filters.occurred_from is not None or filters.occurred_before is not None


def _seq_span(conn: Connection, filters: Filters) -> tuple[int, int] | None:
    """The first and last seq of the records in the date range, `_NOTHING` when none.

    An indexed filter's (column, seq) walk tests dates row by row, so a range far from the
    newest records would read every newer row first; bounding the walk by these seqs
    (exact: every record in the range lies between them) starts it at the range. Found on
    the (occurred_at, seq) index, and only for ranges of up to `_SPAN_SCAN` records: a
    wider range costs more to bound than the walk usually spends reaching it (None).
    """
    log = audit_log.c
    dated = select(log.seq).where(*_date_conditions(filters, log.occurred_at))
    inner = dated.limit(_SPAN_SCAN + 1).subquery()
    query = select(func.count(), func.min(inner.c.seq), func.max(inner.c.seq))
    count, first, last = conn.execute(query).one()
    if not count:
        return _NOTHING
    return (int(first), int(last)) if count <= _SPAN_SCAN else None


def _seq_key(filters: Filters) -> ColumnElement[int]:
    # Equal through the join; ordering by the driving table's seq lets SQLite walk the
    # (offender, seq) index in order instead of sorting an offender's whole history.
    return audit_personal.c.seq if filters.offender else audit_log.c.seq


def _after_seq(query: Select[Any], cursor: str | None, key: ColumnElement[int]) -> Select[Any]:
    before = decode_cursor("seq", cursor)
    if before is not None:
        query = query.where(key < before)
    return query.order_by(key.desc())


def _after_time(query: Select[Any], cursor: str | None) -> Select[Any]:
    log = audit_log.c
    if cursor is not None:
        at, seq = _decode_time_cursor(cursor)
        query = query.where(or_(log.occurred_at < at, and_(log.occurred_at == at, log.seq < seq)))
    return query.order_by(log.occurred_at.desc(), log.seq.desc())


# -- queries -------------------------------------------------------------------------------


@unavailable_on_db_error
def search(
    store: AuditStore, viewer: Viewer, filters: Filters, cursor: str | None = None, limit: int = 100
) -> Page:
    """Records matching every filter that `viewer` may see, newest first (by seq; by
    occurred time when `by_time(filters)`)."""
    return _page(store, _base(viewer, filters), cursor, limit, filters)


@unavailable_on_db_error
def accounting(
    store: AuditStore, viewer: Viewer, offender: str, cursor: str | None = None, limit: int = 100
) -> Page:
    """Every disclosure about one offender (the accounting an offender may ask for), each
    with `confirmed_at`: when the recipient's system confirmed taking it (the time in its
    `received` record), None while it has not."""
    filters = Filters(offender=offender, event=Event.DISCLOSED.value)
    page = _page(store, _base(viewer, filters), cursor, limit, filters)
    _add_confirmations(store, page.rows)
    return page


def _add_confirmations(store: AuditStore, rows: list[dict[str, Any]]) -> None:
    """One indexed lookup (refers_to) for the page's disclosures."""
    ids = [row["record_id"] for row in rows]
    query = select(audit_log.c.refers_to, audit_log.c.canonical).where(
        audit_log.c.event == Event.RECEIVED.value, audit_log.c.refers_to.in_(ids)
    )
    with store.engine.connect() as conn:
        found = {r.refers_to: json.loads(r.canonical)["occurred_at"] for r in conn.execute(query)}
    for row in rows:
        row["confirmed_at"] = found.get(row["record_id"])


@unavailable_on_db_error
def refusals(
    store: AuditStore,
    viewer: Viewer,
    filters: Filters = Filters(),  # frozen, so a shared default is safe
    cursor: str | None = None,
    limit: int = 100,
) -> Page:
    """Refused messages (the gateway's denials), with their reasons."""
    filters = Filters(**{**filters.__dict__, "event": Event.REFUSED.value})
    return _page(store, _base(viewer, filters), cursor, limit, filters)


@unavailable_on_db_error
def review_queue(
    store: AuditStore, viewer: Viewer, cursor: str | None = None, limit: int = 100
) -> Page:
    """Disclosures marked for privacy review that no `reviewed` record refers to yet."""
    review = audit_log.alias("review")
    reviewed = exists().where(
        review.c.refers_to == audit_log.c.record_id, review.c.event == Event.REVIEWED.value
    )
    filters = Filters(event=Event.DISCLOSED.value)
    query = _base(viewer, filters).where(audit_log.c.review_required == true(), not_(reviewed))
    return _page(store, query, cursor, limit, filters)


@unavailable_on_db_error
def record_by_id(store: AuditStore, viewer: Viewer, record_id: str) -> dict[str, Any] | None:
    """One record, or None when it does not exist or `viewer` may not see it."""
    query = _base(viewer, Filters()).where(audit_log.c.record_id == record_id)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _render(row)
