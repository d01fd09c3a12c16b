"""On PostgreSQL, the roles docs/audit-format.md 7.2 sets up: the gateway appends and
cannot rewrite, delete or drop a trigger; the API cannot touch what the gateway writes
beyond its own appends; only retention deletes personal rows. The SQL run is the SQL the
document shows, against a real server."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import AccessEntry, AuditStore
from broker.ids import new_id
from tests.auditlog import T0, record
from tests.conftest import PG_URL, pg_schema

pytestmark = pytest.mark.postgres

DOC = Path(__file__).resolve().parents[1] / "docs" / "audit-format.md"
ROLES = ("gateway", "api", "retention", "reader")


def _documented_sql(schema: str, prefix: str) -> list[str]:
    section = DOC.read_text().split("### 7.2", 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    block = re.sub(r"--[^\n]*", "", block)
    block = re.sub(r"\bs284_(gateway|api|retention|reader)\b", rf"{prefix}_\1", block)
    block = re.sub(r"\bs284\b(?=\.|\s+TO)", schema, block)
    return [s.strip() for s in block.split(";") if s.strip()]


@pytest.fixture
def roles():
    """A schema with the log's tables, and the documented roles over it; dropped after."""
    prefix = f"s284_t{uuid.uuid4().hex[:8]}"
    with pg_schema() as url:
        schema = url.rsplit("%3D", 1)[1]
        owner = AuditStore.open(url)
        owner.append([record(i) for i in range(3)])
        admin = sa.create_engine(PG_URL)
        try:
            with admin.begin() as conn:
                for statement in _documented_sql(schema, prefix):
                    conn.execute(sa.text(statement))
            base = PG_URL.replace("postgres@", "{role}@")
            yield {r: base.format(role=f"{prefix}_{r}") + url[len(PG_URL) :] for r in ROLES}
        finally:
            with admin.begin() as conn:
                made = conn.execute(
                    sa.text("SELECT rolname FROM pg_roles WHERE rolname LIKE :p"),
                    {"p": f"{prefix}_%"},
                ).scalars()
                for name in list(made):
                    conn.execute(sa.text(f"DROP OWNED BY {name}"))
                    conn.execute(sa.text(f"DROP ROLE {name}"))
            admin.dispose()
            owner.close()


def _refused(url: str, statement: str) -> str:
    engine = sa.create_engine(url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    return str(caught.value.orig)


def test_the_gateway_role_appends_but_cannot_rewrite_or_unguard(roles):
    """Logged in as the gateway: appending works; UPDATE, DELETE, TRUNCATE, dropping or
    disabling a trigger are all refused by PostgreSQL's privileges, not just the triggers."""
    store = AuditStore.open(roles["gateway"])
    try:
        assert store.append([record(9)]).size == 4
        assert store.seal_access("gateway", new_id()) is False  # nothing to seal yet
    finally:
        store.close()
    for statement in (
        "UPDATE audit_log SET event = 'refused'",
        "DELETE FROM audit_personal",
        "TRUNCATE audit_checkpoints",
        "DROP TRIGGER audit_log_append_only ON audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
    ):
        assert re.search(r"permission denied|must be owner", _refused(roles["gateway"], statement))


def test_the_api_role_reads_and_logs_access_only(roles):
    """Logged in as the API: it records access and reads; it cannot mark messages seen,
    sign checkpoints, or erase personal rows."""
    store = AuditStore.open(roles["api"])
    try:
        store.record_access(
            AccessEntry("aud-1", "auditor", None, "GET", "/api/v1/audit/records", "", 200, 4, T0)
        )
        assert store.count() == 3
    finally:
        store.close()
    for statement in (
        "INSERT INTO seen_messages VALUES ('x', 1)",
        "DELETE FROM audit_personal",
    ):
        assert "permission denied" in _refused(roles["api"], statement)
    assert "permission denied" in _refused(
        roles["reader"], "INSERT INTO seen_messages VALUES ('y', 1)"
    )


def test_only_the_retention_role_erases_personal_rows(roles):
    """`s284 audit expire` as the retention role erases and records the expiry."""
    store = AuditStore.open(roles["retention"])
    try:
        cutoff = datetime.now(UTC) + timedelta(days=1)
        assert store.expire(cutoff, "test-node", new_id(), by="retention-officer") == 3
    finally:
        store.close()
