"""Cosignatures beside the checkpoints: stored, served, counted against the quorum.

Kept in their own table (append-only like the others) and their own module, so the
store's core and its schema stay as they were. The broker accepts a cosignature only from a
registered witness key and only for a checkpoint the log itself signed; what it stores is
the checkpoint body and the witness's signature line, so a verifier re-checks each one
against keys it holds itself and needs nothing else from the broker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from audit._cosign import WitnessKey
from audit._errors import AuditError, NoteError
from audit._note import Checkpoint
from audit._schema import audit_checkpoints
from audit._store import AuditStore

_metadata = MetaData()

audit_cosignatures = Table(
    "audit_cosignatures",
    _metadata,
    Column("witness", String(128), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the checkpoint text the witness signed
    Column("line", Text, nullable=False),  # its signature line (tlog-cosignature)
    Column("cosigned_at", DateTime(timezone=True), nullable=False),  # the signed timestamp
    PrimaryKeyConstraint("witness", "size"),
)

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS audit_cosignatures_no_{op.lower()} BEFORE {op} ON "
    f"audit_cosignatures BEGIN SELECT RAISE(ABORT, 'audit_cosignatures is append-only'); END"
    for op in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    (
        "CREATE OR REPLACE TRIGGER audit_cosignatures_append_only BEFORE UPDATE OR DELETE OR "
        "TRUNCATE ON audit_cosignatures FOR EACH STATEMENT EXECUTE FUNCTION s284_append_only()"
    )
]


class CosignatureRefusedError(AuditError):
    """A cosignature the broker will not store: unknown witness, bad signature, or a
    checkpoint the log never signed."""


@dataclass(frozen=True)
class WitnessPolicy:
    """Which witness keys count, and how many must cosign how soon (the quorum alert)."""

    witnesses: tuple[WitnessKey, ...] = ()
    quorum: int = 0
    within_s: float = 600.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "witnesses": [w.vkey for w in self.witnesses],
                "quorum": self.quorum,
                "within_minutes": self.within_s / 60,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, raw: str) -> WitnessPolicy:
        try:
            data = json.loads(raw)
            keys = tuple(WitnessKey.parse(v) for v in data.get("witnesses", []))
            policy = cls(keys, int(data.get("quorum", 0)), float(data["within_minutes"]) * 60)
        except (ValueError, KeyError, TypeError) as exc:
            raise NoteError(f"malformed witness list: {exc.__class__.__name__}") from None
        if not 0 <= policy.quorum <= len(keys):
            raise NoteError(f"quorum {policy.quorum} needs that many of {len(keys)} witnesses")
        return policy

    def key(self, name: str) -> WitnessKey | None:
        return next((w for w in self.witnesses if w.name == name), None)


@dataclass(frozen=True)
class Cosigned:
    """One verified cosignature: witness, the checkpoint it vouches for, and when."""

    witness: str
    checkpoint: Checkpoint
    cosigned_at: datetime
    line: str


@dataclass(frozen=True)
class WitnessStatus:
    """A witness's largest cosigned size and the age of its newest cosignature (None: never)."""

    witness: str
    size: int
    cosigned_at: datetime | None
    age_s: float | None


def _tables(store: AuditStore) -> None:
    dialect = store.engine.dialect.name
    with store.engine.begin() as conn:
        _metadata.create_all(conn)
        for ddl in _SQLITE_TRIGGERS if dialect == "sqlite" else _PG_TRIGGERS:
            conn.execute(text(ddl))


def add_cosignature(
    store: AuditStore, policy: WitnessPolicy, origin: str, body: str, line: str
) -> Cosigned:
    """Verify and store one cosignature; storing the same one twice is harmless."""
    cosigned = check_cosignature(policy, origin, body, line)
    if _signed_root(store, cosigned.checkpoint.size) != cosigned.checkpoint.root:
        raise CosignatureRefusedError(
            f"the log signed no checkpoint of size {cosigned.checkpoint.size} with that root"
        )
    _tables(store)
    insert = (postgresql if store.engine.dialect.name == "postgresql" else sqlite).insert
    values = {
        "witness": cosigned.witness,
        "size": cosigned.checkpoint.size,
        "body": body,
        "line": line,
        "cosigned_at": cosigned.cosigned_at,
    }
    with store.engine.begin() as conn:
        conn.execute(insert(audit_cosignatures).values(values).on_conflict_do_nothing())
    return cosigned


def _signed_root(store: AuditStore, size: int) -> bytes | None:
    query = select(audit_checkpoints.c.root).where(audit_checkpoints.c.size == size)
    with store.engine.connect() as conn:
        root = conn.execute(query).scalar_one_or_none()
    return bytes(root) if root is not None else None


def check_cosignature(policy: WitnessPolicy, origin: str, body: str, line: str) -> Cosigned:
    """The cosignature, verified against the policy's keys, of a checkpoint of `origin`."""
    name = line.removeprefix("\N{EM DASH} ").partition(" ")[0]
    key = policy.key(name)
    if key is None:
        raise CosignatureRefusedError(f"{name!r} is not a registered witness")
    try:
        checkpoint = Checkpoint.parse(body)
        timestamp = key.verify(body, line)
    except NoteError as exc:
        raise CosignatureRefusedError(str(exc)) from None
    if timestamp is None:
        raise CosignatureRefusedError(f"the cosignature does not carry {name}'s key id")
    if checkpoint.origin != origin:
        raise CosignatureRefusedError(f"checkpoint is for {checkpoint.origin!r}, not this log")
    return Cosigned(name, checkpoint, datetime.fromtimestamp(timestamp, UTC), line)


def _present(store: AuditStore) -> bool:
    """Readers never create the table (nor its triggers): a read changes nothing."""
    return inspect(store.engine).has_table("audit_cosignatures")


def stored_cosignatures(store: AuditStore, size: int | None = None) -> list[tuple[str, str]]:
    """(body, line) of every stored cosignature, oldest checkpoint first; unverified."""
    if not _present(store):
        return []
    query = select(audit_cosignatures.c.body, audit_cosignatures.c.line).order_by(
        audit_cosignatures.c.size, audit_cosignatures.c.witness
    )
    if size is not None:
        query = query.where(audit_cosignatures.c.size == size)
    with store.engine.connect() as conn:
        return [(r.body, r.line) for r in conn.execute(query)]


def witness_status(
    store: AuditStore, policy: WitnessPolicy, now: datetime | None = None
) -> list[WitnessStatus]:
    """Per registered witness: its largest cosigned size and how old its newest cosignature
    is, in seconds (what an operator's /metrics exports, and the quorum alert reads)."""
    now = now or datetime.now(UTC)
    if not _present(store):
        return [WitnessStatus(key.name, 0, None, None) for key in policy.witnesses]
    c = audit_cosignatures.c
    query = select(c.witness, func.max(c.size), func.max(c.cosigned_at)).group_by(c.witness)
    with store.engine.connect() as conn:
        rows = {r[0]: (int(r[1]), _utc(r[2])) for r in conn.execute(query)}
    out = []
    for key in policy.witnesses:
        size, at = rows.get(key.name, (0, None))
        age = (now - at).total_seconds() if at is not None else None
        out.append(WitnessStatus(key.name, size, at, age))
    return out


@dataclass(frozen=True)
class QuorumOverdue:
    """The newest checkpoint has waited longer than allowed for its quorum."""

    size: int
    cosigned_by: int
    quorum: int
    waited_s: float


def quorum_overdue(
    store: AuditStore, policy: WitnessPolicy, now: datetime | None = None
) -> QuorumOverdue | None:
    """The oldest checkpoint that fewer than `quorum` witnesses have cosigned (or cosigned a
    later one), if it was signed more than `within_s` ago; None when all is well or no
    quorum is configured. A log that keeps checkpointing cannot hide a silent quorum."""
    if policy.quorum == 0:
        return None
    now = now or datetime.now(UTC)
    sizes = sorted((s.size for s in witness_status(store, policy, now)), reverse=True)
    covered = sizes[policy.quorum - 1]  # the largest size a quorum has cosigned
    cp = audit_checkpoints.c
    query = select(cp.size, cp.signed_at).where(cp.size > covered).order_by(cp.size).limit(1)
    with store.engine.connect() as conn:
        waiting = conn.execute(query).first()
    if waiting is None:
        return None
    waited = (now - _utc(waiting.signed_at)).total_seconds()
    if waited < policy.within_s:
        return None
    done = sum(1 for size in sizes if size >= waiting.size)
    return QuorumOverdue(int(waiting.size), done, policy.quorum, waited)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
