"""Witnesses over the API as agencies run them: each fetches the checkpoint and a
consistency proof, cosigns, and hands the cosignature back; the broker serves checkpoints
with their cosignatures; `s284 audit verify` (no `--checkpoint`) reports each witness and
fails on a truncated or re-signed log; a witness refuses a rewritten log's checkpoint."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from audit import AuditStore, WitnessPolicy, WitnessRefusedError, checkpoint, verifier_key
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from broker.witness import WitnessHome, load_policy, policy_path, save_policy, witness_once
from tests.auditlog import record, untrigger
from tests.test_witness import KEY, ORIGIN, _rewrite_and_resign

NAMES = ("witness.police.test/w1", "witness.dffh.test/w1")


class Setup:
    def __init__(self, tmp_path) -> None:
        self.url = f"sqlite:///{tmp_path / 'audit.db'}"
        self.store = AuditStore.open(self.url)
        self.vkey_file = tmp_path / "audit-log.vkey"
        self.vkey_file.write_text(verifier_key(ORIGIN, KEY.public_key()) + "\n")
        self.homes = [
            WitnessHome.create(tmp_path / f"w{i}", name, self.vkey_file.read_text().strip())
            for i, name in enumerate(NAMES)
        ]
        self.policy_file = policy_path(tmp_path)
        keys = tuple(h.signer().public for h in self.homes)
        save_policy(self.policy_file, WitnessPolicy(keys, 2, 600.0))
        issuer = LocalIssuer.for_home(tmp_path / "issuer")
        issuer.ensure()
        auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
        deps = ApiDeps(audit=self.store, auth=auth, witnesses=lambda: load_policy(self.policy_file))
        token = issuer.issue(auth, "witness-police", Role.PRIVACY_OFFICER, "police", 600)
        self.http = TestClient(
            create_app({}, deps),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        )

    def grow(self, start: int, stop: int) -> None:
        self.store.append([record(i) for i in range(start, stop)])
        checkpoint(self.store, ORIGIN, KEY)

    def verify(self, cli):
        return cli(
            "audit",
            "verify",
            "--db",
            self.url,
            "--log-key",
            str(self.vkey_file),
            "--witnesses",
            str(self.policy_file),
        )


def test_witnesses_cosign_over_http_and_verify_reports_them(tmp_path, cli):
    s = Setup(tmp_path)
    s.grow(0, 5)
    assert [witness_once(h, s.http).size for h in s.homes] == [5, 5]
    s.grow(5, 12)
    outcomes = [witness_once(h, s.http) for h in s.homes]
    assert [(o.size, o.cosigned) for o in outcomes] == [(12, True), (12, True)]
    assert not witness_once(s.homes[0], s.http).cosigned  # nothing new: nothing posted twice
    cosigned = s.http.get("/api/v1/audit/checkpoint/cosigned").text
    assert cosigned.startswith(f"{ORIGIN}\n12\n")
    assert all(f"\N{EM DASH} {name} " in cosigned for name in NAMES)
    status = s.http.get("/api/v1/audit/witnesses").json()
    assert [w["size"] for w in status["witnesses"]] == [12, 12]
    assert status["overdue_size"] is None
    done = s.verify(cli)
    assert done.returncode == 0, done.stderr
    assert f"witness {NAMES[0]}: largest cosigned size 12" in done.stdout


def test_verify_fails_on_truncation_through_cosignatures(tmp_path, cli):
    s = Setup(tmp_path)
    s.grow(0, 5)
    s.grow(5, 12)
    for h in s.homes:
        witness_once(h, s.http)
    engine = untrigger(s.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq >= 8"))
        conn.execute(sa.text("DELETE FROM audit_personal WHERE seq >= 8"))
        conn.execute(sa.text("DELETE FROM audit_nodes WHERE ((idx + 1) * (1 << level)) > 8"))
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size > 8"))
    engine.dispose()
    failed = s.verify(cli)
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "log.truncated" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_resigned_rewrite_fails_verify_and_the_witness_refuses_to_go_on(tmp_path, cli):
    s = Setup(tmp_path)
    s.grow(0, 4)
    s.grow(4, 10)
    for h in s.homes:
        witness_once(h, s.http)
    engine = untrigger(s.url)
    _rewrite_and_resign(s.store, engine, 2)
    engine.dispose()
    failed = s.verify(cli)
    assert failed.returncode == 4
    assert "witness.fork" in failed.stderr
    s.grow(10, 13)
    before = s.homes[0].state()
    with pytest.raises(WitnessRefusedError, match="does not extend"):
        witness_once(s.homes[0], s.http)
    assert s.homes[0].state() == before
    s.http.close()
    s.store.close()


def test_an_unregistered_key_cannot_hand_in_a_cosignature(tmp_path):
    s = Setup(tmp_path)
    s.grow(0, 3)
    note = s.http.get("/api/v1/audit/checkpoint", headers={"Accept": "text/plain"}).text
    stranger = WitnessHome.create(
        tmp_path / "x", "witness.stranger.test/w1", s.vkey_file.read_text()
    )
    line = stranger.signer().cosign(note.split("\n\n")[0] + "\n", 1_790_000_000)
    refused = s.http.post("/api/v1/audit/cosignatures", content=note + line + "\n")
    assert refused.status_code == 422
    assert refused.json()["error"] == "audit.cosignature_refused"


def test_a_record_comes_with_its_stored_canonical_text_and_signed_at_has_its_offset(tmp_path):
    """Auditors hash what was stored: SHA-256(0x00 || canonical) is the proof's leaf hash;
    the checkpoint's `signed_at` carries its UTC offset like every other timestamp."""
    s = Setup(tmp_path)
    s.grow(0, 3)
    record_id = s.store.records()[1]["record_id"]
    body = s.http.get(f"/api/v1/audit/records/{record_id}").json()
    canonical = body["canonical"]
    assert json.loads(canonical)["record_id"] == record_id
    digest = hashlib.sha256(b"\x00" + canonical.encode()).hexdigest()
    assert digest == body["inclusion_proof"]["leaf_hash"]
    signed_at = s.http.get("/api/v1/audit/checkpoint").json()["signed_at"]
    assert signed_at.endswith(("Z", "+00:00")), signed_at


def test_the_note_a_witness_keeps_fails_verify_of_a_rewritten_log(tmp_path, cli):
    """Even with the cosignatures deleted from the database, the witness's own copy of what
    it cosigned, given to `verify --checkpoint`, exposes a re-signed rewrite."""
    s = Setup(tmp_path)
    s.grow(0, 4)
    s.grow(4, 10)
    witness_once(s.homes[0], s.http)
    engine = untrigger(s.url)
    _rewrite_and_resign(s.store, engine, 2)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_cosignatures"))
    engine.dispose()
    s.store.install_guards()  # a thorough insider puts the triggers back
    assert s.verify(cli).returncode == 0  # nothing left in the database to contradict it
    kept = s.homes[0].path / "cosigned.note"
    failed = cli(
        "audit",
        "verify",
        "--db",
        s.url,
        "--log-key",
        str(s.vkey_file),
        "--checkpoint",
        str(kept),
    )
    assert failed.returncode == 4
    assert "checkpoint.fork" in failed.stderr
