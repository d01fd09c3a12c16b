"""Designated-contact routing (the Dunedin scheme): who receives an alert, by when they
must acknowledge it, and where it escalates; the offender registry; the register of
coordinated services plans and their review dates.

The routing table is versioned (every import kept whole, with its digest). Alerts hold
their escalation state in the database, so timers survive a restart. Knows nothing of
NATS or HTTP; the only place routing SQL lives.
"""

from routing._alerts import NewAlert
from routing._csp import CSP_STATUSES, NEEDS_PLAN, ORDER_ENDED, add_months
from routing._csp_stats import join_register_figures
from routing._errors import RoutingError, RoutingUnavailableError
from routing._hours import WorkingHours
from routing._model import (
    DUTY,
    Alert,
    AlertStatus,
    AlertStep,
    Contact,
    CspNotice,
    CspPlan,
    CspReview,
    CspReviewer,
    CspStatus,
    Gap,
    Milestone,
    MissingPlan,
    Offender,
    Route,
    RouteRow,
    TableChange,
    TableVersion,
    Topic,
)
from routing._request_stats import request_statistics
from routing._requests import Answer, OpenRequest, RequestRegister, RequestRow, request_summary
from routing._store import CONTACT_INACTIVE, NO_AREA, NO_CONTACT, RoutingStore

__all__ = [
    "CONTACT_INACTIVE",
    "CSP_STATUSES",
    "DUTY",
    "NEEDS_PLAN",
    "NO_AREA",
    "NO_CONTACT",
    "ORDER_ENDED",
    "Alert",
    "AlertStatus",
    "AlertStep",
    "Answer",
    "Contact",
    "CspNotice",
    "CspPlan",
    "CspReview",
    "CspReviewer",
    "CspStatus",
    "Gap",
    "Milestone",
    "MissingPlan",
    "NewAlert",
    "Offender",
    "OpenRequest",
    "RequestRegister",
    "RequestRow",
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
    "join_register_figures",
    "request_statistics",
    "request_summary",
]
