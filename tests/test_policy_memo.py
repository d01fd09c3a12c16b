"""Decisions are remembered per (bundle, full request) to save a Cedar call per recipient:
what a sender is told, and what the log records, must be exactly what Cedar decides, and
a reloaded bundle must decide afresh."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from policies import EngineHolder, PolicyRequest, load_bundle
from policies._check import TABLES, _rows
from policies._entities import UNLISTED
from policies._memo import DecisionMemo

SHIPPED = load_bundle().path
EVIDENCE = (None, "", "   ", "short", "x" * 29, "x" * 30, "A synthetic reason " * 4)


@pytest.fixture
def engine():
    return load_bundle()  # a fresh engine: an empty memo


def table_requests(engine) -> list[PolicyRequest]:
    return [
        engine.parse_request(row.request)
        for path in sorted((engine.path / TABLES).glob("*.yaml"))
        for row in _rows(engine, path)
    ]


def random_requests(engine, count: int, seed: int) -> list[PolicyRequest]:
    v, rng = engine.vocabulary, random.Random(seed)  # noqa: S311 - seeded synthetic requests
    roles = [*v.roles, UNLISTED, "not_a_role"]
    return [
        PolicyRequest(
            sender_agency=rng.choice(v.agencies),
            sender_role=rng.choice(roles),
            recipient_agency=rng.choice(v.agencies),
            kind=rng.choice(v.kinds),
            purpose=rng.choice(v.purposes),
            order_status=rng.choice(v.order_statuses),
            justification=rng.choice(EVIDENCE),
            consent_reference=rng.choice((None, "", "CONSENT-SYNTH-1")),
            law_reference=rng.choice((None, "", "Synthetic Act s 1")),
        )
        for _ in range(count)
    ]


def test_every_table_row_gets_cedars_own_decision_first_time_and_remembered(engine):
    """For every row of the shipped decision tables, the decision the gateway gets (the
    first time, and again from the memo) equals the one Cedar makes afresh."""
    requests = table_requests(engine)
    assert len(requests) > 20
    for req in requests:
        fresh = engine.decide_uncached(req)
        assert engine.decide(req) == fresh, req
        assert engine.decide(req) == fresh, req  # now from the memo


def test_random_requests_get_cedars_own_decision(engine):
    """Random requests over the whole vocabulary (unlisted roles, evidence of every length,
    repeats in another order) decide exactly as Cedar does, remembered or not."""
    requests = random_requests(engine, 600, seed=284)
    outcomes = {engine.decide(r).outcome for r in requests}
    assert {"permit", "deny"} <= outcomes  # the sample reaches both sides
    random.Random(1).shuffle(requests)  # noqa: S311 - a reproducible order
    for req in requests:
        assert engine.decide(req) == engine.decide_uncached(req), req


def test_requests_differing_only_in_evidence_are_decided_apart(engine):
    """The key is the whole request: a risk_reduction disclosure with a long enough
    justification is permitted, the same with a short one is not, in either order."""
    base = {
        "sender_agency": "corrections",
        "sender_role": "case_manager",
        "recipient_agency": "police",
        "kind": "risk.update",
        "purpose": "risk_reduction",
        "order_status": "supervision_order",
    }
    long = PolicyRequest(**base, justification="A synthetic reason that is long enough here")
    short = PolicyRequest(**base, justification="short")
    for _ in range(2):
        assert engine.decide(long).allowed
        assert not engine.decide(short).allowed


def test_an_engine_error_is_not_remembered(engine, monkeypatch):
    """A failing Cedar call refuses that request (fail closed) but the next one asks again."""
    req = random_requests(engine, 1, seed=7)[0]

    def broken(*_args, **_kwargs):
        raise RuntimeError("synthetic failure")

    with monkeypatch.context() as patch:
        patch.setattr("policies._engine.cedarpy.is_authorized", broken)
        assert engine.decide(req).error
    assert not engine.decide(req).error
    assert engine.decide(req) == engine.decide_uncached(req)


def test_a_reload_decides_afresh(tmp_path: Path):
    """A decision remembered under the old bundle is not served after a reload that
    changes it: the new bundle's engine starts with an empty memo."""
    bundle = tmp_path / "bundle"
    shutil.copytree(SHIPPED, bundle)
    holder = EngineHolder.load(bundle)
    cp = PolicyRequest(
        "dffh",
        "child_protection_practitioner",
        "police",
        "risk.update",
        "offender_management",
        "supervision_order",
    )
    assert not holder.decide(cp).allowed
    assert not holder.decide(cp).allowed  # remembered
    _edit(
        bundle / "relevant_persons.yaml",
        "consent, risk_reduction]\n\n  police_officer:",
        "consent, risk_reduction,\n      offender_management]\n\n  police_officer:",
    )
    _edit(
        bundle / "tests" / "relevant_person.yaml",
        "  - name: a child protection practitioner has no offender_management function\n"
        "    request: {sender_agency: dffh, sender_role: child_protection_practitioner}\n"
        "    expect: deny\n    policy: relevant-person",
        "  - name: a child protection practitioner now manages offenders\n"
        "    request: {sender_agency: dffh, sender_role: child_protection_practitioner}\n"
        "    expect: permit\n    policy: permit-offender-management",
    )
    assert holder.reload() is True
    assert holder.decide(cp).allowed
    assert holder.current.decide(cp) == holder.current.decide_uncached(cp)


def test_the_memo_is_bounded(engine):
    """More distinct requests than the memo holds: it keeps its size, decisions stay right."""
    memo = DecisionMemo(size=50)
    requests = random_requests(engine, 200, seed=3)
    for req in requests:
        memo.put(req, engine.decide_uncached(req))
    assert len(memo) <= 50
    last = requests[-1]
    assert memo.get(last) == engine.decide_uncached(last)


def test_minimised_payload_is_a_copy_with_only_the_allowed_fields(engine):
    """Police receive attendance, not treatment notes, as a copy: changing what was
    delivered never changes the sender's payload (nor the next recipient's)."""
    payload = {
        "programme": "SYNTH-MBCP",
        "sessions_attended": [1, 2, {"week": 3}],
        "case_notes": "synthetic clinical text",
    }
    req = PolicyRequest("dffh", "service_provider", "police", "service.progress", "reports")
    for _ in range(2):  # the second time from the per-(recipient, kind, purpose) table
        delivered, withheld = engine.minimise(payload, req)
        assert delivered == {"programme": "SYNTH-MBCP", "sessions_attended": [1, 2, {"week": 3}]}
        assert withheld == ["case_notes"]
        delivered["sessions_attended"][2]["week"] = 99
        assert payload["sessions_attended"][2] == {"week": 3}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
