"""The stored canonical text of one record: the bytes the log hashed, for auditors.

A reader recomputes `leaf_hash` from these bytes as stored (docs/audit-format.md §1.5),
never from a re-serialisation of the parsed record.
"""

from __future__ import annotations

from sqlalchemy import select

from audit._guard import unavailable_on_db_error
from audit._schema import audit_log
from audit._store import AuditStore


@unavailable_on_db_error
def stored_canonical(store: AuditStore, seq: int) -> str | None:
    query = select(audit_log.c.canonical).where(audit_log.c.seq == seq)
    with store.engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()
