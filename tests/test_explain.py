"""Reproducible decisions: the log holds every input of a decision and the bundle version,
the gateway archives that bundle, and `s284 audit explain` (and the API) re-run the
decision and say whether it comes out the same. (Gateway on the in-memory twin of NATS.)"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from audit import AuditStore, records
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.http.app import ApiDeps, create_app
from broker.ids import new_id
from broker.wire.envelope import Sender
from policies import BundleArchive, EngineHolder, load_bundle
from tests.conftest import s284

JUSTIFIED = "Victim reported a credible threat to the case manager this morning"
OFFICER = Sender(agency="corrections", unit="north", person_id="staff-7", role="case_manager")


async def _history(deployment) -> dict[str, dict]:
    """A permitted disclosure, a justified risk_reduction one and a policy refusal."""
    async with await deployment.client("corrections", OFFICER) as sender:
        plain = await sender.send(
            kind="service.progress",
            purpose="offender_management",
            offender="S284-000510",
            to=["police"],
            payload={"programme": "MBCP", "sessions_attended": 3},
            order_status="supervision_order",
        )
        risky = await sender.send(
            kind="risk.alert",
            purpose="risk_reduction",
            offender="S284-000511",
            to=["police"],
            payload={"summary": "synthetic"},
            justification=JUSTIFIED,
        )
    async with await deployment.client("health") as health:
        refused = await health.send(
            kind="service.progress",
            purpose="csp_preparation",
            offender="S284-000512",
            to=["dffh"],
            payload={"attendance": "synthetic"},
        )
    assert (plain.accepted, risky.accepted, refused.accepted) == (True, True, False)
    store = AuditStore.open(deployment.settings.database_url)
    try:

        def first(receipt, event: str) -> dict:
            return next(r for r in store.records(receipt.message_id) if r["event"] == event)

        return {
            "plain": first(plain, "disclosed"),
            "risky": first(risky, "disclosed"),
            "refused": first(refused, "refused"),
        }
    finally:
        store.close()


async def test_decision_records_carry_every_input_and_the_archived_bundle_version(
    twin_deployment, twin_gateway
):
    """A privacy officer reads from the record who sent what, in which role, about an
    offender on which order, with which evidence present, and which bundle decided it;
    the record never holds the justification's words."""
    made = await _history(twin_deployment)
    plain, risky, refused = made["plain"], made["risky"], made["refused"]
    assert plain["v"] == 2
    assert plain["inputs"] == {
        "sender_agency": "corrections",
        "sender_role": "case_manager",
        "recipient_agency": "police",
        "kind": "service.progress",
        "purpose": "offender_management",
        "order_status": "supervision_order",
        "justification_length": 0,
        "has_consent_reference": False,
        "has_law_reference": False,
    }
    assert risky["inputs"]["justification_length"] == len(JUSTIFIED)
    assert JUSTIFIED not in str(risky["inputs"])
    # The refusal names the recipient refused and the policies that refused it.
    assert refused["recipient_agency"] is None
    assert refused["inputs"]["recipient_agency"] == "dffh"
    assert refused["inputs"]["sender_agency"] == "health"
    assert refused["policy_ids"] == ["csp-order-status"]
    archived = twin_deployment.home.path / "bundles" / plain["policy_version"]
    assert load_bundle(archived).version == plain["policy_version"]


async def test_explain_reruns_each_decision_and_says_it_is_the_same(twin_deployment, twin_gateway):
    """`s284 audit explain` shows the same outcome, policies and reason for a permit, a
    justified risk_reduction and a refusal; the log with version 2 records still verifies."""
    made = await _history(twin_deployment)
    home = str(twin_deployment.home.path)
    for record in made.values():
        out = s284("audit", "explain", record["record_id"], "--home", home)
        assert out.returncode == 0, out.stderr
        assert "same: the re-run gives the recorded outcome, policies and reason" in out.stdout
        assert record["policy_ids"][0] in out.stdout
        assert "Traceback" not in out.stderr
    refused = s284("audit", "explain", made["refused"]["record_id"], "--home", home)
    assert "re-run:   deny by csp-order-status" in refused.stdout
    verified = s284("audit", "verify", "--home", home)
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_explain_of_a_record_whose_bundle_is_not_archived_is_a_clear_error(
    twin_deployment, twin_gateway
):
    """If the archive lost the bundle, explain says so in one line (exit 1), never guesses."""
    made = await _history(twin_deployment)
    version = made["plain"]["policy_version"]
    shutil.rmtree(twin_deployment.home.path / "bundles" / version)
    home = str(twin_deployment.home.path)
    out = s284("audit", "explain", made["plain"]["record_id"], "--home", home)
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: policy bundle {version} is not archived")
    assert "Traceback" not in out.stderr


def _store_with(tmp_path: Path, *entries) -> AuditStore:
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    store.append(list(entries))
    return store


def _forged_permit(version: str) -> records.AuditRecord:
    """A record claiming a disclosure the bundle refuses (as if the row were rewritten
    with a valid hash, or the bundle replaced under the same name)."""
    origin = records.Origin(datetime.now(UTC), "health", "n1")
    about = records.About(new_id(), 1, "health", kind="service.progress", purpose="consent")
    inputs = records.DecisionInputs(
        "health", "system", "dffh", "service.progress", "consent", "none", 0,
        has_consent_reference=False, has_law_reference=False,
    )  # fmt: skip
    ruling = records.Ruling("looks fine", ("some-permit",), version, inputs=inputs)
    return records.disclosure(new_id(), origin, about, "dffh", ruling)


def test_explain_says_loudly_when_the_rerun_differs(tmp_path):
    """A record whose logged outcome the archived bundle does not reproduce: every
    difference is named and the command exits 4."""
    engine = load_bundle()
    BundleArchive(tmp_path / "bundles").store(engine)
    forged = _forged_permit(engine.version)
    _store_with(tmp_path, forged).close()
    out = s284(
        "audit", "explain", forged.record_id,
        "--db", f"sqlite:///{tmp_path / 'audit.db'}", "--bundles", str(tmp_path / "bundles"),
    )  # fmt: skip
    assert out.returncode == 4
    assert "DIFFERS: outcome: recorded permit, re-run deny" in out.stdout
    rerun = "re-run consent-reference, health-treatment-details"
    assert f"DIFFERS: policies: recorded some-permit, {rerun}" in out.stdout
    assert out.stderr.startswith(f"error: record {forged.record_id}: the re-run DIFFERS")


def test_a_record_without_inputs_cannot_be_explained(tmp_path):
    """An event that decided nothing (or a version 1 record) has no inputs: a clear error."""
    origin = records.Origin(datetime.now(UTC), "broker", "n1")
    expired = records.expired(new_id(), origin, 0, origin.occurred_at)
    _store_with(tmp_path, expired).close()
    out = s284(
        "audit", "explain", expired.record_id,
        "--db", f"sqlite:///{tmp_path / 'audit.db'}", "--bundles", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 1
    assert "carries no decision inputs" in out.stderr
    assert expired.record_id in out.stderr


def test_archive_refuses_an_altered_copy(tmp_path):
    """An archived bundle edited after the fact no longer hashes to its name: refused."""
    engine = load_bundle()
    archive = BundleArchive(tmp_path)
    folder = archive.store(engine)
    assert archive.store(engine) == folder  # once per version
    cedar = next(folder.glob("*.cedar"))
    cedar.write_text(cedar.read_text() + "\n// edited\n")
    with pytest.raises(Exception, match="altered"):
        archive.load(engine.version)


# -- over HTTP ---------------------------------------------------------------------------


async def test_api_explain_answers_readers_and_refuses_the_authority(tmp_path):
    """GET /api/v1/audit/records/{id}/explain: the same answer as the CLI for an auditor;
    403 for the psa role (counts only); 409 when the record's bundle is not archived."""
    engine = load_bundle()
    archive = BundleArchive(tmp_path / "bundles")
    archive.store(engine)
    forged = _forged_permit(engine.version)
    store = _store_with(tmp_path, forged)
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    auth = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    app = create_app({}, ApiDeps(audit=store, auth=auth, bundles=archive))
    path = f"/api/v1/audit/records/{forged.record_id}/explain"

    def bearer(role: Role) -> dict[str, str]:
        token = issuer.issue(auth, "someone", role, None, 600)
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get(path, headers=bearer(Role.AUDITOR))
        assert ok.status_code == 200
        body = ok.json()
        assert (body["same"], body["recorded"]["outcome"], body["rerun"]["outcome"]) == (
            False,
            "permit",
            "deny",
        )
        assert body["inputs"]["recipient_agency"] == "dffh"
        psa = await c.get(path, headers=bearer(Role.PSA))
        assert (psa.status_code, psa.json()["error"]) == (403, "auth.forbidden")
        shutil.rmtree(archive.root / engine.version)
        gone = await c.get(path, headers=bearer(Role.AUDITOR))
        assert (gone.status_code, gone.json()["error"]) == (409, "explain.bundle_missing")
    store.close()


def test_every_bundle_the_gateway_loads_or_reloads_is_archived(tmp_path):
    """The bundle at start and each bundle a reload swaps in are archived by version, so a
    decision made by either can be re-run; the rejected one is not."""
    bundle = tmp_path / "bundle"
    shutil.copytree(load_bundle().path, bundle)
    archive = BundleArchive(tmp_path / "bundles")
    holder = EngineHolder.load(bundle, archive)
    first = holder.version
    cedar = min(bundle.glob("*.cedar"))
    cedar.write_text(cedar.read_text() + "\n// reviewed, synthetic note\n")
    assert holder.reload()
    assert holder.version != first
    assert sorted(p.name for p in archive.root.iterdir()) == sorted([first, holder.version])
    assert archive.load(first).version == first


def test_the_format_doc_lists_exactly_the_members_of_inputs(tmp_path):
    """docs/audit-format.md 1.1.1 documents every member of `inputs` a record carries."""
    doc = (Path(__file__).parent.parent / "docs" / "audit-format.md").read_text()
    section = doc.split("#### 1.1.1", 1)[1].split("\n#", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    forged = _forged_permit("v1")
    store = _store_with(tmp_path, forged)
    try:
        [row] = store.records(forged.message_id)
    finally:
        store.close()
    assert row["v"] == 2
    assert documented == set(row["inputs"])
