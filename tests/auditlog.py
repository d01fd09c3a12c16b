"""Synthetic audit records for the log's tests (invented offenders and staff only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from audit import AuditRecord
from audit import _verify_parallel as parallel
from broker.ids import new_id

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def record(
    i: int = 0,
    *,
    recipient: str = "police",
    purpose: str = "offender_management",
    offender: str = "S284-000123",
    event: str = "disclosed",
    when: datetime | None = None,
    **extra: object,
) -> AuditRecord:
    message_id = new_id()
    fields: dict[str, object] = {
        "record_id": new_id(),
        "dedupe_key": f"{event}:{message_id}:{recipient}",
        "event": event,
        "occurred_at": when or T0 + timedelta(minutes=i),
        "ingress_agency": "corrections",
        "decision": "permit" if event == "disclosed" else "deny",
        "reason_code": None if event == "disclosed" else "policy.denied",
        "reason": "risk.update may be disclosed for offender_management",
        "node": "test-node",
        "message_id": message_id,
        "ingress_seq": i + 1,
        "sender_agency": "corrections",
        "sender_person": "staff-0042",
        "recipient_agency": recipient,
        "offender": offender,
        "kind": "risk.update",
        "purpose": purpose,
        "policy_ids": ("permit-offender-management",),
        "policy_version": "s284-test",
        "payload_digest": "ab" * 32,
    }
    fields.update(extra)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def untrigger(url: str) -> sa.Engine:
    """An attacker with database access: drop the append-only triggers."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='trigger'"))
            for (name,) in names.all():
                conn.execute(sa.text(f"DROP TRIGGER {name}"))
        else:
            for table in ("audit_log", "audit_nodes", "audit_checkpoints", "audit_personal"):
                conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    return engine


@pytest.fixture(autouse=True, params=["serial", "parallel"])
def verifier_mode(request, monkeypatch):
    """Every verdict here holds both ways: serially, and with step 2 in two processes over
    ranges of three records (ranges end inside the tampering, and at its edges)."""
    if request.param == "parallel":
        monkeypatch.setattr(parallel, "THRESHOLD", 0)
        monkeypatch.setattr(parallel, "SPAN", 3)
        monkeypatch.setattr(parallel, "cores", lambda: 2)
    else:
        monkeypatch.setattr(parallel, "cores", lambda: 1)
    return request.param
