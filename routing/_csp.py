"""Coordinated services plans: the register of each plan's life (created, endorsed,
reviewed, closed, from Corrections' csp.update events; closed too when the offender's order
ends), review due dates (six months from endorsement or the last review, the Act's minimum
interval), the 30-day, 14-day and due-date notices, each sent once, and the check that every
offender the Act says needs a plan has a current one."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import Engine, delete, select

from routing._db import upsert, writing
from routing._errors import RoutingError
from routing._model import CspNotice, CspPlan, CspReview, CspStatus, Milestone, MissingPlan
from routing._schema import (
    routing_csp_events,
    routing_csp_notices,
    routing_csp_plans,
    routing_csp_reviews,
    routing_offenders,
)

REVIEW_MONTHS = 6
MILESTONES: tuple[Milestone, ...] = get_args(Milestone)  # in the order they arrive
_BEFORE = {"30d": 30, "14d": 14, "due": 0}
CSP_STATUSES: tuple[CspStatus, ...] = get_args(CspStatus)
# Orders under which the Act expects a plan: a supervision order, an interim one, or an
# application pending (for a supervision or detention order).
NEEDS_PLAN = frozenset({"supervision_order", "interim_supervision_order", "application_pending"})
ORDER_ENDED = "none"
_R = routing_csp_reviews.c
_P = routing_csp_plans.c
_O = routing_offenders.c


def add_months(day: date, months: int) -> date:
    """Same day `months` later, or that month's last day (31 Aug + 6 months = end of Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def milestone_date(due: date, milestone: Milestone) -> date:
    return due - timedelta(days=_BEFORE[milestone])


class CspBook:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, offender: str, csp_id: str, reviewed_at: date) -> CspReview:
        """Keep the latest review; an older one arriving late changes nothing."""
        due = add_months(reviewed_at, REVIEW_MONTHS)
        stmt = upsert(self._engine, routing_csp_reviews)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_R.csp_id],
            set_={
                "offender": stmt.excluded.offender,
                "last_review": stmt.excluded.last_review,
                "due": stmt.excluded.due,
            },
            where=_R.last_review < stmt.excluded.last_review,
        )
        row = {"csp_id": csp_id, "offender": offender, "last_review": reviewed_at, "due": due}
        with writing(self._engine) as conn:
            conn.execute(stmt, row)
            stored = conn.execute(select(routing_csp_reviews).where(_R.csp_id == csp_id)).one()
        return _review(stored)

    def apply(self, offender: str, csp_id: str, status: str, on: date) -> CspPlan:
        """One csp.update: the plan moves to `status` as of `on`. An event dated before the
        plan's latest changes nothing (a late arrival); endorsing or reviewing sets the next
        review six months on; closing stops the reminders."""
        if status not in CSP_STATUSES:
            allowed = ", ".join(CSP_STATUSES)
            raise RoutingError("routing.bad_csp_status", f"csp_status must be one of {allowed}")
        with writing(self._engine) as conn:
            row = conn.execute(select(routing_csp_plans).where(_P.csp_id == csp_id)).first()
        if row is not None and row.status_on > on:
            return _plan(row)
        due_before = self._due(csp_id)
        endorsed = on if status == "endorsed" else (row.endorsed_on if row is not None else None)
        plan = {
            "csp_id": csp_id,
            "offender": offender,
            "status": status,
            "status_on": on,
            "endorsed_on": endorsed,
            "closed_reason": "closed by Corrections" if status == "closed" else None,
        }
        self._put_plan(plan)
        due_after = None
        if status in {"endorsed", "reviewed"}:
            due_after = self.record(offender, csp_id, on).due
        elif status == "closed":
            self._stop_reviews(csp_id)
        self._event(offender, csp_id, status, on, due_before, due_after)
        return CspPlan(**plan)  # type: ignore[arg-type]

    def close_for_offender(self, offender: str, on: date, reason: str) -> list[CspPlan]:
        """The offender's order ended: every open plan closes and its reminders stop."""
        with writing(self._engine) as conn:
            rows = conn.execute(
                select(routing_csp_plans).where(_P.offender == offender, _P.status != "closed")
            ).all()
        closed = []
        for row in rows:
            plan = {**row._asdict(), "status": "closed", "status_on": on, "closed_reason": reason}
            due_before = self._due(row.csp_id)
            self._put_plan(plan)
            self._stop_reviews(row.csp_id)
            self._event(offender, row.csp_id, "closed", on, due_before, None)
            closed.append(CspPlan(**plan))
        with writing(self._engine) as conn:  # plans only the review table knew (older homes)
            conn.execute(delete(routing_csp_reviews).where(_R.offender == offender))
        return closed

    def plans(self, offender: str | None = None) -> list[CspPlan]:
        query = select(routing_csp_plans).order_by(_P.offender, _P.csp_id)
        if offender is not None:
            query = query.where(_P.offender == offender)
        with self._engine.connect() as conn:
            return [_plan(r) for r in conn.execute(query)]

    def missing(self) -> list[MissingPlan]:
        """Offenders on an order that needs a plan, with no current one (endorsed or reviewed
        and not closed; a review date recorded before the register existed counts too)."""
        with self._engine.connect() as conn:
            offenders = conn.execute(
                select(_O.ref, _O.order_status, _O.managing_officer)
                .where(_O.order_status.in_(NEEDS_PLAN))
                .order_by(_O.ref)
            ).all()
            plans = conn.execute(select(_P.offender, _P.csp_id, _P.status)).all()
            reviewed = {r.offender for r in conn.execute(select(_R.offender))}
        current = reviewed | {p.offender for p in plans if p.status in {"endorsed", "reviewed"}}
        return [
            MissingPlan(
                o.ref,
                o.order_status,
                o.managing_officer,
                tuple(p.csp_id for p in plans if p.offender == o.ref and p.status == "created"),
            )
            for o in offenders
            if o.ref not in current
        ]

    def _put_plan(self, plan: dict[str, Any]) -> None:
        stmt = upsert(self._engine, routing_csp_plans)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_P.csp_id],
            set_={k: getattr(stmt.excluded, k) for k in plan if k != "csp_id"},
        )
        with writing(self._engine) as conn:
            conn.execute(stmt, plan)

    def _due(self, csp_id: str) -> date | None:
        """The review due date in force for the plan now (None: none set, or closed)."""
        with self._engine.connect() as conn:
            due = conn.execute(select(_R.due).where(_R.csp_id == csp_id)).scalar_one_or_none()
        return due if isinstance(due, date) else None

    def _event(
        self,
        offender: str,
        csp_id: str,
        status: str,
        on: date,
        due_before: date | None,
        due_after: date | None,
    ) -> None:
        """Keep the event in the plan's history (routing/_csp_stats.py counts from it)."""
        row = {
            "csp_id": csp_id,
            "offender": offender,
            "status": status,
            "status_on": on,
            "due_before": due_before,
            "due_after": due_after,
        }
        stmt = upsert(self._engine, routing_csp_events).on_conflict_do_nothing()
        with writing(self._engine) as conn:
            conn.execute(stmt, row)

    def _stop_reviews(self, csp_id: str) -> None:
        with writing(self._engine) as conn:
            conn.execute(delete(routing_csp_reviews).where(_R.csp_id == csp_id))

    def reviews(self, *conditions: Any) -> list[CspReview]:
        query = select(routing_csp_reviews).where(*conditions).order_by(_R.due, _R.csp_id)
        with self._engine.connect() as conn:
            return [_review(r) for r in conn.execute(query)]

    def notices_due(self, today: date) -> list[CspNotice]:
        """Per plan, the latest milestone that has arrived, unless it or a later one was sent.

        After downtime that spans several milestones only the latest is sent: three
        notices at once about one plan would say nothing the last does not.
        """
        with self._engine.connect() as conn:
            sent = {
                (r.csp_id, r.due, r.milestone) for r in conn.execute(select(routing_csp_notices))
            }
        notices = []
        for review in self.reviews():
            arrived = [m for m in MILESTONES if milestone_date(review.due, m) <= today]
            if not arrived:
                continue
            latest = arrived[-1]
            later = MILESTONES[MILESTONES.index(latest) :]
            if not any((review.csp_id, review.due, m) in sent for m in later):
                notices.append(CspNotice(review.offender, review.csp_id, review.due, latest))
        return notices

    def mark_sent(self, notice: CspNotice) -> None:
        row = {
            "csp_id": notice.csp_id,
            "due": notice.due,
            "milestone": notice.milestone,
            "sent_at": datetime.now(UTC),
        }
        with writing(self._engine) as conn:
            conn.execute(upsert(self._engine, routing_csp_notices).on_conflict_do_nothing(), row)


def _plan(row: Any) -> CspPlan:
    return CspPlan(
        row.offender, row.csp_id, row.status, row.status_on, row.endorsed_on, row.closed_reason
    )


def _review(row: Any) -> CspReview:
    return CspReview(row.offender, row.csp_id, row.last_review, row.due)
