"""Oversight figures the registers give: CSPs developed and agreed, CSP reviews due, done
on time, done late and overdue, and breaches by the action taken (docs/oversight.md 2.4).

Why from the registers and not from audit events: a plan's dates are the dates Corrections
states (`status_on`), not when the broker saw the message, and a review's due date is the
register's own rule (six months from endorsement or the last review); the log already holds
each csp.update and order.breach as a disclosure. The register keeps every applied status
event with the due date in force when it came (routing_csp_events), so the figures are
counted from structured rows, never from payloads. The oversight API, console and
`s284 stats` join them to the log's figures (`join_register_figures`).

A review due date D counts in the period when D falls in it (and the plan was not closed
on or before D). Its outcome: `on_time` when the plan was reviewed (or endorsed again) on
or before D, `late` when after D (at any time up to now), `overdue` when not yet and D has
passed, `not_yet_due` otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, select

from routing._db import from_db
from routing._schema import routing_breaches, routing_csp_events

_E = routing_csp_events.c
_B = routing_breaches.c
_MEETS = frozenset({"endorsed", "reviewed"})  # an event that completes the review due
NOW_COMPUTABLE = ("csps_developed_and_agreed", "csp_reviews_done_on_time", "breach_actions")


def register_figures(engine: Engine, start: datetime, end: datetime, today: date) -> dict[str, Any]:
    """The registers' figures for `[start, end)`; `today` decides what is overdue."""
    with engine.connect() as conn:
        events = conn.execute(
            select(_E.csp_id, _E.status, _E.status_on, _E.due_before, _E.due_after)
        ).all()
        breaches = conn.execute(select(_B.action, _B.reported_at)).all()
    first_day, last_day = _days(start, end)
    return {
        "csp": {
            **_plans(events, first_day, last_day),
            **_reviews(events, first_day, last_day, today),
        },
        "breaches": _breaches(breaches, start, end),
    }


def _days(start: datetime, end: datetime) -> tuple[date, date]:
    """The period as days, both included: a day counts when its midnight (UTC) is in
    `[start, end)`, so the whole days a person asked for are exactly those."""
    return _midnight_on_or_after(start), _midnight_on_or_after(end) - timedelta(days=1)


def _midnight_on_or_after(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return utc.date() if utc.time() == time() else utc.date() + timedelta(days=1)


def _plans(events: Sequence[Any], first: date, last: date) -> dict[str, int]:
    """Plans whose first `created` / first `endorsed` event falls in the period."""
    firsts: dict[tuple[str, str], date] = {}
    for e in events:
        key = (e.csp_id, e.status)
        firsts[key] = min(e.status_on, firsts.get(key, e.status_on))
    created = sum(1 for (_, s), on in firsts.items() if s == "created" and first <= on <= last)
    agreed = sum(1 for (_, s), on in firsts.items() if s == "endorsed" and first <= on <= last)
    return {"developed": created, "agreed": agreed}


def _reviews(events: Sequence[Any], first: date, last: date, today: date) -> dict[str, Any]:
    due = {(e.csp_id, e.due_after) for e in events if e.due_after is not None}
    met: dict[tuple[str, date], date] = {}
    dropped: set[tuple[str, date]] = set()
    for e in events:
        if e.due_before is None:
            continue
        key = (e.csp_id, e.due_before)
        if e.status in _MEETS:
            met[key] = min(e.status_on, met.get(key, e.status_on))
        elif e.status == "closed" and e.status_on <= e.due_before:
            dropped.add(key)
    outcomes: Counter[str] = Counter()
    for key in due - dropped:
        if not first <= key[1] <= last:
            continue
        outcomes[_outcome(key[1], met.get(key), today)] += 1
    names = ("on_time", "late", "overdue", "not_yet_due")
    return {"reviews_due": sum(outcomes.values()), **{f"reviews_{n}": outcomes[n] for n in names}}


def _outcome(due: date, done: date | None, today: date) -> str:
    if done is not None:
        return "on_time" if done <= due else "late"
    return "overdue" if due < today else "not_yet_due"


def _breaches(rows: Sequence[Any], start: datetime, end: datetime) -> dict[str, Any]:
    by_action: Counter[str] = Counter()
    for action, at in rows:
        moment = from_db(at)
        if moment is not None and start <= moment < end:
            by_action[action] += 1
    return {"total": sum(by_action.values()), "by_action": dict(sorted(by_action.items()))}


def join_register_figures(figures: dict[str, Any], register: dict[str, Any]) -> dict[str, Any]:
    """The log's figures (audit's `statistics`) with the registers' joined in: the CSP
    figures beside the reminders, `breaches` beside the Dunedin figures, and the figures
    now computed taken off `not_computable`."""
    joined = {k: v for k, v in figures.items() if k != "not_computable"}
    joined["csp"] = {**figures.get("csp", {}), **register["csp"]}
    joined["breaches"] = register["breaches"]
    pending = dict(figures.get("not_computable", {}))
    for name in NOW_COMPUTABLE:
        pending.pop(name, None)
    joined["not_computable"] = pending
    return joined
