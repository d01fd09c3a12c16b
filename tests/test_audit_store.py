"""The placeholder disclosure log: append-only on SQLite and PostgreSQL, idempotent appends."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from audit import AuditRecord, AuditStore, SeenMessage
from broker.ids import new_id

PG_URL = os.environ.get("S284_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        with sa.create_engine(PG_URL).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return False
    return True


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    if not _pg_reachable():
        if os.environ.get("CI"):  # CI's machine has PostgreSQL: its absence is a failure there
            pytest.fail(f"PostgreSQL not reachable at {PG_URL} (required when CI is set)")
        pytest.skip("PostgreSQL not reachable at S284_TEST_PG_URL")
    schema = f"s284_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _record(message_id: str, recipient: str = "police") -> AuditRecord:
    return AuditRecord(
        record_id=new_id(),
        dedupe_key=f"disclosed:{message_id}:{recipient}",
        event="disclosed",
        occurred_at=datetime.now(UTC),
        ingress_agency="corrections",
        decision="permit",
        reason_code=None,
        reason="risk.update may be disclosed",
        node="test",
        message_id=message_id,
        ingress_seq=1,
        recipient_agency=recipient,
        offender="S284-000123",
        policy_ids=("permit:risk.update:offender_management",),
    )


def test_appends_are_idempotent_per_message_and_recipient(store_url):
    """Re-appending the records of a redelivered message stores nothing twice."""
    store = AuditStore.open(store_url)
    mid = new_id()
    store.append([_record(mid), _record(mid, "health")], [SeenMessage(mid, 7)])
    store.append([_record(mid), _record(mid, "health")], [SeenMessage(mid, 7)])
    assert store.count("disclosed") == 2
    assert store.first_seen([mid, new_id()]) == {mid: 7}
    store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE disclosure_log SET reason = 'edited'",
        "DELETE FROM disclosure_log",
        "DELETE FROM seen_messages",
    ],
)
def test_database_refuses_update_and_delete(store_url, statement):
    """Even with direct SQL access, the database itself refuses to change or remove a record."""
    store = AuditStore.open(store_url)
    mid = new_id()
    store.append([_record(mid)], [SeenMessage(mid, 1)])
    engine = sa.create_engine(store_url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()
    assert [r["reason"] for r in store.records()] == ["risk.update may be disclosed"]
    store.close()
