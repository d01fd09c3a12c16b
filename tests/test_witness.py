"""Witnessed checkpoints (C2SP tlog-cosignature / tlog-witness): a witness cosigns only a
checkpoint that extends the one it cosigned before, and `verify_log` holds the log to every
cosigned checkpoint, so truncating the log, or rewriting it and re-signing every checkpoint
with the log's own key, fails verification with no `--checkpoint` held by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import (
    AddCheckpoint,
    AuditStore,
    Checkpoint,
    CosignatureRefusedError,
    WitnessConflictError,
    WitnessKey,
    WitnessPolicy,
    WitnessRefusedError,
    WitnessSigner,
    WitnessState,
    add_checkpoint,
    add_cosignature,
    checkpoint,
    leaf_hash,
    parse_verifier_key,
    quorum_overdue,
    verifier_key,
    verify_log,
    witness_status,
)
from audit._cosign import signed_message
from audit._merkle import completed_nodes
from audit._note import sign_checkpoint
from tests.auditlog import record, untrigger

ORIGIN = "s284-broker.test/audit/log"
KEY = Ed25519PrivateKey.generate()
LOG = parse_verifier_key(verifier_key(ORIGIN, KEY.public_key()))
NOW = 1_790_000_000


class Witness:
    """An agency's witness: its own key and state, as `s284 witness` keeps them."""

    def __init__(self, name: str) -> None:
        self.signer = WitnessSigner.generate(name)
        self.state = WitnessState()

    def cosign(self, store: AuditStore, policy: WitnessPolicy, at: int = NOW) -> int:
        latest = store.latest_checkpoint()
        assert latest is not None
        proof = store.consistency_proof(self.state.size, latest.size) if self.state.size else []
        request = AddCheckpoint(self.state.size, proof, latest.note)
        self.state, line = add_checkpoint(self.state, LOG, request, self.signer, at)
        body = Checkpoint(ORIGIN, latest.size, latest.root).body()
        add_cosignature(store, policy, ORIGIN, body, line)
        return latest.size


@pytest.fixture
def witnessed(store_url):
    """Ten records, checkpoints at 4 and 10, both cosigned by two of three witnesses."""
    store = AuditStore.open(store_url)
    witnesses = [Witness(f"witness.{a}.test/w1") for a in ("police", "dffh", "health")]
    policy = WitnessPolicy(tuple(w.signer.public for w in witnesses), 2, 600.0)
    store.append([record(i) for i in range(4)])
    checkpoint(store, ORIGIN, KEY)
    for w in witnesses[:2]:
        w.cosign(store, policy)
    store.append([record(i) for i in range(4, 10)])
    checkpoint(store, ORIGIN, KEY)
    for w in witnesses[:2]:
        w.cosign(store, policy)
    engine = untrigger(store_url)
    yield store, engine, policy, witnesses
    engine.dispose()
    store.close()


def test_cosignature_line_follows_tlog_cosignature():
    """The line is `— name base64(keyid || u64 time || sig)` over `cosignature/v1\\ntime t\\n`
    plus the checkpoint body, key id from type byte 0x04; a vkey round-trips."""
    w = WitnessSigner.generate("witness.example.test/w1")
    body = Checkpoint(ORIGIN, 7, bytes(32)).body()
    line = w.cosign(body, 1679315147)
    assert line.startswith("\N{EM DASH} witness.example.test/w1 ")
    key = WitnessKey.parse(w.public.vkey)
    assert key.verify(body, line) == 1679315147
    assert signed_message(body, 5).startswith(b"cosignature/v1\ntime 5\n" + ORIGIN.encode())
    other = WitnessSigner.generate("witness.example.test/w1")
    with pytest.raises(Exception, match="invalid cosignature"):
        WitnessKey.parse(w.public.vkey).verify(body.replace("7", "8"), line)
    assert other.public.verify(body, line) is None  # another key's line is not ours


def test_an_untouched_witnessed_log_verifies_and_reports_each_witness(witnessed):
    store, _, policy, _ = witnessed
    store.install_guards()  # the fixture dropped them: verify would report that
    report = verify_log(store, LOG, witnesses=policy)
    assert report.ok, report.problem
    assert report.witnessed == {
        "witness.police.test/w1": 10,
        "witness.dffh.test/w1": 10,
        "witness.health.test/w1": 0,
    }


def test_truncation_is_caught_through_cosignatures(witnessed):
    """Dropping the newest records and the checkpoints covering them passes a plain verify,
    but not one that reads the witnesses' cosignatures."""
    store, engine, policy, _ = witnessed
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq >= 6"))
        conn.execute(sa.text("DELETE FROM audit_personal WHERE seq >= 6"))
        conn.execute(sa.text("DELETE FROM audit_nodes WHERE ((idx + 1) * (1 << level)) > 6"))
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size > 6"))
    store.install_guards()  # a thorough insider puts the triggers back
    assert verify_log(store, LOG).ok  # what an insider could do before witnesses
    problem = verify_log(store, LOG, witnesses=policy).problem
    assert problem is not None
    assert problem.code == "log.truncated", problem


def _rewrite_and_resign(store: AuditStore, engine: sa.Engine, seq: int) -> None:
    """An insider with the database and the log key: alter a record, rebuild the tree,
    re-sign every checkpoint."""
    sizes = [c.size for c in store.checkpoints()]
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT seq, canonical FROM audit_log ORDER BY seq")).all()
        leaves = []
        for row_seq, text in rows:
            if row_seq == seq:
                text = text.replace("offender_management", "consent")  # noqa: PLW2901
                conn.execute(
                    sa.text(
                        "UPDATE audit_log SET canonical=:c, leaf_hash=:h, purpose='consent' "
                        "WHERE seq=:s"
                    ),
                    {"c": text, "h": leaf_hash(text.encode()), "s": row_seq},
                )
            leaves.append(leaf_hash(text.encode()))
        conn.execute(sa.text("DELETE FROM audit_nodes"))
        nodes = completed_nodes(0, leaves, [])
        conn.execute(
            sa.text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
            [{"l": lv, "i": ix, "h": h} for lv, ix, h in nodes],
        )
        conn.execute(sa.text("DELETE FROM audit_checkpoints"))
    for size in sizes:
        _, root = store.root(size)
        note = sign_checkpoint(Checkpoint(ORIGIN, size, root), KEY)
        store.add_checkpoint(size, root, note)


def test_rewriting_and_resigning_with_the_log_key_is_caught(witnessed):
    store, engine, policy, _ = witnessed
    _rewrite_and_resign(store, engine, 2)
    store.install_guards()  # a thorough insider puts the triggers back
    assert verify_log(store, LOG).ok  # the log key alone vouches for the rewrite
    problem = verify_log(store, LOG, witnesses=policy).problem
    assert problem is not None
    assert problem.code == "witness.fork", problem
    assert "rewritten" in problem.detail


def test_a_witness_refuses_an_inconsistent_checkpoint(witnessed):
    """After a rewrite, the next checkpoint cannot be proved to extend what the witness
    cosigned; the witness refuses and keeps its state."""
    store, engine, policy, witnesses = witnessed
    _rewrite_and_resign(store, engine, 2)
    store.append([record(i) for i in range(10, 12)])
    checkpoint(store, ORIGIN, KEY)
    police = witnesses[0]
    before = police.state
    with pytest.raises(WitnessRefusedError, match="does not extend"):
        police.cosign(store, policy)
    assert police.state == before


def test_a_witness_refuses_a_smaller_checkpoint_and_a_stale_old_size(witnessed):
    store, _, _, witnesses = witnessed
    police = witnesses[0]
    four = store.checkpoints()[0].note
    with pytest.raises(WitnessRefusedError, match="truncated"):
        add_checkpoint(police.state, LOG, AddCheckpoint(10, [], four), police.signer, NOW)
    with pytest.raises(WitnessConflictError) as conflict:
        add_checkpoint(police.state, LOG, AddCheckpoint(4, [], four), police.signer, NOW)
    assert conflict.value.known == 10


def test_add_checkpoint_request_round_trips():
    request = AddCheckpoint(4, [bytes(32), b"\x01" * 32], "note text\n\n\N{EM DASH} x y\n")
    assert AddCheckpoint.parse(request.encode()) == request


def test_the_broker_stores_only_registered_witnesses_cosignatures_of_its_checkpoints(witnessed):
    store, _, policy, _ = witnessed
    stranger = WitnessSigner.generate("witness.stranger.test/w1")
    latest = store.latest_checkpoint()
    body = Checkpoint(ORIGIN, latest.size, latest.root).body()
    with pytest.raises(CosignatureRefusedError, match="not a registered witness"):
        add_cosignature(store, policy, ORIGIN, body, stranger.cosign(body, NOW))
    police = WitnessSigner.generate("witness.police.test/w1")  # right name, wrong key
    with pytest.raises(CosignatureRefusedError):
        add_cosignature(store, policy, ORIGIN, body, police.cosign(body, NOW))


def test_quorum_alert_when_checkpoints_wait_too_long(witnessed):
    """Two of three cosigned size 10; a new checkpoint nobody cosigns is overdue after
    `within_s`, and the age per witness is what /metrics exports."""
    store, _, policy, witnesses = witnessed
    now = datetime.now(UTC)
    assert quorum_overdue(store, policy, now) is None
    store.append([record(i) for i in range(10, 12)])
    checkpoint(store, ORIGIN, KEY)
    assert quorum_overdue(store, policy, now) is None  # not yet late
    late = quorum_overdue(store, policy, now + timedelta(seconds=601))
    assert late is not None
    assert (late.size, late.cosigned_by, late.quorum) == (12, 0, 2)
    witnesses[0].cosign(store, policy, int(now.timestamp()))
    witnesses[1].cosign(store, policy, int(now.timestamp()))
    assert quorum_overdue(store, policy, now + timedelta(seconds=601)) is None
    status = {s.witness: s for s in witness_status(store, policy, now + timedelta(seconds=30))}
    assert status["witness.police.test/w1"].size == 12
    assert status["witness.police.test/w1"].age_s == pytest.approx(30, abs=1.5)
    assert status["witness.health.test/w1"].age_s is None
    from broker.witness import cosigned_ages  # what /metrics reads

    ages = cosigned_ages(store, policy)
    assert ages["witness.health.test/w1"] is None
    assert ages["witness.police.test/w1"] is not None


def test_quorum_missed_is_logged_once_for_operators(witnessed, tmp_path):
    """The gateway's watcher logs `witness_quorum_missed` once per late checkpoint."""
    from structlog.testing import capture_logs

    from broker.witness import check_quorum, policy_path, save_policy

    store, _, policy, _ = witnessed
    save_policy(policy_path(tmp_path), WitnessPolicy(policy.witnesses, 2, 0.0))
    store.append([record(i) for i in range(10, 12)])
    checkpoint(store, ORIGIN, KEY)
    alerted: set[int] = set()
    with capture_logs() as logs:
        check_quorum(store, policy_path(tmp_path), alerted)
        check_quorum(store, policy_path(tmp_path), alerted)
    missed = [e for e in logs if e["event"] == "witness_quorum_missed"]
    assert len(missed) == 1
    assert (missed[0]["size"], missed[0]["cosigned_by"], missed[0]["quorum"]) == (12, 0, 2)
