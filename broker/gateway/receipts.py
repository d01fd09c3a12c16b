"""Step 9's answer to the sender: the receipt, accepted with every delivery or refused
with the reason code and a sentence; and what the gateway logs about it (ids and codes)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from broker.gateway.stages import Delivery, Recorded, Refused
from broker.gateway.steps import ingress_party
from broker.nats.config import provider_receipt_subject, receipt_subject
from broker.wire.envelope import Agency, DeliveryRef, Receipt


def answer(item: Recorded | Refused) -> Receipt:
    if isinstance(item, Refused):
        return Receipt(
            message_id=item.message_ref,
            status="refused",
            reason=item.refusal.code.value,
            detail=item.refusal.detail,
            decided_at=datetime.now(UTC),
            policy_version=item.policy_version,
        )
    decided = item.routed.decided
    return Receipt(
        message_id=decided.opened.claims.id,
        status="accepted",
        deliveries=_marked(decided.envelope.recipients, item.routed.deliveries),
        decided_at=datetime.now(UTC),
        policy_version=decided.engine.version,
    )


def _marked(named: Iterable[Agency], deliveries: Iterable[Delivery]) -> list[DeliveryRef]:
    """Each delivery; a copy for an agency the sender did not name (step 5b) says pushed."""
    asked = set(named)
    return [
        d.ref if d.ref.recipient in asked else d.ref.model_copy(update={"pushed": True})
        for d in deliveries
    ]


def answered_agency(item: Recorded | Refused) -> Agency | None:
    """Whose receipt subject the answer goes to (None: the subject named no agency)."""
    return item.agency if isinstance(item, Refused) else item.routed.decided.opened.agency


def answered_subject(item: Recorded | Refused, agency: Agency, message_ref: str) -> str:
    """The receipt subject: a funded service's own when its subject carried the frame (NATS
    accounts make that subject the sender's), so its funder never reads its receipts."""
    try:
        provider = ingress_party(item.msg.subject)[1]
    except ValueError:
        provider = None
    if provider is not None:
        return provider_receipt_subject(provider, message_ref)
    return receipt_subject(agency.value, message_ref)


def outcome_fields(item: Recorded | Refused, receipt: Receipt) -> dict[str, object]:
    """The log line's fields: ids, counts and the reason code, never payloads or names."""
    fields: dict[str, object] = {"message_id": receipt.message_id, "seq": item.msg.stream_seq}
    if isinstance(item, Refused):
        fields.update(reason=receipt.reason, ingress=item.agency.value if item.agency else None)
    else:
        fields.update(deliveries=len(receipt.deliveries))
    return fields
