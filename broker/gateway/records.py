"""What the gateway writes to the disclosure log, through `audit.records`: a disclosure per
recipient (and an `alert_routed` entry beside each routed alert), or one refusal.

A refusal records what was known when the message was refused: the subject's agency from
step 1, the authenticated id from step 2, the envelope's facts only once step 4 opened it.
A dead letter records no envelope facts: the step that failed may have failed on them.
"""

from __future__ import annotations

from audit import AuditRecord, SeenMessage, records
from broker.errors import ReasonCode, Refusal
from broker.gateway import steps
from broker.gateway.routing import topic_of
from broker.gateway.stages import (
    Arrived,
    Authenticated,
    DeadLettered,
    Decided,
    Delivery,
    Framed,
    Fresh,
    Minimised,
    Opened,
    Refused,
    Routed,
    Sealed,
    Stage,
    attempt_key,
    claimed_ref,
    payload_digest,
)
from broker.ids import new_id
from broker.nats.client import Inbound
from broker.wire.envelope import Agency, Envelope, IngressClaims
from policies import PolicyRequest

# Refusals about the id itself, or before it can be trusted, do not mark the id as used.
_NOT_SEEN = frozenset({ReasonCode.REPLAY_DUPLICATE_ID, ReasonCode.REPLAY_OUTSIDE_WINDOW})


def decision_inputs(request: PolicyRequest) -> records.DecisionInputs:
    """What the policy read of `request`: every field, the evidence as length and presence
    only (the same reading as the engine's Cedar context), never its words."""
    return records.DecisionInputs(
        sender_agency=request.sender_agency,
        sender_role=request.sender_role,
        recipient_agency=request.recipient_agency,
        kind=request.kind,
        purpose=request.purpose,
        order_status=request.order_status,
        justification_length=_length(request.justification),
        has_consent_reference=_length(request.consent_reference) > 0,
        has_law_reference=_length(request.law_reference) > 0,
    )


def _length(text: str | None) -> int:
    return len(text.strip()) if text else 0


def disclosures(item: Routed, node: str) -> list[AuditRecord]:
    """One disclosure per recipient, in order; then one `alert_routed` per routed alert."""
    opened, version = item.decided.opened, item.decided.engine.version
    origin = records.Origin(opened.msg.stored_at, opened.agency.value, node)
    about = _about(opened.msg, opened.claims, opened.content.envelope)
    env = opened.content.envelope
    made = [_disclosure(d, origin, about, version, env) for d in item.deliveries]
    routed = [
        records.alert_routed(
            new_id(),
            disclosed,
            d.route.contact_id,
            d.route.reason,
            duty=d.route.duty,
            area=d.route.area,
            topic=topic_of(env).value,
        )
        for d, disclosed in zip(item.deliveries, made, strict=True)
        if d.route is not None
    ]
    return made + routed


def _disclosure(
    delivery: Delivery, origin: records.Origin, about: records.About, version: str, env: Envelope
) -> AuditRecord:
    share, route = delivery.share, delivery.route
    ruling = records.Ruling(
        share.decision.reason,
        tuple(share.decision.policy_ids),
        version,
        review_required=bool(share.decision.review_required),
        inputs=decision_inputs(steps.policy_request(env, share.recipient)),
    )
    contact = route.contact_id if route is not None else None
    recipient = share.recipient.value
    return records.disclosure(new_id(), origin, about, recipient, ruling, share.withheld, contact)


def refused(
    item: Stage, refusal: Refusal, node: str, policy_version: str, *, dead_letter: bool = False
) -> Refused:
    """The outcome of a refusal at `item`'s stage, with its record built from what is known."""
    agency, claims, env, known_version = _known(item)
    msg, version = item.msg, known_version or policy_version
    about = _about(msg, claims, None if dead_letter else env)
    origin = records.Origin(msg.stored_at, agency.value if agency else "unknown", node)
    code, detail, attempt = refusal.code.value, refusal.detail, attempt_key(msg)
    ruling = _denied_ruling(refusal, detail)
    if ruling is not None:
        version = ruling.policy_version or version
    record = records.refusal(
        new_id(),
        origin,
        about,
        code,
        detail,
        attempt=attempt,
        policy_version=version,
        ruling=ruling,
    )
    outcome = DeadLettered if dead_letter else Refused
    if claims is None:
        return outcome(msg, agency, claimed_ref(msg), refusal, record, None, version)
    seen = SeenMessage(claims.id, msg.stream_seq) if refusal.code not in _NOT_SEEN else None
    return outcome(msg, agency, claims.id, refusal, record, seen, version)


def _denied_ruling(refusal: Refusal, detail: str) -> records.Ruling | None:
    """The policy's ruling behind a policy refusal (step 5), with its inputs; else None."""
    if not isinstance(refusal, steps.Denied):
        return None
    return records.Ruling(
        detail,
        tuple(refusal.decision.policy_ids),
        refusal.version,
        inputs=decision_inputs(refusal.request),
    )


def _known(item: Stage) -> tuple[Agency | None, IngressClaims | None, Envelope | None, str | None]:
    """(agency, claims, envelope, policy version): as far as `item`'s stage knows them."""
    match item:
        case Arrived():
            return _subject_agency(item.msg), None, None, None
        case Framed():
            return item.frame.agency, None, None, None
        case Authenticated() | Fresh():
            return item.agency, item.claims, None, None
        case Opened():
            return item.agency, item.claims, item.content.envelope, None
        case Decided():
            opened = item.opened
            return opened.agency, opened.claims, opened.content.envelope, item.engine.version
        case Minimised() | Sealed() | Routed():
            return _known(item.decided)


def _subject_agency(msg: Inbound) -> Agency | None:
    try:
        return steps.ingress_agency(msg.subject)
    except ValueError:
        return None


def _subject_provider(msg: Inbound) -> str | None:
    """The funded service whose subject carried the frame (its NATS account is the only one
    that can publish there), recorded as the sender beside its funder."""
    try:
        provider = steps.ingress_party(msg.subject)[1]
    except ValueError:
        return None
    return provider.identity if provider else None


def _about(msg: Inbound, claims: IngressClaims | None, env: Envelope | None) -> records.About:
    provider = _subject_provider(msg)
    if claims is None:
        return records.About(ingress_seq=msg.stream_seq, sender_provider=provider)
    if env is None:
        return records.About(
            claims.id,
            msg.stream_seq,
            sender_provider=provider,
            payload_digest=payload_digest(claims),
        )
    return records.About(
        message_id=claims.id,
        ingress_seq=msg.stream_seq,
        sender_agency=env.sender.agency.value,
        sender_provider=provider,
        sender_person=env.sender.person_id,
        offender=env.offender,
        kind=env.kind.value,
        purpose=env.purpose.value,
        justification=env.justification,
        consent_reference=env.consent_reference,
        law_reference=env.law_reference,
        restricted=bool(env.restricted),
        correlation_id=env.correlation_id,
        payload_digest=payload_digest(claims),
    )
