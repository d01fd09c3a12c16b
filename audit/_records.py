"""The disclosure record and its canonical form (docs/audit-format.md).

A record is hashed into the Merkle tree as its canonical JSON. Personal fields (who the
offender is, which person disclosed or received, free-text justifications) are not in
the canonical form itself: it carries `personal`, a salted SHA-256 commitment to them,
so that after the retention period the fields and their salt can be erased while every
leaf hash, and so every proof, stays valid.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

FORMAT_VERSION = 1
INPUTS_VERSION = 2  # a record that carries `inputs` (docs/audit-format.md 1.1)
SALT_BYTES = 32


class Event(StrEnum):
    """What happened. Stable strings: privacy officers filter on them."""

    DISCLOSED = "disclosed"
    REFUSED = "refused"
    REFUSALS_COUNTED = "refusals_counted"  # identical refusals, counted in one record
    RECEIVED = "received"
    ALERT_ROUTED = "alert_routed"
    ACKNOWLEDGED = "acknowledged"
    REVIEWED = "reviewed"
    EXPIRED = "expired"
    ROUTING_CHANGED = "routing_changed"
    ACCESS_SEALED = "access_sealed"


# The s 284 ground each purpose code stands for (Serious Offenders Act 2018 (Vic)).
GROUNDS: dict[str, str] = {
    "reports": "s 284(a): reports, plans and documents the Act requires",
    "order_application": "s 284(b): making or responding to an application for an order",
    "csp_preparation": "s 284(c): preparing or reviewing a coordinated services plan",
    "csp_service_delivery": "s 284(d): delivering services consistent with a CSP",
    "offender_management": "s 284(e): managing an offender",
    "authorised_by_law": "s 284(f): use or disclosure authorised or required by law",
    "consent": "s 284(g): the person has consented",
    "risk_reduction": "s 284(h): necessary to reduce a risk of offence or threat",
}

PERSONAL_FIELDS = (
    "offender",
    "sender_person",
    "recipient_contact",
    "justification",
    "consent_reference",
    "law_reference",
)


@dataclass(frozen=True)
class DecisionInputs:
    """Every input of one s 284 decision, so that it can be re-run (`s284 audit explain`).

    The policy request as the engine saw it, minus the free text: the evidence is kept as
    what the policies read of it (the justification's length, whether a consent or law
    reference was given), never as its words, which are personal and erasable.
    """

    sender_agency: str
    sender_role: str
    recipient_agency: str
    kind: str
    purpose: str
    order_status: str
    justification_length: int
    has_consent_reference: bool
    has_law_reference: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "sender_agency": self.sender_agency,
            "sender_role": self.sender_role,
            "recipient_agency": self.recipient_agency,
            "kind": self.kind,
            "purpose": self.purpose,
            "order_status": self.order_status,
            "justification_length": self.justification_length,
            "has_consent_reference": self.has_consent_reference,
            "has_law_reference": self.has_law_reference,
        }


@dataclass(frozen=True)
class AuditRecord:
    """One disclosure (per recipient), refusal, or other event. Never a payload.

    `dedupe_key` makes appends idempotent: a redelivered message records nothing twice.
    """

    record_id: str
    dedupe_key: str
    event: str
    occurred_at: datetime
    ingress_agency: str
    decision: str  # "permit" | "deny" | "none" (events that decide nothing)
    reason_code: str | None
    reason: str
    node: str
    message_id: str | None = None
    ingress_seq: int | None = None
    sender_agency: str | None = None
    sender_provider: str | None = None  # a funded service's identity: only when one sent it
    sender_person: str | None = None
    recipient_agency: str | None = None
    recipient_contact: str | None = None
    offender: str | None = None
    kind: str | None = None
    purpose: str | None = None
    justification: str | None = None
    consent_reference: str | None = None
    law_reference: str | None = None
    correlation_id: str | None = None
    policy_ids: tuple[str, ...] = ()
    policy_version: str | None = None
    review_required: bool = False  # risk_reduction: queued for privacy review
    restricted: bool = False  # visible only to privacy officers of the agencies involved
    payload_digest: str | None = None
    withheld: tuple[str, ...] = field(default_factory=tuple)
    refers_to: str | None = None  # the record a review or acknowledgement is about
    inputs: DecisionInputs | None = None  # a policy decision's inputs (format version 2)
    area: str | None = None  # an `alert_routed`'s: the area it was routed on, when known
    topic: str | None = None  # an `alert_routed`'s: the topic it was routed on

    def __repr__(self) -> str:  # personal fields stay out of logs and tracebacks
        return f"AuditRecord(record_id={self.record_id!r}, event={self.event!r})"

    def personal(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in PERSONAL_FIELDS}


# Built once: json.dumps would rebuild an encoder on every call, and the verifier makes
# millions of calls (the output is the same).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the RFC 8785 (JCS) form for the
    value types records use (strings, integers, booleans, null, arrays, objects)."""
    return _CANONICAL.encode(value).encode()


def rfc3339(value: datetime) -> str:
    utc = value.astimezone(UTC)
    if utc.year < 1000:  # noqa: PLR2004 - isoformat pads the year, strftime does not
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as the strftime above, several times faster.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# A batch's records share one recorded_at: its text once per batch, not once per record.
_batch_time = lru_cache(maxsize=4)(rfc3339)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def personal_commitment(salt: bytes, personal: dict[str, str | None]) -> str:
    return hashlib.sha256(salt + canonical_json(personal)).hexdigest()


def canonical_record(
    record: AuditRecord,
    seq: int,
    recorded_at: datetime,
    salt: bytes,
    *,
    personal_json: bytes | None = None,
) -> dict[str, Any]:
    """The exact object hashed into the log (docs/audit-format.md lists every member).

    `personal_json`: `canonical_json(record.personal())` when the caller has it already.
    """
    if personal_json is None:
        personal_json = canonical_json(record.personal())
    canonical = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "record_id": record.record_id,
        "event": record.event,
        "occurred_at": rfc3339(record.occurred_at),
        "recorded_at": _batch_time(recorded_at),
        "message_id": record.message_id,
        "correlation_id": record.correlation_id,
        "ingress_agency": record.ingress_agency,
        "ingress_seq": record.ingress_seq,
        "sender_agency": record.sender_agency,
        "recipient_agency": record.recipient_agency,
        "kind": record.kind,
        "purpose": record.purpose,
        "ground": GROUNDS.get(record.purpose or ""),
        "decision": record.decision,
        "reason_code": record.reason_code,
        "reason": record.reason,
        "policy_ids": list(record.policy_ids),
        "policy_version": record.policy_version,
        "review_required": record.review_required,
        "restricted": record.restricted,
        "withheld": list(record.withheld),
        "payload_digest": record.payload_digest,
        "refers_to": record.refers_to,
        "node": record.node,
        "personal": hashlib.sha256(salt + personal_json).hexdigest(),  # personal_commitment
    }
    if record.sender_provider is not None:  # present only when set: older bytes unchanged
        canonical["sender_provider"] = record.sender_provider
    if record.inputs is not None:  # version 1 records (no inputs) keep their exact form
        canonical["v"] = INPUTS_VERSION
        canonical["inputs"] = record.inputs.as_dict()
    for name in ("area", "topic"):  # present only when set: older records keep their bytes
        if (value := getattr(record, name)) is not None:
            canonical[name] = value
    return canonical


@dataclass(frozen=True)
class SeenMessage:
    """An authenticated message id and the ingress stream sequence that first carried it."""

    message_id: str
    ingress_seq: int
