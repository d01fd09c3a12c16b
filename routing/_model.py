"""The routing package's domain objects: frozen, checked on construction where it matters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from routing._errors import RoutingError
from routing._hours import WorkingHours

TOKEN = re.compile(r"[a-z0-9][a-z0-9-]*")  # safe inside a NATS subject
DUTY = "duty"  # the contact id of every agency's duty inbox

LEVEL_CONTACT, LEVEL_DEPUTY, LEVEL_DUTY = 0, 1, 2


class Topic(StrEnum):
    RISK = "risk"
    CHILD_SAFETY = "child_safety"
    HOUSING = "housing"
    INCOME_SUPPORT = "income_support"
    MENTAL_HEALTH = "mental_health"
    ALCOHOL_DRUGS = "alcohol_drugs"
    FAMILY_VIOLENCE = "family_violence"
    COUNSELLING = "counselling"


class AlertStatus(StrEnum):
    """An escalated alert is still open: whoever holds it now may acknowledge it."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED_DEPUTY = "escalated_deputy"
    ESCALATED_DUTY = "escalated_duty"


@dataclass(frozen=True)
class Contact:
    """A designated person; the name is kept out of repr so it never reaches a log."""

    id: str
    name: str = field(repr=False)
    channel: str

    def __post_init__(self) -> None:
        if not TOKEN.fullmatch(self.id):
            raise RoutingError("routing.bad_contact", f"contact id {self.id!r} is not [a-z0-9-]+")
        if self.id == DUTY:
            raise RoutingError("routing.bad_contact", "contact id 'duty' is the duty inbox's")
        if not self.name.strip():
            raise RoutingError("routing.bad_contact", f"contact {self.id} has no name")
        if not TOKEN.fullmatch(self.channel):
            raise RoutingError("routing.bad_contact", f"contact {self.id} has a bad channel")


@dataclass(frozen=True)
class RouteRow:
    agency: str
    area: str
    topic: Topic
    contact: Contact
    deputy: Contact | None
    hours: WorkingHours
    ack_within_min: int
    escalation: str = DUTY
    active: bool = True


@dataclass(frozen=True)
class Route:
    """Where one alert goes. `duty` routes carry a reason code and no deadline."""

    agency: str
    area: str | None
    topic: Topic
    contact_id: str
    deputy_id: str | None
    deadline: datetime | None
    duty: bool
    reason: str | None = None


@dataclass(frozen=True)
class Offender:
    ref: str
    managing_officer: str
    managing_agency: str
    area: str | None
    order_status: str
    updated_at: datetime


@dataclass(frozen=True)
class Alert:
    alert_id: str
    message_id: str
    agency: str
    contact_id: str
    offender: str
    topic: Topic
    sender_agency: str
    purpose: str
    created_at: datetime
    deadline: datetime | None
    status: AlertStatus
    level: int  # 0 contact, 1 deputy, 2 duty inbox
    route_reason: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    area: str | None = None
    deputy_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status != AlertStatus.ACKNOWLEDGED


@dataclass(frozen=True)
class AlertStep:
    """One recorded step of an alert: opened, escalated or acknowledged."""

    alert_id: str
    at: datetime
    level: int
    contact_id: str
    status: AlertStatus


@dataclass(frozen=True)
class Gap:
    """A need nobody covers, or an alert parked at a duty inbox because of it."""

    agency: str
    area: str | None
    topic: Topic
    reason: str
    alert_id: str | None = None


@dataclass(frozen=True)
class TableChange:
    version: int
    previous_version: int | None
    actor: str
    at: datetime
    digest_before: str | None
    digest_after: str
    added: int
    removed: int
    changed: int


@dataclass(frozen=True)
class TableVersion:
    version: int
    actor: str
    at: datetime
    digest: str


@dataclass(frozen=True)
class CspReview:
    offender: str
    csp_id: str
    last_review: date
    due: date


@dataclass(frozen=True)
class CspReviewer:
    """Who is reminded of a plan's review, at which agency: SOCT coordinates DFFH's and
    DH's input to plans from DFFH; the MAP chair sits with the managing agency."""

    contact: Contact
    agency: str


Milestone = Literal["30d", "14d", "due"]
CspStatus = Literal["created", "endorsed", "reviewed", "closed"]


@dataclass(frozen=True)
class CspPlan:
    """A plan as its latest-dated event left it; `endorsed_on` starts the review clock."""

    offender: str
    csp_id: str
    status: CspStatus
    status_on: date
    endorsed_on: date | None
    closed_reason: str | None

    @property
    def current(self) -> bool:
        """Endorsed (or reviewed since) and not closed: the plan the Act requires."""
        return self.status in {"endorsed", "reviewed"}


@dataclass(frozen=True)
class MissingPlan:
    """An offender the Act says needs a plan (supervision order, interim supervision order,
    pending application) who has no current one; `in_preparation`: a created plan awaits
    endorsement."""

    offender: str
    order_status: str
    managing_officer: str
    in_preparation: tuple[str, ...]


@dataclass(frozen=True)
class CspNotice:
    offender: str
    csp_id: str
    due: date
    milestone: Milestone
