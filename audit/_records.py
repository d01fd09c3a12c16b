from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AuditRecord:
    """One disclosure (per recipient) or one refusal. Ids and codes only, never payloads.

    `dedupe_key` makes appends idempotent: a redelivered message records nothing twice.
    """

    record_id: str
    dedupe_key: str
    event: str  # "disclosed" | "refused"
    occurred_at: datetime
    ingress_agency: str
    decision: str  # "permit" | "deny"
    reason_code: str | None
    reason: str
    node: str
    message_id: str | None = None
    ingress_seq: int | None = None
    sender_agency: str | None = None
    sender_person: str | None = None
    recipient_agency: str | None = None
    offender: str | None = None
    kind: str | None = None
    purpose: str | None = None
    justification: str | None = None
    correlation_id: str | None = None
    policy_ids: tuple[str, ...] = ()
    policy_version: str | None = None
    review_required: bool = False  # risk_reduction: queued for privacy review
    payload_digest: str | None = None
    withheld: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SeenMessage:
    """An authenticated message id and the ingress stream sequence that first carried it."""

    message_id: str
    ingress_seq: int
