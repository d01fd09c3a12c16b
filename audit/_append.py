"""The lean append (issue 14): the rows of a batch written as `AuditStore` always wrote them.

The same bytes as before, with less CPU per record:

* canonical JSON by orjson (`audit._fastjson`: byte for byte the stdlib form
  docs/audit-format.md describes);
* each record's personal fields encoded once, its leaf hashed once;
* every row a plain tuple in the table's column order, inserted by one `executemany` of
  a statement written once per dialect (`exec_driver_sql`): no per-row parameter
  processing by SQLAlchemy. The values are the ones its column types would have bound:
  on SQLite `YYYY-MM-DD HH:MM:SS.ffffff` UTC text for times and 0/1 for booleans, on
  PostgreSQL the aware UTC datetime and the bool themselves.

Nothing here commits: the caller holds the append lock and the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table

from audit import _fastjson
from audit import _merkle as merkle
from audit._errors import AuditError
from audit._records import AuditRecord, canonical_record, new_salt
from audit._schema import audit_log, audit_nodes, audit_personal, seen_messages

_CHUNK = 500  # bound parameters per IN (...)
_RFC3339_LENGTH = len("2026-01-01T00:00:00.000000Z")


def write(
    conn: Connection, size: int, records: Sequence[AuditRecord], frontier: Sequence[bytes]
) -> None:
    """Insert `records` as seq `size`, `size + 1`, ... with their personal rows and every
    Merkle node they complete; `frontier`: the hashes at `frontier_positions(size)`."""
    recorded_at = datetime.now(UTC)
    sqlite = conn.dialect.name == "sqlite"
    recorded = _stored_time(recorded_at, sqlite)
    log_rows: list[tuple[Any, ...]] = []
    personal_rows: list[tuple[Any, ...]] = []
    leaves: list[bytes] = []
    for seq, record in enumerate(records, start=size):
        salt = new_salt()
        fields = _fastjson.dumps(record.personal())  # committed to and stored: once
        members = canonical_record(record, seq, recorded_at, salt, personal_json=fields)
        canonical = _fastjson.dumps(members)
        leaf = merkle.leaf_hash(canonical)
        leaves.append(leaf)
        log_rows.append(
            (
                seq,
                record.record_id,
                record.dedupe_key,
                record.event,
                _stored_occurred(record, members["occurred_at"], sqlite),
                recorded,
                record.message_id,
                record.correlation_id,
                record.ingress_agency,
                record.sender_agency,
                record.recipient_agency,
                record.kind,
                record.purpose,
                record.decision,
                record.reason_code,
                _policy_ids(tuple(record.policy_ids)),
                _stored_bool(record.review_required, sqlite),
                _stored_bool(record.restricted, sqlite),
                record.refers_to,
                canonical.decode(),
                leaf,
            )
        )
        personal_rows.append((seq, salt, fields.decode(), record.offender))
    nodes = merkle.completed_nodes(size, leaves, frontier)
    conn.exec_driver_sql(_insert_sql(conn, audit_log), log_rows)
    conn.exec_driver_sql(_insert_sql(conn, audit_personal), personal_rows)
    conn.exec_driver_sql(_insert_sql(conn, audit_nodes), nodes)


def frontier(conn: Connection, size: int) -> list[bytes]:
    """The hashes at `frontier_positions(size)`, in order: one indexed lookup each, in one
    statement (at most 63 of them)."""
    positions = merkle.frontier_positions(size)
    if not positions:
        return []
    marker = _marker(conn.dialect.paramstyle)
    one = f"SELECT level, idx, hash FROM audit_nodes WHERE level = {marker} AND idx = {marker}"  # noqa: S608
    found = {
        (level, idx): bytes(digest)
        for level, idx, digest in conn.exec_driver_sql(
            " UNION ALL ".join([one] * len(positions)),
            tuple(v for position in positions for v in position),
        )
    }
    missing = [p for p in positions if p not in found]
    if missing:
        raise AuditError(f"the log's tree is missing stored node(s) {missing[:3]}")
    return [found[p] for p in positions]


def recorded_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of `keys` (at most `_CHUNK` at a time) are dedupe keys already in the log."""
    found: set[str] = set()
    marker = _marker(conn.dialect.paramstyle)
    for i in range(0, len(keys), _CHUNK):
        chunk = tuple(keys[i : i + _CHUNK])
        markers = ", ".join([marker] * len(chunk))
        sql = f"SELECT dedupe_key FROM audit_log WHERE dedupe_key IN ({markers})"  # noqa: S608
        found.update(key for (key,) in conn.exec_driver_sql(sql, chunk))
    return found


def write_seen(conn: Connection, seen: Sequence[tuple[str, int]]) -> None:
    """(message_id, ingress_seq) pairs; a message id already there keeps its first seq."""
    conn.exec_driver_sql(_insert_sql(conn, seen_messages, ignore_conflicts=True), list(seen))


# The column order of each table's tuples above; a changed schema fails here, loudly.
_COLUMNS = {
    audit_log.name: (
        "seq",
        "record_id",
        "dedupe_key",
        "event",
        "occurred_at",
        "recorded_at",
        "message_id",
        "correlation_id",
        "ingress_agency",
        "sender_agency",
        "recipient_agency",
        "kind",
        "purpose",
        "decision",
        "reason_code",
        "policy_ids",
        "review_required",
        "restricted",
        "refers_to",
        "canonical",
        "leaf_hash",
    ),
    audit_personal.name: ("seq", "salt", "fields", "offender"),
    audit_nodes.name: ("level", "idx", "hash"),
    seen_messages.name: ("message_id", "ingress_seq"),
}
for _table in (audit_log, audit_personal, audit_nodes, seen_messages):
    if {c.name for c in _table.c} != set(_COLUMNS[_table.name]):  # pragma: no cover
        raise RuntimeError(f"audit._append does not write every column of {_table.name}")


def _marker(paramstyle: str) -> str:
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(paramstyle)
    if marker is None:  # pragma: no cover - SQLite and psycopg are the two drivers
        raise RuntimeError(f"no lean statement for the {paramstyle!r} parameter style")
    return marker


@lru_cache(maxsize=16)
def _insert_sql_for(table: str, paramstyle: str, ignore_conflicts: bool) -> str:
    marker = _marker(paramstyle)
    columns = _COLUMNS[table]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our own names
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    return f"{sql} ON CONFLICT DO NOTHING" if ignore_conflicts else sql


def _insert_sql(conn: Connection, table: Table, *, ignore_conflicts: bool = False) -> str:
    return _insert_sql_for(table.name, conn.dialect.paramstyle, ignore_conflicts)


def _stored_time(value: datetime, sqlite: bool) -> datetime | str:
    """What SQLAlchemy's DateTime binds: SQLite's text form of the UTC time, else itself."""
    if sqlite:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _stored_occurred(record: AuditRecord, text: str, sqlite: bool) -> datetime | str:
    """`_stored_time` of the record's UTC occurred_at, from its canonical text when that
    has the usual shape (`YYYY-MM-DDTHH:MM:SS.ffffffZ`: the same digits)."""
    if sqlite and len(text) == _RFC3339_LENGTH:
        return f"{text[:10]} {text[11:26]}"
    return _stored_time(record.occurred_at.astimezone(UTC), sqlite)


def _stored_bool(value: bool, sqlite: bool) -> bool | int:
    return int(value) if sqlite else value


@lru_cache(maxsize=1024)
def _policy_ids(ids: tuple[str, ...]) -> str:
    """The search column (stdlib `json.dumps`, as always: it is not hashed, but searched
    with LIKE on exactly this text)."""
    return json.dumps(list(ids))
