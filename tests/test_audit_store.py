"""The disclosure log's store on SQLite and PostgreSQL: idempotent group commit, append-only
tables, RFC 9162 proofs that verify, signed checkpoints, retention that keeps proofs valid."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import (
    AuditStore,
    SeenMessage,
    checkpoint,
    leaf_hash,
    parse_verifier_key,
    verifier_key,
    verify_consistency,
    verify_inclusion,
    verify_log,
)
from broker.ids import new_id
from tests.auditlog import T0, record
from tests.conftest import pg_schema

ORIGIN = "s284-broker.test/audit/log"


@pytest.fixture
def store(store_url):
    s = AuditStore.open(store_url)
    yield s
    s.close()


def test_appends_are_idempotent_per_message_and_recipient(store):
    """Re-appending the records of a redelivered message stores nothing twice."""
    first, second = record(0), record(0, recipient="health")
    mid = first.message_id
    assert store.append([first, second], [SeenMessage(mid, 7)]).added == 2
    again = store.append([first, second], [SeenMessage(mid, 7)])
    assert (again.added, again.size) == (0, 2)
    assert store.count("disclosed") == 2
    assert store.first_seen([mid, new_id()]) == {mid: 7}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET event = 'refused'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_nodes",
        "DELETE FROM audit_checkpoints",
        "DELETE FROM seen_messages",
        "UPDATE audit_personal SET offender = 'S284-999999'",
    ],
)
def test_database_refuses_update_and_delete(store, store_url, statement):
    """Even with direct SQL access, the database itself refuses to change or remove a record."""
    store.append([record(0)], [SeenMessage(new_id(), 1)])
    checkpoint(store, ORIGIN, Ed25519PrivateKey.generate())
    engine = sa.create_engine(store_url)
    with pytest.raises(sa.exc.DBAPIError, match=r"append-only|erase-only"), engine.begin() as c:
        c.execute(sa.text(statement))
    engine.dispose()
    [kept] = store.records()
    assert (kept["event"], kept["offender"]) == ("disclosed", "S284-000123")


def test_every_record_has_an_inclusion_proof_that_verifies(store):
    """Any record's RFC 9162 inclusion proof verifies against the signed root."""
    for batch in range(5):  # uneven batches: the tree's right edge moves in odd steps
        store.append([record(batch * 10 + i) for i in range(batch + 3)])
    key = Ed25519PrivateKey.generate()
    checkpoint(store, ORIGIN, key)
    rows = store.records()
    for row in rows:
        proof = store.inclusion_proof(row["seq"])
        assert proof.tree_size == len(rows) == 25
        assert proof.checkpoint_note is not None
        verify_inclusion(proof.leaf_hash, row["seq"], proof.tree_size, proof.proof, proof.root)
    with store.engine.connect() as conn:
        first = conn.execute(sa.text("SELECT canonical FROM audit_log WHERE seq = 0")).scalar()
    assert leaf_hash(first.encode()) == store.inclusion_proof(0).leaf_hash


def test_consistency_proofs_link_every_pair_of_sizes(store):
    """Each later tree provably extends each earlier one (RFC 9162 consistency)."""
    roots = {}
    for i in range(13):
        store.append([record(i)])
        size, root = store.root()
        roots[size] = root
    for old in range(1, 14):
        for new in range(old, 14):
            proof = store.consistency_proof(old, new)
            verify_consistency(old, new, roots[old], roots[new], proof)


def test_checkpoints_are_signed_notes_over_the_current_tree(store):
    """A checkpoint is a C2SP signed note naming the size and root; none when nothing is new."""
    key = Ed25519PrivateKey.generate()
    store.append([record(i) for i in range(4)])
    made = checkpoint(store, ORIGIN, key)
    assert made is not None
    assert made.note.startswith(f"{ORIGIN}\n4\n")
    assert checkpoint(store, ORIGIN, key) is None
    store.append([record(9)])
    later = checkpoint(store, ORIGIN, key)
    assert later is not None
    assert later.previous_size == 4
    _, root4 = store.root(4)
    _, root5 = store.root(5)
    verify_consistency(4, 5, root4, root5, later.consistency)


def test_expiry_erases_personal_fields_and_every_proof_stays_valid(store):
    """After `expire`, old records lose offender and staff ids; verify and proofs still pass."""
    key = Ed25519PrivateKey.generate()
    store.append([record(i, when=T0 + timedelta(days=i)) for i in range(6)])
    checkpoint(store, ORIGIN, key)
    before = store.inclusion_proof(1)
    erased = store.expire(T0 + timedelta(days=3), "test-node", new_id())
    assert erased == 3
    rows = store.records()
    assert [r.get("offender") for r in rows[:6]] == [None] * 3 + ["S284-000123"] * 3
    assert rows[-1]["event"] == "expired"
    assert store.inclusion_proof(1, before.tree_size) == before
    checkpoint(store, ORIGIN, key)
    report = verify_log(store, parse_verifier_key(verifier_key(ORIGIN, key.public_key())))
    assert report.ok, report.problem
    assert report.records == 7


@pytest.mark.postgres
def test_postgresql_refuses_truncate():
    """TRUNCATE, which skips row triggers, is refused on every log table too."""
    with pg_schema() as url:
        _refuses_truncate(url)


def _refuses_truncate(url):
    store = AuditStore.open(url)
    store.append([record(0)])
    engine = sa.create_engine(url)
    for table in ("audit_log", "audit_nodes", "audit_personal"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {table}"))
    engine.dispose()
    assert store.count() == 1
    store.close()
