"""What the gateway knows about one ingress message after each step, one immutable record
per stage, each made only by the step before it (broker/gateway/pipeline.py); and the
outcomes that end a message's way early: `Refused` (recorded and answered), `DeadLettered`
(a refusal whose frame is kept for an operator) and `Retry`.

    Arrived -> Framed -> Authenticated -> Fresh -> Opened -> Decided -> Minimised
            -> Sealed -> Routed -> Recorded
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from audit import AuditRecord, SeenMessage
from broker.errors import Refusal
from broker.gateway.steps import Frame
from broker.ids import is_id
from broker.nats.transport import Inbound
from broker.wire.envelope import Agency, DeliveryRef, Envelope, IngressClaims, SealedContent
from policies import Decision, PolicyEngine
from routing import Route


def attempt_key(msg: Inbound) -> str:
    """This ingress message (sequence and store time): a refusal's and a receipt's key."""
    return f"{msg.stream_seq}:{msg.stored_at.timestamp():.6f}"


@dataclass(frozen=True)
class Arrived:
    """As JetStream handed it over: nothing in it is trusted yet."""

    msg: Inbound


@dataclass(frozen=True)
class Framed:
    """1: a JWS-shaped frame within the size limit, on a known agency's ingress subject."""

    msg: Inbound
    frame: Frame


@dataclass(frozen=True)
class Authenticated:
    """2: signed by a key the directory binds to the ingress agency."""

    msg: Inbound
    agency: Agency
    claims: IngressClaims


@dataclass(frozen=True)
class Fresh:
    """3: created within the replay window; its id never came on another ingress sequence."""

    msg: Inbound
    agency: Agency
    claims: IngressClaims


@dataclass(frozen=True)
class Opened:
    """4: the payload decrypted; the envelope is valid and agrees with the signed claims."""

    msg: Inbound
    agency: Agency
    claims: IngressClaims
    content: SealedContent = field(repr=False)  # the payload stays out of tracebacks


@dataclass(frozen=True)
class Decided:
    """5: every named recipient permitted by one policy bundle; 5b: permitted subscribers
    to the offender too (`subscribers`: the agencies already following the offender)."""

    opened: Opened
    engine: PolicyEngine
    permitted: tuple[tuple[Agency, Decision], ...]
    subscribers: frozenset[Agency]

    @property
    def msg(self) -> Inbound:
        return self.opened.msg

    @property
    def envelope(self) -> Envelope:
        return self.opened.content.envelope


@dataclass(frozen=True)
class Minimal:
    """6: one recipient's share: only the fields its purpose needs, the names of the rest."""

    recipient: Agency
    decision: Decision
    payload: dict[str, Any] = field(repr=False)
    withheld: tuple[str, ...]


@dataclass(frozen=True)
class Minimised:
    """6: every permitted recipient's share."""

    decided: Decided
    shares: tuple[Minimal, ...]

    @property
    def msg(self) -> Inbound:
        return self.decided.msg


@dataclass(frozen=True)
class Delivery:
    """One recipient's sealed frame and where it goes; `route` only for a routed alert."""

    share: Minimal
    ref: DeliveryRef
    subject: str
    frame: bytes
    route: Route | None = None


@dataclass(frozen=True)
class Sealed:
    """8 (done before the commit): re-sealed per recipient, for its deliver subject."""

    decided: Decided
    deliveries: tuple[Delivery, ...]

    @property
    def msg(self) -> Inbound:
        return self.decided.msg


@dataclass(frozen=True)
class Routed:
    """6b: alerts readdressed to their designated contact (or duty inbox); else as sealed."""

    decided: Decided
    deliveries: tuple[Delivery, ...]

    @property
    def msg(self) -> Inbound:
        return self.decided.msg


@dataclass(frozen=True)
class Recorded:
    """7: its records are committed to the disclosure log: it may now be published."""

    routed: Routed

    @property
    def msg(self) -> Inbound:
        return self.routed.msg


# -- outcomes that end a message's way before delivery ------------------------------------


@dataclass(frozen=True)
class Refused:
    """Refused with a reason code: recorded in step 7, answered in step 9."""

    msg: Inbound
    agency: Agency | None  # None: not even the ingress subject was understood
    message_ref: str | None  # the authenticated id, or a well-formed claimed one
    refusal: Refusal
    record: AuditRecord
    seen: SeenMessage | None  # marks the id as used (not for a replay or an unsigned id)
    policy_version: str


@dataclass(frozen=True)
class DeadLettered(Refused):
    """A step failed on it on its last delivery attempt: refused `internal.dead_letter`, and
    its frame kept on the dead-letter stream (step 8) for an operator."""


@dataclass(frozen=True)
class Retry:
    """A step failed unexpectedly before the message's last delivery attempt: nak'ed, and
    JetStream delivers it again after a short delay."""

    msg: Inbound


Stage = Arrived | Framed | Authenticated | Fresh | Opened | Decided | Minimised | Sealed | Routed
Item = Stage | Recorded | Refused | Retry


def claimed_ref(msg: Inbound) -> str | None:
    """The id the sender claims in Nats-Msg-Id, unverified: only to address its receipt."""
    claimed = msg.headers.get("Nats-Msg-Id", "")
    return claimed if is_id(claimed) else None


def payload_digest(claims: IngressClaims) -> str:
    """SHA-256 of the sealed payload (never of the payload itself)."""
    return hashlib.sha256(claims.sealed.encode()).hexdigest()
