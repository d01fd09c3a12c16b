"""`verify_log` (behind `s284 audit verify`) catches each way of tampering with the log and
names the first bad record; an untouched log verifies."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import (
    AuditStore,
    Checkpoint,
    checkpoint,
    leaf_hash,
    parse_verifier_key,
    verifier_key,
    verify_log,
)
from audit._note import sign_checkpoint
from tests.auditlog import (
    record,
    untrigger,
    verifier_mode,  # noqa: F401 - autouse: every test, serial and parallel
)

ORIGIN = "s284-broker.test/audit/log"
KEY = Ed25519PrivateKey.generate()
VERIFIER = parse_verifier_key(verifier_key(ORIGIN, KEY.public_key()))


@pytest.fixture
def log(store_url):
    """Ten records with checkpoints at 4 and 10, and direct SQL access without triggers."""
    store = AuditStore.open(store_url)
    store.append([record(i) for i in range(4)])
    checkpoint(store, ORIGIN, KEY)
    store.append([record(i) for i in range(4, 10)])
    checkpoint(store, ORIGIN, KEY)
    engine = untrigger(store_url)
    yield store, engine
    engine.dispose()
    store.close()


def _problem(store):
    report = verify_log(store, VERIFIER)
    assert not report.ok
    return report.problem


def _canonical(engine, seq):
    with engine.connect() as conn:
        text = conn.execute(
            sa.text("SELECT canonical FROM audit_log WHERE seq = :s"), {"s": seq}
        ).scalar()
    return json.loads(text)


def _rewrite(engine, seq, data, *, rehash):
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    params = {"c": text, "h": leaf_hash(text.encode()), "s": seq, "p": data["purpose"]}
    sets = "canonical = :c, purpose = :p" + (", leaf_hash = :h" if rehash else "")
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE audit_log SET {sets} WHERE seq = :s"), params)  # noqa: S608


def test_an_untouched_log_verifies(log):
    """Every record re-hashes, every signed checkpoint matches the rebuilt tree."""
    store, _ = log
    store.install_guards()  # the fixture dropped them: verify would report that
    report = verify_log(store, VERIFIER)
    assert report.ok, report.problem
    assert (report.records, report.checkpoints, report.checked_sizes) == (10, 2, [4, 10])


def test_a_changed_field_is_named(log):
    """Editing a record's purpose (canonical text and search column) names that record."""
    store, engine = log
    data = _canonical(engine, 6)
    data["purpose"] = "consent"
    _rewrite(engine, 6, data, rehash=False)
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("record.altered", 6)


def test_a_changed_field_with_its_leaf_rehashed_breaks_the_signed_root(log):
    """An attacker who also recomputes the leaf hash is caught by the signed checkpoint."""
    store, engine = log
    data = _canonical(engine, 2)
    data["purpose"] = "consent"
    _rewrite(engine, 2, data, rehash=True)
    problem = _problem(store)
    assert problem.code == "checkpoint.root_mismatch"
    assert "records 0..3" in problem.detail


def test_a_changed_search_column_is_named(log):
    """A search column edited to hide a record from queries disagrees with the hashed record."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET recipient_agency = 'dffh' WHERE seq = 3"))
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("record.altered", 3)
    assert "recipient_agency" in problem.detail


def test_a_changed_personal_field_is_named(log):
    """Rewriting which offender a record is about breaks the salted commitment."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE audit_personal SET fields = replace(fields, 'S284-000123', "
                "'S284-000999') WHERE seq = 5"
            )
        )
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("record.personal_altered", 5)


def test_a_deleted_record_is_named(log):
    """Removing a record from the middle names the missing position."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 7"))
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("record.missing", 7)


def test_the_deleted_newest_record_is_named(log):
    """Removing the newest record leaves a checkpoint covering more than the store holds."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 9"))
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("log.truncated", 9)


def test_a_truncated_log_is_caught(log):
    """Cutting off the tail of the log names the first missing record."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq >= 5"))
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("log.truncated", 5)


def test_reordered_records_are_named(log):
    """Swapping two records' positions names the first of them."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET seq = 1000 WHERE seq = 2"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 3 WHERE seq = 1000"))
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("record.out_of_place", 2)


def test_an_inserted_record_is_named(log):
    """A forged record slipped into the middle (later ones renumbered) is caught there."""
    store, engine = log
    forged = _canonical(engine, 5)
    forged["record_id"] = "01JFORGED0000000000000000"
    forged["seq"] = 5
    text = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    with engine.begin() as conn:
        for seq in range(9, 4, -1):
            conn.execute(
                sa.text("UPDATE audit_log SET seq = :n WHERE seq = :s"), {"n": seq + 1, "s": seq}
            )
        conn.execute(
            sa.text(
                "INSERT INTO audit_log SELECT 5, :rid, 'forged', event, occurred_at, "
                "recorded_at, message_id, correlation_id, ingress_agency, sender_agency, "
                "recipient_agency, kind, purpose, decision, reason_code, policy_ids, "
                "review_required, restricted, refers_to, :c, :h FROM audit_log WHERE seq = 6"
            ),
            {"rid": forged["record_id"], "c": text, "h": leaf_hash(text.encode())},
        )
    problem = _problem(store)
    assert problem.code in {"record.out_of_place", "checkpoint.root_mismatch"}
    assert problem.seq in {5, 6, 9}


def test_a_forged_checkpoint_is_caught(log):
    """A checkpoint signed by any other key, or with an edited root, is refused."""
    store, engine = log
    _, root = store.root(10)
    forged = sign_checkpoint(Checkpoint(ORIGIN, 11, root), Ed25519PrivateKey.generate())
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_checkpoints (size, root, note, signed_at) "
                "VALUES (11, :r, :n, CURRENT_TIMESTAMP)"
            ),
            {"r": root, "n": forged},
        )
    problem = _problem(store)
    assert problem.code == "checkpoint.bad_signature"
    assert "size 11" in problem.detail


def test_an_edited_checkpoint_root_is_caught(log):
    """Changing the root inside a genuinely signed note breaks its signature."""
    store, engine = log
    [first, _] = store.checkpoints()
    lines = first.note.split("\n")
    lines[2] = "A" * 43 + "="
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size = 4"))
        conn.execute(
            sa.text(
                "INSERT INTO audit_checkpoints (size, root, note, signed_at) "
                "VALUES (4, :r, :n, CURRENT_TIMESTAMP)"
            ),
            {"r": first.root, "n": "\n".join(lines)},
        )
    assert _problem(store).code == "checkpoint.bad_signature"


def test_an_altered_stored_tree_node_is_named(log):
    """A stored inner node that proofs are built from, once changed, is reported."""
    store, engine = log
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_nodes SET hash = :h WHERE level = 1 AND idx = 2"),
            {"h": bytes(32)},
        )
    problem = _problem(store)
    assert (problem.code, problem.seq) == ("tree.nodes_altered", 4)
