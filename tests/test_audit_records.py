"""`audit.records`: the one place the broker's log entries are built. What a privacy officer
sees (event, decision, reason code) and what keeps the log free of duplicates (the
dedupe key) are fixed there, whoever records the entry."""

from __future__ import annotations

from datetime import UTC, date, datetime

from audit import AuditStore, Event, records
from broker.ids import new_id

WHEN = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
ORIGIN = records.Origin(WHEN, "corrections", "test-node")
ABOUT = records.About(
    message_id="01JBXR3T2E5EED00A10012345P",
    ingress_seq=7,
    sender_agency="corrections",
    sender_person="staff-0042",
    offender="S284-000123",
    kind="risk.alert",
    purpose="risk_reduction",
    justification="synthetic grounds",
    payload_digest="ab" * 32,
)
RULING = records.Ruling(
    "permitted for risk_reduction", ("permit-risk",), "v1", review_required=True
)


def test_a_redelivered_disclosure_is_recorded_once(tmp_path):
    """The same message to the same recipient, built twice (a redelivery), is one entry;
    another recipient is another entry."""
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    first = records.disclosure(new_id(), ORIGIN, ABOUT, "police", RULING)
    again = records.disclosure(new_id(), ORIGIN, ABOUT, "police", RULING)
    other = records.disclosure(new_id(), ORIGIN, ABOUT, "health", RULING, ("clinical_notes",))
    assert store.append([first, other]).added == 2
    assert store.append([again]).added == 0
    [police, health] = store.records()
    assert (police["event"], police["decision"], police["reason_code"]) == (
        "disclosed",
        "permit",
        None,
    )
    assert (police["review_required"], police["policy_ids"]) == (True, ["permit-risk"])
    assert (health["recipient_agency"], health["withheld"]) == ("health", ["clinical_notes"])
    assert police["justification"] == "synthetic grounds"


def test_a_refusal_is_keyed_by_its_ingress_attempt_not_by_its_claimed_id():
    """Two frames claiming one id are two refusals (the id may be a forgery or a replay)."""
    first = records.refusal(
        new_id(), ORIGIN, ABOUT, "replay.duplicate_id", "seen", attempt="7:1.0", policy_version="v1"
    )
    second = records.refusal(
        new_id(), ORIGIN, ABOUT, "replay.duplicate_id", "seen", attempt="8:2.0", policy_version="v1"
    )
    assert first.dedupe_key != second.dedupe_key
    assert (first.event, first.decision, first.reason_code) == (
        "refused",
        "deny",
        "replay.duplicate_id",
    )
    assert (first.reason, first.policy_version, first.policy_ids) == ("seen", "v1", ())


def test_a_routed_alert_entry_keeps_the_disclosures_grounds_and_names_the_contact():
    """Beside the disclosure: event alert_routed, the contact, the routing reason code."""
    disclosed = records.disclosure(new_id(), ORIGIN, ABOUT, "police", RULING, ("notes",), "duty")
    routed = records.alert_routed(new_id(), disclosed, "duty", "routing.no_area", duty=True)
    assert (routed.event, routed.recipient_contact, routed.reason_code) == (
        "alert_routed",
        "duty",
        "routing.no_area",
    )
    assert routed.reason == "routed to the agency's duty inbox"
    assert (routed.purpose, routed.policy_ids, routed.withheld) == (
        "risk_reduction",
        ("permit-risk",),
        (),
    )
    assert routed.record_id != disclosed.record_id
    assert routed.dedupe_key != disclosed.dedupe_key


def test_escalation_and_acknowledgement_entries_say_who_holds_the_alert():
    """An escalation to the duty inbox and an acknowledgement at each level are distinct entries."""
    to_duty = records.Held("alert-1", "police", "duty", 2)
    escalated = records.escalated(new_id(), ORIGIN, ABOUT, to_duty)
    assert (escalated.event, escalated.decision, escalated.reason_code) == (
        Event.ALERT_ROUTED.value,
        "permit",
        "routing.escalated_duty",
    )
    assert escalated.reason == "not acknowledged in time: escalated to the duty inbox"
    deputy = records.escalated(
        new_id(), ORIGIN, ABOUT, records.Held("alert-1", "police", "pol-2", 1)
    )
    assert deputy.reason_code == "routing.escalated_deputy"
    acked = records.acknowledged(new_id(), ORIGIN, ABOUT, to_duty)
    assert (acked.event, acked.decision, acked.recipient_contact) == (
        "acknowledged",
        "none",
        "duty",
    )
    assert len({escalated.dedupe_key, deputy.dedupe_key, acked.dedupe_key}) == 3


def test_a_refused_reply_is_a_policy_denial():
    """The contact's reply refused by the s 284 policy is recorded as policy.denied."""
    denied = records.reply(
        new_id(), ORIGIN, ABOUT, "corrections", records.Ruling("no"), allowed=False
    )
    allowed = records.reply(
        new_id(), ORIGIN, ABOUT, "corrections", records.Ruling("ok"), allowed=True
    )
    assert (denied.event, denied.decision, denied.reason_code) == (
        "refused",
        "deny",
        "policy.denied",
    )
    assert (allowed.event, allowed.decision, allowed.reason_code) == ("disclosed", "permit", None)
    assert denied.dedupe_key == allowed.dedupe_key  # one answer per reply, whichever it was


def test_broker_events_are_recorded_as_the_broker():
    """Reminders, routing-table changes and erasures come from `broker`, decide nothing, and
    keep the people involved in the erasable personal fields only."""
    due = records.CspDue("S284-000123", "csp-1", date(2026, 9, 1), "14d")
    reminder = records.csp_reminder(new_id(), "n1", due, "corrections", date(2026, 8, 18))
    changed = records.routing_changed(new_id(), ORIGIN, "ops-0001", 3, "v2 -> v3", "cd" * 32)
    erased = records.expired(new_id(), ORIGIN, 12, WHEN)
    assert reminder.ingress_agency == "broker"
    assert reminder.occurred_at == datetime(2026, 8, 18, tzinfo=UTC)
    assert [r.decision for r in (reminder, changed, erased)] == ["none"] * 3
    assert changed.personal()["sender_person"] == "ops-0001"
    assert erased.dedupe_key == f"expired:{erased.record_id}"
    assert "12 record(s)" in erased.reason


def test_each_review_of_a_disclosure_is_its_own_entry():
    """Two reviews of one disclosure are two entries, each pointing at the disclosure."""
    target = records.disclosure(new_id(), ORIGIN, ABOUT, "police", RULING)
    first = records.review(new_id(), ORIGIN, ABOUT, target.record_id, "appropriate")
    second = records.review(new_id(), ORIGIN, ABOUT, target.record_id, "appropriate")
    assert (first.event, first.reason_code, first.refers_to) == (
        "reviewed",
        "review.appropriate",
        target.record_id,
    )
    assert first.dedupe_key != second.dedupe_key


def test_the_facts_of_an_entry_never_print_a_person_or_an_offender():
    """A traceback or log line that shows what an entry is about names no one."""
    shown = repr(ABOUT) + repr(records.Held("alert-1", "police", "pol-nwm-017", 0))
    for personal in ("staff-0042", "S284-000123", "synthetic grounds", "pol-nwm-017"):
        assert personal not in shown
    assert ABOUT.message_id in shown
