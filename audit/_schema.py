"""Tables of the disclosure log (SQLAlchemy Core; SQLite and PostgreSQL alike).

`audit_log` holds each record's canonical JSON (what is hashed) beside projection
columns for search; the verifier checks the two agree. `audit_nodes` holds the hash of
every perfect Merkle subtree, so proofs need O(log n) lookups. `audit_personal` holds
the erasable personal fields and their salts. Every table but `audit_personal` is
append-only, enforced by triggers; `audit_personal` refuses UPDATE and admits DELETE
only as the retention path (`AuditStore.expire`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(32), nullable=False, unique=True),
    Column("dedupe_key", String(160), nullable=False, unique=True),
    Column("event", String(16), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("message_id", String(32)),
    Column("correlation_id", String(32)),
    Column("ingress_agency", String(32), nullable=False),
    Column("sender_agency", String(32)),
    Column("recipient_agency", String(32)),
    Column("kind", String(32)),
    Column("purpose", String(32)),
    Column("decision", String(8), nullable=False),
    Column("reason_code", String(48)),
    Column("policy_ids", Text, nullable=False),  # JSON array, searched with LIKE
    Column("review_required", Boolean, nullable=False),
    Column("restricted", Boolean, nullable=False),
    Column("refers_to", String(32)),
    Column("canonical", Text, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    # (column, seq) pairs: a filtered search newest-first walks one index, no sort.
    Index("ix_audit_log_message", "message_id"),
    Index("ix_audit_log_refers", "refers_to"),
    Index("ix_audit_log_sender", "sender_agency", "seq"),
    Index("ix_audit_log_recipient", "recipient_agency", "seq"),
    Index("ix_audit_log_event", "event", "seq"),
    Index("ix_audit_log_purpose", "purpose", "seq"),
    Index("ix_audit_log_kind", "kind", "seq"),
    # With seq: a date range's first and last seq come off the index alone (_query).
    Index("ix_audit_log_occurred", "occurred_at", "seq"),
    Index("ix_audit_log_review", "review_required", "seq"),
)

audit_personal = Table(
    "audit_personal",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("salt", LargeBinary(32), nullable=False),
    Column("fields", Text, nullable=False),  # canonical JSON of PERSONAL_FIELDS
    Column("offender", String(32)),
    Index("ix_audit_personal_offender", "offender", "seq"),
)

audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),  # C2SP signed note
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

seen_messages = Table(
    "seen_messages",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("ingress_seq", BigInteger, nullable=False),
)

audit_access = Table(
    "audit_access",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("agency", String(32)),
    Column("method", String(8), nullable=False),
    Column("path", String(256), nullable=False),
    Column("query", Text, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("results", Integer),
    # SHA-256 over the previous row's chain and this row (audit._access): a rewritten or
    # deleted row breaks every later link, and `access_sealed` records in the Merkle log
    # fix the chain's head under the next checkpoint.
    Column("chain", LargeBinary(32), nullable=False),
    Index("ix_audit_access_at", "at"),
)

APPEND_ONLY = ("audit_log", "audit_nodes", "audit_checkpoints", "seen_messages", "audit_access")

# SQLite's INSERT OR REPLACE deletes the clashing row and inserts the new one; the
# delete fires no trigger (unless the attacker's own connection turned recursive_triggers
# on), so an insert that would clash on any unique key is refused BEFORE it happens.
# Tables the store fills with ON CONFLICT DO NOTHING ignore the clash instead (same
# outcome for them: the stored row stays); the others abort.
_KEYS = (
    (
        "audit_log",
        "seq = NEW.seq OR record_id = NEW.record_id OR dedupe_key = NEW.dedupe_key",
        "RAISE(ABORT, 'audit_log is append-only')",
    ),
    ("audit_personal", "seq = NEW.seq", "RAISE(ABORT, 'audit_personal is append-only')"),
    (
        "audit_nodes",
        "level = NEW.level AND idx = NEW.idx",
        "RAISE(ABORT, 'audit_nodes is append-only')",
    ),
    ("audit_checkpoints", "size = NEW.size", "RAISE(IGNORE)"),
    ("seen_messages", "message_id = NEW.message_id", "RAISE(IGNORE)"),
    ("audit_access", "id = NEW.id", "RAISE(ABORT, 'audit_access is append-only')"),
)

SQLITE_TRIGGERS = [
    *[
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        for table in APPEND_ONLY
        for op in ("UPDATE", "DELETE")
    ],
    (
        "CREATE TRIGGER IF NOT EXISTS audit_personal_no_update BEFORE UPDATE ON audit_personal "
        "BEGIN SELECT RAISE(ABORT, 'audit_personal is erase-only'); END"
    ),
    *[
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "  # noqa: S608 - our names
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash}) "
        f"BEGIN SELECT {action}; END"
        for table, clash, action in _KEYS
    ],
]
"""Every SQLite trigger, created with the tables and never again (`s284 audit verify`
compares them with `sqlite_master` and reports a missing or altered one)."""

PG_TRIGGERS = [
    (
        "CREATE OR REPLACE FUNCTION s284_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
    ),
    *[
        f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION s284_append_only()"
        for table in APPEND_ONLY
    ],
    *[
        f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION s284_append_only()"
        for table in (*APPEND_ONLY, "audit_personal")
    ],
    (
        "CREATE OR REPLACE TRIGGER audit_personal_erase_only BEFORE UPDATE ON audit_personal "
        "FOR EACH STATEMENT EXECUTE FUNCTION s284_append_only()"
    ),
]
