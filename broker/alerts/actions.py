"""What a designated contact can do to an alert, behind one protocol: the HTTP API and the
web inbox call it; the broker's alert flow (broker/alerts/flow.py) implements it."""

from __future__ import annotations

from typing import Protocol

from broker.auth import Principal
from routing import Alert


class AlertActions(Protocol):
    async def acknowledge(self, alert_id: str, contact: Principal) -> Alert:
        """Mark the alert acknowledged by this contact, record it in the disclosure log and
        tell the managing officer. Raises `routing.RoutingError` (unknown alert, already
        acknowledged; `RoutingUnavailableError` when its database is down) or
        `broker.errors.NotYourAlertError` (the alert is not, or no longer, routed to this
        contact)."""
        ...

    async def reply(self, alert_id: str, contact: Principal, text: str) -> str:
        """Send the contact's concern back to the managing officer as a concern.report
        correlated with the alert's message, decided by the s 284 policy like any other
        disclosure; return its message id. Same errors as `acknowledge`, plus
        `broker.errors.Refusal` when the policy refuses it."""
        ...
