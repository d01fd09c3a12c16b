from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from audit._records import AuditRecord, SeenMessage

_metadata = MetaData()

disclosure_log = Table(
    "disclosure_log",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(32), nullable=False, unique=True),
    Column("dedupe_key", String(128), nullable=False, unique=True),
    Column("event", String(16), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("ingress_agency", String(32), nullable=False),
    Column("message_id", String(32), index=True),
    Column("ingress_seq", Integer),
    Column("sender_agency", String(32)),
    Column("sender_person", String(64)),
    Column("recipient_agency", String(32)),
    Column("offender", String(32), index=True),
    Column("kind", String(32)),
    Column("purpose", String(32)),
    Column("justification", Text),
    Column("correlation_id", String(32)),
    Column("decision", String(8), nullable=False),
    Column("reason_code", String(48)),
    Column("reason", Text, nullable=False),
    Column("policy_ids", Text, nullable=False),
    Column("policy_version", String(64)),
    Column("review_required", Boolean, nullable=False, default=False),
    Column("payload_digest", String(64)),
    Column("withheld", Text, nullable=False),
    Column("node", String(64), nullable=False),
)

seen_messages = Table(
    "seen_messages",
    _metadata,
    Column("message_id", String(32), primary_key=True),
    Column("ingress_seq", Integer, nullable=False),
)

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in ("disclosure_log", "seen_messages")
    for op in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    (
        "CREATE OR REPLACE FUNCTION s284_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
    ),
    *[
        f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION s284_append_only()"
        for table in ("disclosure_log", "seen_messages")
    ],
]


def _row(record: AuditRecord, recorded_at: datetime) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in fields(record)}  # shallow: no deep copy
    row["policy_ids"] = json.dumps(list(record.policy_ids))
    row["withheld"] = json.dumps(list(record.withheld))
    row["recorded_at"] = recorded_at
    return row


class AuditStore:
    """Append-only disclosure log through SQLAlchemy (SQLite by default, PostgreSQL too).

    Synchronous by design: the gateway calls it from a worker thread, one transaction
    per batch (group commit), and acknowledges NATS only after `append` returns.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str) -> AuditStore:
        """Connect, create the tables and the append-only triggers if missing."""
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        store._create_schema()
        return store

    def _create_schema(self) -> None:
        _metadata.create_all(self._engine)
        triggers = _SQLITE_TRIGGERS if self._dialect == "sqlite" else _PG_TRIGGERS
        with self._engine.begin() as conn:
            for ddl in triggers:
                conn.execute(text(ddl))

    def _insert(self, table: Table) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table).on_conflict_do_nothing()

    def append(self, records: Sequence[AuditRecord], seen: Sequence[SeenMessage] = ()) -> None:
        """Durably record a batch in one transaction; rows already present are skipped."""
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            if records:
                conn.execute(self._insert(disclosure_log), [_row(r, now) for r in records])
            if seen:
                conn.execute(
                    self._insert(seen_messages),
                    [{"message_id": s.message_id, "ingress_seq": s.ingress_seq} for s in seen],
                )

    def first_seen(self, message_ids: Iterable[str]) -> dict[str, int]:
        """For each already-authenticated id, the ingress sequence that first carried it."""
        ids = list(set(message_ids))
        if not ids:
            return {}
        query = select(seen_messages.c.message_id, seen_messages.c.ingress_seq).where(
            seen_messages.c.message_id.in_(ids)
        )
        with self._engine.connect() as conn:
            return {row.message_id: row.ingress_seq for row in conn.execute(query)}

    def records(self, message_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        query = select(disclosure_log).order_by(disclosure_log.c.seq).limit(limit)
        if message_id is not None:
            query = query.where(disclosure_log.c.message_id == message_id)
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def count(self, event_name: str | None = None) -> int:
        query = select(func.count()).select_from(disclosure_log)
        if event_name is not None:
            query = query.where(disclosure_log.c.event == event_name)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def ping(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a record acked to NATS survives power loss
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
