"""What the designated contacts' JSON API and web inbox share: limits, and the rule that a
contact sees only alerts routed to them (errors and the access log: errors.py, access.py)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool

from broker.auth import Principal, Role
from broker.errors import NotYourAlertError
from routing import Alert, RoutingStore

PREFIX = "/api/v1/alerts"
INBOX = "/inbox"
COOKIE = "s284_inbox"
MAX_REPLY = 2000
MAX_FORM_BYTES = 16 * 1024
LOCAL_ZONE = ZoneInfo("Australia/Melbourne")
CONTACTS = frozenset({Role.CONTACT})
MAX_SUMMARY = 1000  # characters of an alert's summary a card shows


@dataclass(frozen=True)
class AlertGist:
    """What an alert says, for the designated contact it is addressed to: the payload's
    `alert_level` (a risk update's `risk_level`) and `summary`, plain text the templates
    escape."""

    alert_level: str | None
    summary: str | None

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Self:
        level = payload.get("alert_level") or payload.get("risk_level")  # a risk.update's
        summary = payload.get("summary")
        return cls(
            alert_level=level[:40] if isinstance(level, str) and level.strip() else None,
            summary=summary[:MAX_SUMMARY] if isinstance(summary, str) and summary.strip() else None,
        )


# Where the inbox reads an alert's gist (synchronous: it is called in a worker thread);
# None when this process cannot open that alert.
GistSource = Callable[[Alert], AlertGist | None]


# -- shared between the API and the inbox ------------------------------------------------


def overdue(alert: Alert, now: datetime) -> bool:
    return alert.acknowledged_at is None and alert.deadline is not None and alert.deadline < now


async def own_alerts(store: RoutingStore, who: Principal) -> list[Alert]:
    alerts = await run_in_threadpool(store.open_alerts, who.agency or "", who.subject)
    return sorted(alerts, key=lambda a: a.created_at, reverse=True)


async def check_own(store: RoutingStore, who: Principal, alert_id: str) -> None:
    alert = await run_in_threadpool(store.alert, alert_id)
    if alert is None or (alert.agency, alert.contact_id) != (who.agency, who.subject):
        raise NotYourAlertError(alert_id, who.subject)
