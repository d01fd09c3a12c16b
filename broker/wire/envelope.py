"""The envelope: what an agency says about a message, as strict pydantic models.

Wire data never becomes one of these without validation: unknown or missing
fields, unknown kinds and unknown purposes are errors, not defaults.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from broker.ids import ID_PATTERN, new_id

SCHEMA_VERSION: Literal[1] = 1


class Agency(StrEnum):
    """The parties that exchange information: the four Multi-Agency Panel members, and the
    Post Sentence Authority (`psa`), which issues notices and information requests and
    receives only the answers to its own (docs/notices.md). Where code means "the four MAP
    agencies" (adapters, demo, lab agency processes, routing contacts) it says
    `MAP_AGENCIES`; the wire, the directory, NATS accounts and receipts key on `Agency`."""

    POLICE = "police"
    CORRECTIONS = "corrections"
    DFFH = "dffh"
    HEALTH = "health"
    PSA = "psa"


MAP_AGENCIES: tuple[Agency, ...] = (Agency.POLICE, Agency.CORRECTIONS, Agency.DFFH, Agency.HEALTH)


class Kind(StrEnum):
    RISK_UPDATE = "risk.update"
    RISK_ALERT = "risk.alert"
    SERVICE_PROGRESS = "service.progress"
    SERVICE_REFERRAL = "service.referral"
    CSP_UPDATE = "csp.update"
    ORDER_STATUS = "order.status"
    ORDER_BREACH = "order.breach"
    NEEDS_NOTIFICATION = "needs.notification"
    CONCERN_REPORT = "concern.report"
    PSA_NOTICE = "psa.notice"
    INFO_REQUEST = "info.request"
    INFO_RESPONSE = "info.response"


class Purpose(StrEnum):
    """The eight grounds on which s 284 permits use or disclosure."""

    REPORTS = "reports"
    ORDER_APPLICATION = "order_application"
    CSP_PREPARATION = "csp_preparation"
    CSP_SERVICE_DELIVERY = "csp_service_delivery"
    OFFENDER_MANAGEMENT = "offender_management"
    AUTHORISED_BY_LAW = "authorised_by_law"
    CONSENT = "consent"
    RISK_REDUCTION = "risk_reduction"


class Topic(StrEnum):
    """What a risk.alert or needs.notification is about; it picks the designated contact.

    The wire's own list (docs/wire-format.md); routing.Topic holds the same values
    (tests/test_units.py keeps the two from drifting), so the wire needs no database code.
    """

    RISK = "risk"
    CHILD_SAFETY = "child_safety"
    HOUSING = "housing"
    INCOME_SUPPORT = "income_support"
    MENTAL_HEALTH = "mental_health"
    ALCOHOL_DRUGS = "alcohol_drugs"
    FAMILY_VIOLENCE = "family_violence"
    COUNSELLING = "counselling"


class OrderStatus(StrEnum):
    """The offender's post-sentence order, as the sender knows it (decides the CSP grounds)."""

    SUPERVISION_ORDER = "supervision_order"
    INTERIM_SUPERVISION_ORDER = "interim_supervision_order"
    DETENTION_ORDER = "detention_order"
    INTERIM_DETENTION_ORDER = "interim_detention_order"
    APPLICATION_PENDING = "application_pending"
    NONE = "none"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a UTC offset")
    return value.astimezone(UTC)


MessageId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Timestamp = Annotated[datetime, AfterValidator(_utc)]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
OFFENDER_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"  # a reference, never a name
OffenderRef = Annotated[str, StringConstraints(pattern=OFFENDER_PATTERN)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sender(_Strict):
    """Who discloses: the agency, its unit, the staff member's id and role (ids, not names)."""

    agency: Agency
    unit: Token
    person_id: Token
    role: Token


class Envelope(_Strict):
    """Everything about a message except its payload. Sealed to the gateway on ingress."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: MessageId = Field(default_factory=new_id)
    created_at: Timestamp = Field(default_factory=lambda: datetime.now(UTC))
    sender: Sender
    kind: Kind
    purpose: Purpose
    offender: OffenderRef
    order_status: OrderStatus = OrderStatus.NONE
    recipients: Annotated[list[Agency], Field(min_length=1, max_length=4)]
    justification: ShortText | None = None
    consent_reference: ShortText | None = None
    law_reference: ShortText | None = None
    correlation_id: MessageId | None = None
    in_reply_to: MessageId | None = None
    # Covert or otherwise sensitive: the disclosure record is visible only to the privacy
    # officers of the agencies involved.
    restricted: bool = False
    # What a routed alert is about; decides the designated contact (risk.alert: default risk).
    topic: Topic | None = None

    @field_validator("recipients")
    @classmethod
    def _distinct(cls, value: list[Agency]) -> list[Agency]:
        if len(set(value)) != len(value):
            raise ValueError("recipients must be distinct")
        return value

    @model_validator(mode="after")
    def _topic_for_needs(self) -> Envelope:
        if self.kind is Kind.NEEDS_NOTIFICATION and self.topic is None:
            raise ValueError("a needs.notification names its topic (who should receive it)")
        return self


class SealedContent(_Strict):
    """The plaintext inside the ingress JWE: the envelope and the payload (a JSON object)."""

    envelope: Envelope
    payload: dict[str, Any]


class IngressClaims(_Strict):
    """The sender-signed outer layer of an ingress frame (JWS payload)."""

    s284: Literal[1] = SCHEMA_VERSION
    id: MessageId
    created_at: Timestamp
    agency: Agency
    sealed: str


class DisclosureDecision(_Strict):
    """Why the gateway permitted this disclosure (policies and bundle version)."""

    policy_ids: list[str]
    reason: str
    policy_version: str
    review_required: bool = False


class DeliveredContent(_Strict):
    """The plaintext inside a delivery JWE, sealed by the gateway to one recipient."""

    envelope: Envelope
    payload: dict[str, Any]
    withheld: list[str]
    decision: DisclosureDecision
    origin: str  # the sender's original ingress frame, signature intact


class DeliveryClaims(_Strict):
    """The gateway-signed outer layer of a delivery frame."""

    s284: Literal[1] = SCHEMA_VERSION
    delivery_id: str
    message_id: MessageId
    created_at: Timestamp
    to: Agency
    sealed: str
    route_reason: str | None = None  # an alert routing parked at the duty inbox: why

    @model_serializer(mode="wrap")
    def _route_reason_only_when_set(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Absent unless set, so every other delivery is what it was before the member
        existed (older readers forbid unknown members)."""
        data = handler(self)
        if self.route_reason is None and isinstance(data, dict):
            data.pop("route_reason", None)
        return data


class DeliveryRef(_Strict):
    delivery_id: str
    recipient: Agency
    contact: str | None = None  # a routed alert: the designated contact (or "duty") it went to
    route_reason: str | None = None  # why it went to the duty inbox (routing.no_area, ...)
    pushed: bool = False  # step 5b: a copy for an agency following the offender, not named

    @model_serializer(mode="wrap")
    def _pushed_only_when_true(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`pushed` appears only when true, so a receipt naming only the sender's recipients
        is what it was before the member existed (older readers forbid unknown members)."""
        data = handler(self)
        if not self.pushed and isinstance(data, dict):
            data.pop("pushed", None)
        return data


class Receipt(_Strict):
    """The gateway's signed answer to a sender: accepted with deliveries, or refused with why."""

    s284: Literal[1] = SCHEMA_VERSION
    message_id: str | None
    status: Literal["accepted", "refused"]
    reason: str | None = None
    detail: str | None = None
    deliveries: list[DeliveryRef] = Field(default_factory=list)
    decided_at: Timestamp
    policy_version: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def delivery_id_for(message_id: str, recipient: Agency) -> str:
    """Deterministic, so a redelivered message re-publishes under the same Nats-Msg-Id."""
    return f"{message_id}.{recipient.value}"
