"""What `s284 audit verify` checks beyond the Merkle tree: erasures, the access log, the
triggers.

An insider with the database can delete a personal row (the disclosure then drops out of
that offender's accounting while every leaf still hashes), rewrite the access log, or
drop the append-only triggers. None changes a leaf, so the tree checks in `_verify`
cannot see them:

    erasure   every erased personal row is covered by a later `expired` record whose
              stated cut-off is after the row's occurred_at (`records.expired`)
    access    the access log's hash chain holds row by row, and matches every head an
              `access_sealed` record fixed in the signed log
    guards    every append-only trigger the store created is still there, with the text it
              was created with (SQLite) or enabled (PostgreSQL); never re-created here,
              because re-creating it would erase the evidence

Kept apart from `_verify` so that module reads as the tree's steps.
"""

from __future__ import annotations

import re
from array import array
from datetime import UTC, datetime

from sqlalchemy import text

from audit._access import GENESIS, iter_access, link
from audit._markers import access_seal, expiry_cutoff
from audit._records import Event
from audit._schema import PG_TRIGGERS, SQLITE_TRIGGERS
from audit._store import AuditStore, StoredRecord

__all__ = ["Finding", "IntegrityCheck"]


class Finding(Exception):  # noqa: N818 - raised to `_verify`, which turns it into a Problem
    """One thing verify must report: `code` as in docs/audit-format.md, a detail, a seq."""

    def __init__(self, code: str, detail: str, seq: int | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.seq = code, detail, seq


_MARKERS = frozenset({Event.EXPIRED.value, Event.ACCESS_SEALED.value})


class IntegrityCheck:
    """Fed every stored record in seq order; `check(store)` raises the first `Finding`.

    Erased rows wait (seq and occurred_at, 16 bytes each) until an expiry record covers
    them; an expiry only ever covers rows before it, as `AuditStore.expire` writes it.
    """

    def __init__(self) -> None:
        self._seqs: array[int] = array("q")
        self._times: array[float] = array("d")
        self._seals: dict[int, bytes] = {}

    def see(self, stored: StoredRecord) -> None:
        row = stored.projection
        if row["event"] == Event.EXPIRED.value:
            self._cover(expiry_cutoff(_reason(stored.canonical)))
        elif row["event"] == Event.ACCESS_SEALED.value:
            seal = access_seal(_reason(stored.canonical))
            if seal is not None:
                self._seals[seal[0]] = seal[1]
        elif stored.salt is None or stored.personal is None:
            self._seqs.append(stored.seq)
            self._times.append(_utc(row["occurred_at"]).timestamp())

    @staticmethod
    def relevant(stored: StoredRecord) -> StoredRecord | None:
        """What `see` reads of `stored` (None: nothing), for a verifier that checks
        records in another process and feeds `see` here: an erased row's 16 bytes, not
        its record."""
        row = stored.projection
        if row["event"] in _MARKERS:
            return stored
        if stored.salt is None or stored.personal is None:
            projection = {"event": row["event"], "occurred_at": row["occurred_at"]}
            return StoredRecord(stored.seq, "", b"", projection, None, None)
        return None

    def check(self, store: AuditStore) -> None:
        self._check_erasures()
        _access_findings(store, self._seals)
        guard_findings(store)

    def _cover(self, cutoff: datetime | None) -> None:
        if cutoff is None or not self._seqs:
            return
        limit = cutoff.timestamp()
        keep = [i for i, at in enumerate(self._times) if at >= limit]
        self._seqs = array("q", (self._seqs[i] for i in keep))
        self._times = array("d", (self._times[i] for i in keep))

    def _check_erasures(self) -> None:
        if self._seqs:
            first, count = self._seqs[0], len(self._seqs)
            raise Finding(
                "personal.erased_without_expiry",
                f"the personal fields of record {first} ({count} record(s) in all) are gone "
                "but no expiry record covers them: erased outside retention",
                first,
            )


def _access_findings(store: AuditStore, seals: dict[int, bytes]) -> None:
    """Raise on the first access row missing, rewritten, or unlike its sealed head."""
    prev, expected, chained = GENESIS, 1, False
    for row in iter_access(store):
        if row["id"] != expected:
            raise Finding("access.missing", f"access log row {expected} is missing")
        if row["chain"] is None and not chained:  # written before the chain existed
            expected += 1
            continue
        chained = True
        prev = link(prev, row)
        if row["chain"] is None or prev != bytes(row["chain"]):
            raise Finding("access.altered", f"access log row {expected} was rewritten")
        if seals.get(expected, prev) != prev:
            raise Finding(
                "access.altered",
                f"access log rows 1..{expected} no longer chain to the head the log sealed: "
                "a row was rewritten and the chain recomputed",
            )
        expected += 1
    sealed = max(seals, default=0)
    if sealed >= expected:
        raise Finding(
            "access.truncated",
            f"the log sealed {sealed} access rows but only {expected - 1} remain",
        )


def _reason(canonical: str) -> str | None:
    import json  # noqa: PLC0415 - only for the rare expiry record

    value = json.loads(canonical).get("reason")
    return value if isinstance(value, str) else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def guard_findings(store: AuditStore) -> None:
    """Raise `Finding` on the first append-only trigger missing, altered or disabled."""
    if store.engine.dialect.name == "sqlite":
        _sqlite_guards(store)
    else:
        _pg_guards(store)


_NAME = re.compile(r"TRIGGER (?:IF NOT EXISTS )?(\w+)")


def _sqlite_guards(store: AuditStore) -> None:
    query = text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    with store.engine.connect() as conn:
        found = {str(name): str(sql) for name, sql in conn.execute(query).all()}
    for ddl in SQLITE_TRIGGERS:
        name = _trigger_name(ddl)
        stored = found.get(name)
        if stored is None:
            raise Finding("guard.trigger_missing", f"the append-only trigger {name} is gone")
        # sqlite_master keeps the statement as written, less IF NOT EXISTS.
        if _normal(stored) != _normal(ddl.replace(" IF NOT EXISTS", "")):
            raise Finding("guard.trigger_altered", f"the trigger {name} is not the one created")


def _pg_guards(store: AuditStore) -> None:
    query = text(
        "SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
    )
    body = text(
        "SELECT prosrc FROM pg_proc WHERE proname = 's284_append_only' "
        "AND pronamespace = current_schema()::regnamespace"
    )
    with store.engine.connect() as conn:
        found = {str(name): str(sql) for name, sql in conn.execute(query).all()}
        source = conn.execute(body).scalar_one_or_none()
    for ddl in PG_TRIGGERS[1:]:
        name = _trigger_name(ddl)
        if name not in found:
            raise Finding("guard.trigger_missing", f"the append-only trigger {name} is gone")
        if found[name] == "D":
            raise Finding("guard.trigger_altered", f"the trigger {name} is disabled")
    if source is None or "RAISE EXCEPTION" not in source:
        raise Finding("guard.trigger_altered", "the function s284_append_only was replaced")


def _trigger_name(ddl: str) -> str:
    match = _NAME.search(ddl)
    if match is None:  # pragma: no cover - every DDL in _schema names its trigger
        raise ValueError(ddl)
    return match[1]


def _normal(sql: str) -> str:
    return " ".join(sql.split())
