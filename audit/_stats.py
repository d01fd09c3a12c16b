"""Counts for oversight (the Post Sentence Authority, the scheme's quarterly review).

Computed from the structured members of the log only (event, purpose, agencies, kind,
reason code, time): never from `audit_personal`, and the log holds no payloads. Restricted
records are counted like any other: a count names no offender and no person. Every figure
is defined in docs/oversight.md; the figures the log cannot give yet are listed, with why,
in `NOT_COMPUTABLE`, so that nobody reads a missing figure as a zero.

A period is half-open, `[start, end)`, on `occurred_at`. Dates given without a time are
whole UTC days, both ends included (`--from 2026-03-01 --to 2026-03-31` is March).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from audit._build import counted_of
from audit._errors import AuditError
from audit._guard import unavailable_on_db_error
from audit._records import GROUNDS, Event, rfc3339
from audit._schema import audit_log

if TYPE_CHECKING:
    from audit._store import AuditStore

# Where an initial `alert_routed` went to the duty inbox, and why (docs/reason-codes.md).
PARKED = ("routing.no_area", "routing.no_contact", "routing.contact_inactive")
ESCALATED = {"routing.escalated_deputy": "to_deputy", "routing.escalated_duty": "to_duty"}
CSP_REMINDER = "csp.review_"
CONFIRM = "confirm."

NOT_COMPUTABLE = {
    "csps_developed_and_agreed": "the CSP register (routing) writes no event to the log when "
    "a plan is created or endorsed; only review reminders are logged",
    "csp_reviews_done_on_time": "a completed CSP review is not a logged event yet",
    "breach_actions": "the action taken on a breach is not recorded; only order.breach "
    "disclosures are (counted under dunedin/breaches_reported)",
}
NOT_RECORDED = "(not recorded)"  # an alert_routed written before records carried its route


class PeriodError(AuditError, ValueError):
    """A statistics period that cannot be counted: unreadable, or `from` after `to`."""


@dataclass(frozen=True)
class Period:
    """`[start, end)` in UTC; `parse` reads what a person types."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        first, last = _moment(start, "from", end_of_day=False), _moment(end, "to", end_of_day=True)
        if first > last:
            raise PeriodError(f"the period starts ({start}) after it ends ({end})")
        return cls(first, last)


def _moment(text: str, name: str, *, end_of_day: bool) -> datetime:
    """A date (a whole UTC day) or an RFC 3339 time with a zone."""
    text = text.strip()
    try:
        if len(text) == len("2026-03-01"):
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or time") from None
    if moment.tzinfo is None:
        raise PeriodError(f"{name}: {text!r} has no time zone (add Z or +10:00)")
    return moment.astimezone(UTC)


_GROUPED = (
    audit_log.c.event,
    audit_log.c.purpose,
    audit_log.c.sender_agency,
    audit_log.c.ingress_agency,
    audit_log.c.recipient_agency,
    audit_log.c.kind,
    audit_log.c.reason_code,
    audit_log.c.review_required,
)


@unavailable_on_db_error
def statistics(store: AuditStore, period: Period) -> dict[str, Any]:
    """Every oversight figure for `period` (the shape is documented in docs/oversight.md)."""
    log = audit_log.c
    within = and_(log.occurred_at >= period.start, log.occurred_at < period.end)
    grouped = select(*_GROUPED, func.count().label("n")).where(within).group_by(*_GROUPED)
    with store.engine.connect() as conn:
        groups = [(row, int(row["n"])) for row in conn.execute(grouped).mappings()]
        alerts = _alert_times(conn, period)
        routes = _alert_routes(conn, within)
        counted = conn.execute(
            select(log.ingress_agency, log.reason_code, log.canonical).where(
                within, log.event == Event.REFUSALS_COUNTED.value
            )
        ).all()
    figures = _Figures()
    for row, n in groups:
        figures.add(row, n)
    for agency, code, canonical in counted:  # a flood's refusals, one record each
        n = counted_of(json.loads(canonical)["reason"])
        figures.add_refusals(agency, code or "", None, n)
    return {
        "period": {"from": rfc3339(period.start), "to": rfc3339(period.end)},
        **figures.result(),
        "dunedin": {**figures.dunedin(), **routes, **alerts},
        "not_computable": dict(NOT_COMPUTABLE),
    }


class _Figures:
    """Folds the grouped counts into the figures."""

    def __init__(self) -> None:
        self.c: dict[str, Counter[str]] = {}

    def _count(self, name: str, key: str | None, n: int) -> None:
        self.c.setdefault(name, Counter())[key or "(none)"] += n

    def add(self, row: Any, n: int) -> None:
        event, code = row["event"], row["reason_code"] or ""
        agency = row["sender_agency"] or row["ingress_agency"]
        ground = GROUNDS.get(row["purpose"] or "")
        if event == Event.DISCLOSED:
            self._disclosed(row, n, ground)
        elif event == Event.REFUSED and code.startswith(CONFIRM):
            self._count("confirmations_refused", code, n)
        elif event == Event.REFUSED:
            self.add_refusals(agency, code, ground, n)
        elif event == Event.RECEIVED:
            self._count("confirmations_received", "total", n)
        elif event == Event.REVIEWED:
            self._count("reviews_by_outcome", code.removeprefix("review."), n)
        elif event == Event.ALERT_ROUTED:
            self._routed(row, code, n)

    def add_refusals(self, agency: str | None, code: str, ground: str | None, n: int) -> None:
        self._count("refusals", "total", n)
        self._count("refusals_by_reason", code, n)
        self._count("refusals_by_agency", agency, n)
        self._count("refusals_by_ground", ground, n)

    def _disclosed(self, row: Any, n: int, ground: str | None) -> None:
        self._count("disclosures", "total", n)
        self._count("disclosures_by_ground", ground, n)
        self._count("disclosures_by_sender", row["sender_agency"], n)
        self._count("disclosures_by_recipient", row["recipient_agency"], n)
        if row["review_required"]:
            self._count("disclosures", "review_required", n)
        if row["kind"] == "order.breach":
            self._count("breaches", "total", n)

    def _routed(self, row: Any, code: str, n: int) -> None:
        agency = row["recipient_agency"]
        if code.startswith(CSP_REMINDER):
            self._count("csp_reminders", code.removeprefix(CSP_REMINDER), n)
        elif code in ESCALATED:
            self._count("escalations", ESCALATED[code], n)
            self._count("escalations_by_agency", agency, n)
        else:
            self._count("alerts_by_agency", agency, n)
            self._count("alerts_by_kind", row["kind"], n)
            if code in PARKED:
                self._count("parks_by_reason", code, n)
                self._count("parks_by_agency", agency, n)

    def _get(self, name: str) -> dict[str, int]:
        return dict(sorted(self.c.get(name, Counter()).items()))

    def _total(self, name: str, key: str = "total") -> int:
        return self.c.get(name, Counter())[key]

    def result(self) -> dict[str, Any]:
        return {
            "disclosures": {
                "total": self._total("disclosures"),
                "review_required": self._total("disclosures", "review_required"),
                "by_ground": self._get("disclosures_by_ground"),
                "by_sender_agency": self._get("disclosures_by_sender"),
                "by_recipient_agency": self._get("disclosures_by_recipient"),
            },
            "refusals": {
                "total": self._total("refusals"),
                "by_reason": self._get("refusals_by_reason"),
                "by_ground": self._get("refusals_by_ground"),
                "by_agency": self._get("refusals_by_agency"),
            },
            "confirmations": {
                "received": self._total("confirmations_received"),
                "refused_by_reason": self._get("confirmations_refused"),
            },
            "privacy_reviews": {"by_outcome": self._get("reviews_by_outcome")},
            "csp": {"review_reminders_by_milestone": self._get("csp_reminders")},
        }

    def dunedin(self) -> dict[str, Any]:
        by_agency = self._get("alerts_by_agency")
        parks = self._get("parks_by_reason")
        return {
            "alerts": sum(by_agency.values()),
            "alerts_by_agency": by_agency,
            "alerts_by_kind": self._get("alerts_by_kind"),
            "duty_inbox_parks": sum(parks.values()),
            "duty_inbox_parks_by_reason": parks,
            "duty_inbox_parks_by_agency": self._get("parks_by_agency"),
            "escalations": {
                "to_deputy": self._total("escalations", "to_deputy"),
                "to_duty": self._total("escalations", "to_duty"),
                "by_agency": self._get("escalations_by_agency"),
            },
            "breaches_reported": self._total("breaches"),
        }


def _initial() -> Any:
    """An alert's first routing (to a contact, or parked): not an escalation, not a reminder."""
    log = audit_log.c
    return log.reason_code.is_(None) | log.reason_code.in_(PARKED)


def _alert_routes(conn: Any, within: Any) -> dict[str, dict[str, int]]:
    """Alerts first routed in the period by the area and topic they were routed on: the
    record's own `area` and `topic` members (absent area: none was known)."""
    log = audit_log.c
    rows = conn.execute(
        select(log.canonical).where(within, log.event == Event.ALERT_ROUTED.value, _initial())
    ).scalars()
    areas: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    for canonical in rows:
        member = json.loads(canonical)
        recorded = "topic" in member
        areas[member.get("area") or ("(none)" if recorded else NOT_RECORDED)] += 1
        topics[member["topic"] if recorded else NOT_RECORDED] += 1
    return {
        "alerts_by_area": dict(sorted(areas.items())),
        "alerts_by_topic": dict(sorted(topics.items())),
    }


def _alert_times(conn: Any, period: Period) -> dict[str, Any]:
    """Acknowledgement times of the alerts first routed in the period (acknowledged at any
    time up to now): first `acknowledged` minus the initial `alert_routed`, per alert."""
    log = audit_log.c
    routed = select(log.message_id, log.recipient_agency, log.occurred_at).where(
        log.event == Event.ALERT_ROUTED.value,
        _initial(),
        log.occurred_at >= period.start,
        log.occurred_at < period.end,
    )
    acked = select(log.message_id, log.recipient_agency, log.occurred_at).where(
        log.event == Event.ACKNOWLEDGED.value, log.occurred_at >= period.start
    )
    first: dict[tuple[str, str], datetime] = {}
    for message_id, agency, at in conn.execute(acked):
        key = (message_id, agency)
        first[key] = min(at, first.get(key, at))
    seconds = sorted(
        (first[(m, a)] - at).total_seconds() for m, a, at in conn.execute(routed) if (m, a) in first
    )
    return {
        "acknowledged": len(seconds),
        "acknowledgement_seconds": {"p50": _rank(seconds, 50), "p90": _rank(seconds, 90)},
    }


def _rank(values: list[float], percent: int) -> float | None:
    """Nearest-rank percentile (no interpolation): a time some alert actually took."""
    if not values:
        return None
    return values[max(0, math.ceil(percent / 100 * len(values)) - 1)]
