"""Designated-contact routing (the Dunedin scheme): who receives an alert, by when they
must acknowledge it, and where it escalates; the offender registry; CSP review dates.

The routing table is versioned (every import kept whole, with its digest). Alerts hold
their escalation state in the database, so timers survive a restart. Knows nothing of
NATS or HTTP; the only place routing SQL lives.
"""

from routing._alerts import NewAlert
from routing._csp import add_months
from routing._errors import RoutingError, RoutingUnavailableError
from routing._hours import WorkingHours
from routing._model import (
    DUTY,
    Alert,
    AlertStatus,
    AlertStep,
    Contact,
    CspNotice,
    CspReview,
    Gap,
    Milestone,
    Offender,
    Route,
    RouteRow,
    TableChange,
    TableVersion,
    Topic,
)
from routing._store import CONTACT_INACTIVE, NO_AREA, NO_CONTACT, RoutingStore

__all__ = [
    "CONTACT_INACTIVE",
    "DUTY",
    "NO_AREA",
    "NO_CONTACT",
    "Alert",
    "AlertStatus",
    "AlertStep",
    "Contact",
    "CspNotice",
    "CspReview",
    "Gap",
    "Milestone",
    "NewAlert",
    "Offender",
    "Route",
    "RouteRow",
    "RoutingError",
    "RoutingStore",
    "RoutingUnavailableError",
    "TableChange",
    "TableVersion",
    "Topic",
    "WorkingHours",
    "add_months",
]
