"""An insider with the database file: erasing personal rows outside retention, rewriting
rows with INSERT OR REPLACE, dropping or altering the append-only triggers. Each is either
refused by the database or reported by `verify_log` (`s284 audit verify`)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import (
    AccessEntry,
    AuditStore,
    Viewer,
    accounting,
    checkpoint,
    parse_verifier_key,
    verifier_key,
    verify_log,
)
from audit._access import GENESIS, iter_access, link
from broker.ids import new_id
from tests.auditlog import (
    T0,
    record,
    untrigger,
    verifier_mode,  # noqa: F401 - autouse: every test, serial and parallel
)

ORIGIN = "s284-broker.test/audit/log"
KEY = Ed25519PrivateKey.generate()
VERIFIER = parse_verifier_key(verifier_key(ORIGIN, KEY.public_key()))
AUDITOR = Viewer("auditor", None, "auditor-1")
OFFENDER = "S284-000123"


@pytest.fixture
def log(store_url):
    """Ten disclosures about one offender, a day apart, signed at size 10."""
    store = AuditStore.open(store_url)
    store.append([record(i, when=T0 + timedelta(days=i)) for i in range(10)])
    checkpoint(store, ORIGIN, KEY)
    yield store
    store.close()


def _disclosures(store):
    return len(accounting(store, AUDITOR, OFFENDER, limit=100).rows)


def _problem(store):
    report = verify_log(store, VERIFIER)
    assert not report.ok, "verify passed a tampered log"
    return report.problem


def _sql(url, statement, **params):
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def test_deleting_a_personal_row_fails_verify(log, store_url):
    """An insider deletes one recent personal row: the accounting drops from 10 to 9 and
    `verify` names the record whose erasure no expiry record covers."""
    assert _disclosures(log) == 10
    _sql(store_url, "DELETE FROM audit_personal WHERE seq = 8")
    assert _disclosures(log) == 9
    problem = _problem(log)
    assert (problem.code, problem.seq) == ("personal.erased_without_expiry", 8)


def test_an_authorised_expiry_verifies_and_says_who_and_the_cutoff(log):
    """Retention through `expire` erases rows, records who and the exact cut-off; verify
    passes because the expiry record covers every erased row."""
    cutoff = T0 + timedelta(days=3, hours=12)
    assert log.expire(cutoff, "test-node", new_id(), by="privacy-admin") == 4
    checkpoint(log, ORIGIN, KEY)
    report = verify_log(log, VERIFIER)
    assert report.ok, report.problem
    [expiry] = [r for r in log.records() if r["event"] == "expired"]
    stated = f"before {cutoff.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.000000Z erased by privacy-admin"
    assert stated in expiry["reason"]
    assert _disclosures(log) == 6


def test_an_expiry_does_not_cover_a_later_erasure(log, store_url):
    """A row newer than the expiry's cut-off, erased by hand after it, is still caught."""
    log.expire(T0 + timedelta(days=2), "test-node", new_id())
    _sql(store_url, "DELETE FROM audit_personal WHERE seq = 5")
    problem = _problem(log)
    assert (problem.code, problem.seq) == ("personal.erased_without_expiry", 5)


# INSERT OR REPLACE, and reading a trigger's SQL from sqlite_master, are SQLite's;
# disabling a trigger is PostgreSQL's: those tests run on that engine only.
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def _sqlite_path(store_url):
    assert store_url.startswith("sqlite:///"), store_url
    return store_url.removeprefix("sqlite:///")


_LOG_COLUMNS = (
    "occurred_at, recorded_at, message_id, correlation_id, ingress_agency, sender_agency, "
    "recipient_agency, kind, purpose, decision, reason_code, policy_ids, review_required, "
    "restricted, refers_to, canonical, leaf_hash"
)
_ACCESS_COLUMNS = "role, agency, method, path, query, status, results"
REPLACEMENTS = {  # table: (the attack, a query for the value, the value that must stay)
    "audit_log": (
        (
            f"INSERT OR REPLACE INTO audit_log SELECT seq, record_id, dedupe_key, 'refused', "  # noqa: S608
            f"{_LOG_COLUMNS} FROM audit_log WHERE seq = 3"
        ),
        "SELECT event FROM audit_log WHERE seq = 3",
        "disclosed",
    ),
    "audit_checkpoints": (
        (
            "INSERT OR REPLACE INTO audit_checkpoints SELECT size, root, 'forged', signed_at "
            "FROM audit_checkpoints WHERE size = 10"
        ),
        "SELECT note != 'forged' FROM audit_checkpoints WHERE size = 10",
        1,
    ),
    "audit_access": (
        (
            f"INSERT OR REPLACE INTO audit_access (id, at, subject, {_ACCESS_COLUMNS}) "  # noqa: S608
            f"SELECT id, at, 'someone-else', {_ACCESS_COLUMNS} FROM audit_access WHERE id = 1"
        ),
        "SELECT subject FROM audit_access WHERE id = 1",
        "auditor-1",
    ),
}


@SQLITE_ONLY
@pytest.mark.parametrize("table", sorted(REPLACEMENTS))
def test_insert_or_replace_does_not_rewrite_a_row(log, store_url, table):
    """With the triggers in place, an attacker's own sqlite3 connection (recursive triggers
    off, as by default) cannot rewrite a row with INSERT OR REPLACE."""
    path = _sqlite_path(store_url)
    log.record_access(
        AccessEntry("auditor-1", "auditor", None, "GET", "/audit/records", "", 200, 3, T0)
    )
    statement, check, expected = REPLACEMENTS[table]
    conn = sqlite3.connect(path)
    try:
        refused = _attempt(conn, statement)
        assert refused in {None, f"{table} is append-only"}  # ignored or refused
        assert conn.execute(check).fetchone()[0] == expected
    finally:
        conn.close()
    assert verify_log(log, VERIFIER).ok


def _attempt(conn, statement):
    try:
        with conn:
            conn.execute(statement)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None


@SQLITE_ONLY
def test_a_dropped_trigger_is_reported_and_not_recreated(log, store_url):
    """`DROP TRIGGER` cannot be prevented; verify reports it, and neither opening the store
    nor verifying puts it back (that would erase the evidence)."""
    path = _sqlite_path(store_url)
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.close()
    reopened = AuditStore.open(store_url)
    try:
        problem = _problem(reopened)
        assert problem.code == "guard.trigger_missing"
        assert "audit_log_no_delete" in problem.detail
        assert _problem(reopened).code == "guard.trigger_missing"  # still missing
        reopened.install_guards()  # the operator's deliberate repair
        assert verify_log(reopened, VERIFIER).ok
    finally:
        reopened.close()


@SQLITE_ONLY
def test_an_altered_trigger_is_reported(log, store_url):
    """A trigger swapped for a harmless one of the same name is reported as altered."""
    path = _sqlite_path(store_url)
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TRIGGER audit_personal_no_update;"
        "CREATE TRIGGER audit_personal_no_update BEFORE UPDATE ON audit_personal "
        "BEGIN SELECT 1; END;"
    )
    conn.close()
    problem = _problem(log)
    assert problem.code == "guard.trigger_altered"


@POSTGRES_ONLY
def test_a_disabled_trigger_is_reported_on_postgresql(log, store_url):
    """On PostgreSQL the owner can disable a trigger; verify reports it."""
    _sql(store_url, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    assert _problem(log).code == "guard.trigger_altered"


def _access(store, n, query=""):
    for i in range(n):
        store.record_access(
            AccessEntry(f"auditor-{i}", "auditor", None, "GET", "/audit/records", query, 200, i, T0)
        )


def _untriggered(url, *statements):
    engine = untrigger(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_access DISABLE TRIGGER USER"))
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def test_a_rewritten_access_row_is_caught(log, store_url):
    """Rewriting who made a request breaks the access log's hash chain at that row."""
    _access(log, 5)
    _untriggered(store_url, "UPDATE audit_access SET subject = 'someone-else' WHERE id = 3")
    problem = _problem(log)
    assert problem.code == "access.altered"
    assert "row 3" in problem.detail


def test_a_deleted_access_row_is_caught(log, store_url):
    """Deleting a request from the access log leaves a gap verify names."""
    _access(log, 5)
    _untriggered(store_url, "DELETE FROM audit_access WHERE id = 2")
    assert _problem(log).code == "access.missing"


def test_a_recomputed_access_chain_is_caught_by_the_sealed_head(log, store_url):
    """An insider who rewrites a row and recomputes every later link is caught by the head
    sealed into the signed log before the rewrite; an untouched access log verifies."""
    _access(log, 4)
    assert log.seal_access("test-node", new_id())
    assert not log.seal_access("test-node", new_id())  # nothing new: no second seal
    checkpoint(log, ORIGIN, KEY)
    assert verify_log(log, VERIFIER).ok
    rows = list(iter_access(log))
    rows[1]["subject"] = "someone-else"
    prev, statements = GENESIS, []
    for row in rows:
        prev = link(prev, row)
        statements.append(
            f"UPDATE audit_access SET subject = '{row['subject']}', "  # noqa: S608
            f"chain = X'{prev.hex()}' WHERE id = {row['id']}"
        )
    if not store_url.startswith("sqlite"):
        statements = [s.replace("X'", "'\\x") for s in statements]
    _untriggered(store_url, *statements)
    problem = _problem(log)
    assert problem.code == "access.altered"
    assert "head the log sealed" in problem.detail


def test_an_anonymous_query_string_is_stored_truncated(log):
    """A caller cannot make the append-only access log store an unbounded query string."""
    _access(log, 1, query="q=" + "x" * 100_000)
    [row] = list(iter_access(log))
    assert len(row["query"]) == 512


@SQLITE_ONLY
def test_the_cli_reports_a_dropped_trigger_in_one_line(log, store_url, cli):
    """`s284 audit verify` exits 4 with one line naming the finding; no traceback."""
    path = _sqlite_path(store_url)
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_access_no_update")
    conn.close()
    vkey = verifier_key(ORIGIN, KEY.public_key())
    result = cli("audit", "verify", "--db", store_url, "--log-key", vkey)
    assert result.returncode == 4, result.stderr
    assert "guard.trigger_missing" in result.stderr
    assert "audit_access_no_update" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    again = cli("audit", "verify", "--db", store_url, "--log-key", vkey)
    assert again.returncode == 4, "verify re-created the trigger it reported"
    restored = cli("audit", "restore-guards", "--db", store_url, "--yes")
    assert restored.returncode == 0, restored.stderr
    assert cli("audit", "verify", "--db", store_url, "--log-key", vkey).returncode == 0


def test_an_access_log_from_before_the_chain_is_upgraded(tmp_path):
    """A database whose access log predates the chain keeps working: its old rows stay
    unchained, new rows are chained from there, and verify passes; a later rewrite of a
    new row is still caught."""
    path = tmp_path / "audit.db"
    AuditStore.open(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "ALTER TABLE audit_access DROP COLUMN chain;"
        "INSERT INTO audit_access (at, subject, role, agency, method, path, query, status) "
        "VALUES ('2025-01-01 00:00:00.000000', 'old-1', 'auditor', NULL, 'GET', '/x', '', 200);"
    )
    conn.close()
    store = AuditStore.open(f"sqlite:///{path}")
    try:
        _access(store, 2)
        assert [r["chain"] is None for r in iter_access(store)] == [True, False, False]
        checkpoint(store, ORIGIN, KEY)
        assert verify_log(store, VERIFIER).ok
        _untriggered(f"sqlite:///{path}", "UPDATE audit_access SET status = 500 WHERE id = 3")
        assert _problem(store).code == "access.altered"
    finally:
        store.close()
