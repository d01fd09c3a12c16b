"""The one place that builds the broker's audit records (`audit.records.<event>(...)`).

Each function is one kind of entry in the log: its event, its decision, its reason code,
and its `dedupe_key`, the key that makes a redelivered message or a repeated action
record nothing twice. Callers say what happened in plain values; they never spell an
event, a decision or a key. Knows nothing of NATS, HTTP, policies or routing.

Over the ~400-line norm: one short function per kind of entry, kept together so that
every event the log can hold is listed in one file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from audit._records import AuditRecord, DecisionInputs, Event, rfc3339

BROKER = "broker"  # the ingress agency of events the broker itself originates

__all__ = [
    "BROKER",
    "About",
    "CspDue",
    "DecisionInputs",
    "Held",
    "Origin",
    "Ruling",
    "acknowledged",
    "alert_routed",
    "confirmation_refused",
    "csp_reminder",
    "disclosure",
    "escalated",
    "expired",
    "received",
    "refusal",
    "refusals_counted",
    "reply",
    "review",
    "routing_changed",
]


@dataclass(frozen=True)
class Origin:
    """When it happened, whose ingress (or `BROKER`) it came through, which node wrote it."""

    occurred_at: datetime
    ingress_agency: str
    node: str


@dataclass(frozen=True)
class About:
    """What an entry is about: the message and its grounds, as far as they are known.

    The personal fields (as in `AuditRecord`) stay out of its repr, so out of tracebacks.
    """

    message_id: str | None = None
    ingress_seq: int | None = None
    sender_agency: str | None = None
    sender_person: str | None = field(default=None, repr=False)
    offender: str | None = field(default=None, repr=False)
    kind: str | None = None
    purpose: str | None = None
    justification: str | None = field(default=None, repr=False)
    consent_reference: str | None = field(default=None, repr=False)
    law_reference: str | None = field(default=None, repr=False)
    restricted: bool = False
    correlation_id: str | None = None
    payload_digest: str | None = None
    # a funded service `<funder>/<slug>`, set by its key (last: callers pass the rest by position)
    sender_provider: str | None = None


@dataclass(frozen=True)
class Held:
    """Who holds a routed alert: its agency, the contact (a deputy, or `duty`), the level."""

    alert_id: str
    agency: str
    contact: str = field(repr=False)
    level: int


@dataclass(frozen=True)
class CspDue:
    """A coordinated services plan whose review reminder (`milestone`) is due."""

    offender: str = field(repr=False)
    csp_id: str
    due: date
    milestone: str


@dataclass(frozen=True)
class Ruling:
    """Why the s 284 policy decided as it did; `inputs`, what it decided on (so the decision
    can be re-run with the same bundle version)."""

    reason: str
    policy_ids: tuple[str, ...] = ()
    policy_version: str | None = None
    review_required: bool = False
    inputs: DecisionInputs | None = None


def _entry(
    record_id: str,
    origin: Origin,
    about: About,
    *,
    dedupe_key: str,
    event: Event,
    decision: str,
    reason_code: str | None,
    reason: str,
    recipient: str | None = None,
    contact: str | None = None,
    ruling: Ruling | None = None,
    withheld: tuple[str, ...] = (),
    refers_to: str | None = None,
) -> AuditRecord:
    ruling = ruling or Ruling(reason)
    return AuditRecord(
        record_id=record_id,
        dedupe_key=dedupe_key,
        event=event.value,
        occurred_at=origin.occurred_at,
        ingress_agency=origin.ingress_agency,
        decision=decision,
        reason_code=reason_code,
        reason=reason,
        node=origin.node,
        recipient_agency=recipient,
        recipient_contact=contact,
        policy_ids=ruling.policy_ids,
        policy_version=ruling.policy_version,
        review_required=ruling.review_required,
        withheld=withheld,
        refers_to=refers_to,
        inputs=ruling.inputs,
        **vars(about),  # a shallow copy: the gateway builds one per recipient
    )


# -- the gateway ----------------------------------------------------------------------


def disclosure(
    record_id: str,
    origin: Origin,
    about: About,
    recipient: str,
    ruling: Ruling,
    withheld: tuple[str, ...] = (),
    contact: str | None = None,
) -> AuditRecord:
    """One recipient's disclosure of a message (one per recipient, keyed by both)."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"disclosed:{about.message_id}:{recipient}",
        event=Event.DISCLOSED,
        decision="permit",
        reason_code=None,
        reason=ruling.reason,
        recipient=recipient,
        contact=contact,
        ruling=ruling,
        withheld=withheld,
    )


def refusal(
    record_id: str,
    origin: Origin,
    about: About,
    code: str,
    detail: str,
    *,
    attempt: str,
    policy_version: str,
    ruling: Ruling | None = None,
) -> AuditRecord:
    """A refused ingress message, keyed by `attempt` (its ingress sequence and time): its id
    may be missing, forged or a replay. `ruling`: the policy's, when the policy refused it
    (its policies and inputs); the refusal's `detail` stays the record's reason."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"refused:{attempt}",
        event=Event.REFUSED,
        decision="deny",
        reason_code=code,
        reason=detail,
        ruling=ruling or Ruling(detail, policy_version=policy_version),
    )


def refusals_counted(
    record_id: str, origin: Origin, code: str, count: int, seqs: tuple[int, int]
) -> AuditRecord:
    """`count` refusals of `origin.ingress_agency`'s frames with one reason `code`, counted
    rather than recorded one by one (a flood of identical garbage); `seqs` the first and last
    ingress sequence counted; `origin.occurred_at` the time the last was stored. The reason
    text opens with the exact count (docs/audit-format.md, "Counted refusals")."""
    first, last = seqs
    reason = f"{count} refusals counted, ingress seq {first}..{last}, each {code}"
    return _entry(
        record_id,
        origin,
        About(ingress_seq=last),
        dedupe_key=f"counted:{origin.ingress_agency}:{first}:{last}:{count}",
        event=Event.REFUSALS_COUNTED,
        decision="deny",
        reason_code=code,
        reason=reason,
    )


def counted_of(reason: str) -> int:
    """The exact count a `refusals_counted` record's reason opens with."""
    head = reason.split(" ", 1)[0]
    if not head.isdigit():
        raise ValueError(f"not a counted-refusals reason: {reason[:40]!r}")
    return int(head)


def received(
    record_id: str, origin: Origin, about: About, disclosure_id: str, recipient: str
) -> AuditRecord:
    """`recipient`'s system confirmed (signed, wire format section 3.4) that it took the
    delivery recorded as `disclosure_id`; `origin.occurred_at` is the time it claims, and
    `about.ingress_seq` the confirmation's sequence on its stream. Once per disclosure."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"received:{disclosure_id}",
        event=Event.RECEIVED,
        decision="none",
        reason_code=None,
        reason=f"{recipient} confirmed receipt",
        recipient=recipient,
        refers_to=disclosure_id,
    )


def confirmation_refused(
    record_id: str,
    origin: Origin,
    about: About,
    code: str,
    detail: str,
    *,
    attempt: str,
    disclosure_id: str | None = None,
) -> AuditRecord:
    """A confirmation of receipt the gateway refused (`code`: a `confirm.*` reason), keyed
    by `attempt` (its stream sequence); `disclosure_id` when it named a real disclosure."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"refused:confirmation:{attempt}",
        event=Event.REFUSED,
        decision="deny",
        reason_code=code,
        reason=detail,
        refers_to=disclosure_id,
    )


def alert_routed(
    record_id: str,
    disclosed: AuditRecord,
    contact: str,
    route_reason: str | None,
    *,
    duty: bool,
    area: str | None = None,
    topic: str | None = None,
) -> AuditRecord:
    """The `alert_routed` entry beside a routed alert's disclosure: who it went to, why
    there, and the area and topic it was routed on (counted by area and topic)."""
    where = "the agency's duty inbox" if duty else "the designated contact"
    return dataclasses.replace(
        disclosed,
        record_id=record_id,
        dedupe_key=f"alert_routed:{disclosed.message_id}:{disclosed.recipient_agency}:0",
        event=Event.ALERT_ROUTED.value,
        recipient_contact=contact,
        reason_code=route_reason,
        reason=f"routed to {where}",
        withheld=(),
        area=area,
        topic=topic,
    )


# -- after delivery: the contacts' actions, escalation, reminders ---------------------------


def acknowledged(record_id: str, origin: Origin, about: About, held: Held) -> AuditRecord:
    """Whoever holds the alert (contact, deputy or duty inbox) acknowledged it."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"{Event.ACKNOWLEDGED.value}:{held.alert_id}:{held.level}",
        event=Event.ACKNOWLEDGED,
        decision="none",
        reason_code=None,
        reason="acknowledged by the designated contact",
        recipient=held.agency,
        contact=held.contact,
    )


def escalated(record_id: str, origin: Origin, about: About, held: Held) -> AuditRecord:
    """Not acknowledged in time: the alert moved on to its new holder (deputy or duty)."""
    holder = "duty" if held.contact == "duty" else "deputy"
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"{Event.ALERT_ROUTED.value}:{held.alert_id}:{held.level}",
        event=Event.ALERT_ROUTED,
        decision="permit",
        reason_code=f"routing.escalated_{holder}",
        reason=f"not acknowledged in time: escalated to the {_HOLDERS[holder]}",
        recipient=held.agency,
        contact=held.contact,
    )


_HOLDERS = {"deputy": "deputy", "duty": "duty inbox"}


def reply(
    record_id: str,
    origin: Origin,
    about: About,
    recipient: str,
    ruling: Ruling,
    *,
    allowed: bool,
) -> AuditRecord:
    """A contact's reply to the managing officer, decided by the s 284 policy."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"reply:{about.message_id}:{recipient}",
        event=Event.DISCLOSED if allowed else Event.REFUSED,
        decision="permit" if allowed else "deny",
        reason_code=None if allowed else "policy.denied",
        reason=ruling.reason,
        recipient=recipient,
        ruling=ruling,
    )


def csp_reminder(record_id: str, node: str, due: CspDue, recipient: str, on: date) -> AuditRecord:
    """A CSP review reminder sent to the reviewers at `recipient` (once per plan, due date,
    milestone and agency reminded)."""
    return _entry(
        record_id,
        Origin(datetime.combine(on, datetime.min.time(), UTC), BROKER, node),
        About(offender=due.offender, kind="csp.update", purpose="csp_preparation"),
        dedupe_key=f"csp_notice:{due.csp_id}:{due.due}:{due.milestone}:{recipient}",
        event=Event.ALERT_ROUTED,
        decision="none",
        reason_code=f"csp.review_{due.milestone}",
        reason=f"CSP review due {due.due}: reminder ({due.milestone}) to the reviewers",
        recipient=recipient,
    )


# -- administration and retention -------------------------------------------------------


def routing_changed(
    record_id: str, origin: Origin, actor: str, version: int, summary: str, digest: str
) -> AuditRecord:
    """A new version of the routing table; `actor` is personal (erasable after retention)."""
    return _entry(
        record_id,
        origin,
        About(sender_person=actor, payload_digest=digest),
        dedupe_key=f"routing_changed:{version}",
        event=Event.ROUTING_CHANGED,
        decision="none",
        reason_code="routing.table_changed",
        reason=summary,
    )


def review(record_id: str, origin: Origin, about: About, target: str, outcome: str) -> AuditRecord:
    """A privacy officer's review of the disclosure `target`; a free-text note belongs in
    `about.justification` (personal: erasable, never in the canonical form)."""
    return _entry(
        record_id,
        origin,
        about,
        dedupe_key=f"reviewed:{target}:{record_id}",
        event=Event.REVIEWED,
        decision="none",
        reason_code=f"review.{outcome}",
        reason=outcome,
        refers_to=target,
    )


def expired(
    record_id: str, origin: Origin, erased: int, before: datetime, by: str = "operator"
) -> AuditRecord:
    """Personal fields of `erased` records that occurred before `before` were erased by `by`.

    The exact cut-off is in the reason (`_markers.expiry_cutoff` reads it back): `verify` accepts
    an erased personal row only where a later expiry record's cut-off covers it.
    """
    return _entry(
        record_id,
        origin,
        About(),
        dedupe_key=f"expired:{record_id}",
        event=Event.EXPIRED,
        decision="none",
        reason_code="retention.expired",
        reason=(
            f"personal fields of {erased} record(s) that occurred before "
            f"{rfc3339(before)} erased by {by}"
        ),
    )
