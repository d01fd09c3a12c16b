"""One ingress message on its way through the gateway's steps (shared by gateway.py and
the alert flow, which routes some of its deliveries)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from audit import AuditRecord
from broker.errors import Refusal
from broker.ids import is_id
from broker.nats.transport import Inbound
from broker.wire.envelope import Agency, DeliveryRef, IngressClaims, SealedContent
from policies import PolicyEngine
from routing import Route


@dataclass
class Work:
    """One ingress message on its way through the steps."""

    msg: Inbound
    agency: Agency | None = None
    claims: IngressClaims | None = None
    content: SealedContent | None = None
    refusal: Refusal | None = None
    records: list[AuditRecord] = field(default_factory=list)
    deliveries: list[tuple[str, bytes, DeliveryRef]] = field(default_factory=list)
    retry: bool = False
    dead_letter: bool = False
    engine: PolicyEngine | None = None  # the bundle that decides this message, fixed once
    routes: dict[str, Route] = field(default_factory=dict)  # delivery id -> designated contact
    subscribers: set[Agency] = field(default_factory=set)  # agencies following the offender

    @property
    def key(self) -> str:
        return f"{self.msg.stream_seq}:{self.msg.stored_at.timestamp():.6f}"

    @cached_property
    def payload_digest(self) -> str | None:
        """SHA-256 of the sealed payload (never the payload), once per message."""
        if self.claims is None:
            return None
        return hashlib.sha256(self.claims.sealed.encode()).hexdigest()

    @property
    def message_ref(self) -> str | None:
        if self.claims is not None:
            return self.claims.id
        claimed = self.msg.headers.get("Nats-Msg-Id", "")
        return claimed if is_id(claimed) else None  # unverified: only to route the receipt
