"""Coordinated services plan reviews: due dates (six months, the Act's minimum review
interval) and the 30-day, 14-day and due-date notices, each sent once."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import Engine, select

from routing._db import upsert, writing
from routing._model import CspNotice, CspReview, Milestone
from routing._schema import routing_csp_notices, routing_csp_reviews

REVIEW_MONTHS = 6
MILESTONES: tuple[Milestone, ...] = get_args(Milestone)  # in the order they arrive
_BEFORE = {"30d": 30, "14d": 14, "due": 0}
_R = routing_csp_reviews.c


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


def _review(row: Any) -> CspReview:
    return CspReview(row.offender, row.csp_id, row.last_review, row.due)
