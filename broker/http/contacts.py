"""What the designated contacts' JSON API and web inbox share: limits, and the rule that a
contact sees only alerts routed to them (errors and the access log: errors.py, access.py)."""

from datetime import datetime
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
