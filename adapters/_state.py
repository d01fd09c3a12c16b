"""The adapter's own durable state, in SQLite under its state directory (SQLAlchemy).

Five tables: how far each source file has been read, one row per source record sent
(its idempotency key and message id, written *before* the send), the quarantine, the
deliveries written out, and the offender-identity map (agency local id -> scheme
reference). Nothing here is a payload:
keys, ids, reason codes and counts only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from broker import ConfigError

OFFENDER_REF = re.compile(r"^S284-\d{6}$")

_meta = MetaData()
_positions = Table(
    "source_position",
    _meta,
    Column("source", String, primary_key=True),
    Column("records_done", Integer, nullable=False),
    Column("complete", Integer, nullable=False, default=0),
)
_sent = Table(
    "sent",
    _meta,
    Column("key", String, primary_key=True),
    Column("message_id", String, nullable=False, unique=True),
    Column("status", String, nullable=False),
    Column("reason", String),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
_quarantine = Table(
    "quarantine",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("record_key", String, nullable=False, unique=True),
    Column("reason", String, nullable=False),
    Column("detail", String, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
_written = Table(
    "written",
    _meta,
    Column("delivery_id", String, primary_key=True),
    Column("file", String, nullable=False),
    Column("sender", String, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
_offenders = Table(
    "offender_map",
    _meta,
    Column("local_id", String, primary_key=True),
    Column("offender_ref", String, nullable=False),
)


class SendStatus(StrEnum):
    PENDING = "pending"  # id recorded, frame possibly published, no receipt seen yet
    SENT = "sent"  # accepted by the gateway (or already received: a resend was a replay)
    REFUSED = "refused"  # refused by the gateway; the record is quarantined with the code


@dataclass(frozen=True)
class SentRow:
    key: str
    message_id: str
    status: SendStatus


@dataclass(frozen=True)
class QuarantineRow:
    source: str
    record_key: str
    reason: str
    detail: str
    at: datetime


@dataclass(frozen=True)
class Position:
    records_done: int
    complete: bool


class AdapterState:
    """One adapter's state database (`<state_dir>/adapter.db`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, state_dir: Path) -> AdapterState:
        state_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{(state_dir / 'adapter.db').resolve()}")
        _meta.create_all(engine)
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    # -- source position -----------------------------------------------------------------

    def position(self, source: str) -> Position:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_positions.c.records_done, _positions.c.complete).where(
                    _positions.c.source == source
                )
            ).first()
        return Position(0, complete=False) if row is None else Position(row[0], bool(row[1]))

    def advance(self, source: str, records_done: int, complete: bool = False) -> None:
        stmt = sqlite_insert(_positions).values(
            source=source, records_done=records_done, complete=int(complete)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["source"],
            set_={"records_done": records_done, "complete": int(complete)},
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    # -- idempotency ---------------------------------------------------------------------

    def sent(self, key: str) -> SentRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_sent.c.key, _sent.c.message_id, _sent.c.status).where(_sent.c.key == key)
            ).first()
        return None if row is None else SentRow(row[0], row[1], SendStatus(row[2]))

    def pending(self) -> list[SentRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_sent.c.key, _sent.c.message_id, _sent.c.status).where(
                    _sent.c.status == SendStatus.PENDING.value
                )
            ).all()
        return [SentRow(r[0], r[1], SendStatus(r[2])) for r in rows]

    def record_pending(self, key: str, message_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(_sent).values(
                    key=key,
                    message_id=message_id,
                    status=SendStatus.PENDING.value,
                    updated_at=_now(),
                )
            )

    def settle(self, key: str, status: SendStatus, reason: str | None = None) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(_sent)
                .where(_sent.c.key == key)
                .values(status=status.value, reason=reason, updated_at=_now())
            )

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_sent.c.status)).all()
            quarantined = len(conn.execute(select(_quarantine.c.id)).all())
        out = {s.value: 0 for s in SendStatus}
        for (status,) in rows:
            out[status] += 1
        out["quarantined"] = quarantined
        return out

    # -- quarantine ----------------------------------------------------------------------

    def quarantine(self, source: str, record_key: str, reason: str, detail: str) -> None:
        """Idempotent per record: a record re-read after a restart is quarantined once."""
        stmt = (
            sqlite_insert(_quarantine)
            .values(source=source, record_key=record_key, reason=reason, detail=detail, at=_now())
            .on_conflict_do_nothing(index_elements=["record_key"])
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def requeue(self) -> int:
        """Release every inbound quarantined record for another try (after the operator fixed
        the offender map or the source): their files are read again from the start. Keys
        already sent stay sent; a refused key gets a new message id (its old one was seen).
        """
        with self._engine.begin() as conn:
            rows = conn.execute(
                select(_quarantine.c.source, _quarantine.c.record_key).where(
                    _quarantine.c.source != "outbound"
                )
            ).all()
            keys = [r[1] for r in rows]
            conn.execute(_quarantine.delete().where(_quarantine.c.record_key.in_(keys)))
            conn.execute(
                _sent.delete().where(
                    _sent.c.key.in_(keys), _sent.c.status == SendStatus.REFUSED.value
                )
            )
            conn.execute(_positions.delete().where(_positions.c.source.in_({r[0] for r in rows})))
        return len(keys)

    def quarantined(self) -> list[QuarantineRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    _quarantine.c.source,
                    _quarantine.c.record_key,
                    _quarantine.c.reason,
                    _quarantine.c.detail,
                    _quarantine.c.at,
                ).order_by(_quarantine.c.id)
            ).all()
        return [QuarantineRow(*r) for r in rows]

    # -- outbound ------------------------------------------------------------------------

    def was_written(self, delivery_id: str) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_written.c.file).where(_written.c.delivery_id == delivery_id)
            ).first()
        return row is not None

    def mark_written(self, delivery_id: str, file: str, sender: str) -> None:
        stmt = (
            sqlite_insert(_written)
            .values(delivery_id=delivery_id, file=file, sender=sender, at=_now())
            .on_conflict_do_nothing(index_elements=["delivery_id"])
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def written_by_sender(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_written.c.sender)).all()
        return dict(sorted(Counter(r[0] for r in rows).items()))

    # -- offender identity ---------------------------------------------------------------

    def load_offender_map(self, pairs: dict[str, str]) -> None:
        """Replace the map with `pairs` (local id -> scheme reference), checked first."""
        bad = sorted(local for local, ref in pairs.items() if not OFFENDER_REF.match(ref))
        if bad:
            raise ConfigError(
                f"offender map: {len(bad)} row(s) whose scheme reference is not S284-NNNNNN "
                f"(local ids {', '.join(bad[:5])})"
            )
        with self._engine.begin() as conn:
            conn.execute(_offenders.delete())
            if pairs:
                conn.execute(
                    insert(_offenders),
                    [{"local_id": k, "offender_ref": v} for k, v in pairs.items()],
                )

    def offender_ref(self, local_id: str) -> str | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_offenders.c.offender_ref).where(_offenders.c.local_id == local_id)
            ).first()
        return None if row is None else str(row[0])

    def local_id(self, offender_ref: str) -> str | None:
        """The reverse map, for writing deliveries back in the agency's own identifiers."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_offenders.c.local_id).where(_offenders.c.offender_ref == offender_ref)
            ).first()
        return None if row is None else str(row[0])


def _now() -> datetime:
    return datetime.now(UTC)
