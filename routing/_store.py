"""The routing store: versioned routing table, offender registry, resolution, gaps,
alerts and CSP reviews, through SQLAlchemy Core (SQLite or PostgreSQL).

Synchronous, like the audit store: the broker calls it from a worker thread.

Just over the ~400-line norm: it is the store's one public class (its methods are the
routing face); the pieces with their own logic already live in _alerts, _csp,
_csp_stats, _breaches, _table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from routing._alerts import Alerts, Holder, NewAlert, is_due
from routing._breaches import record_breach
from routing._csp import CspBook
from routing._csp_stats import register_figures
from routing._db import from_db, open_engine, unavailable_on_db_error, upsert, writing
from routing._errors import RoutingError
from routing._hours import aware_utc
from routing._model import (
    DUTY,
    LEVEL_CONTACT,
    LEVEL_DEPUTY,
    LEVEL_DUTY,
    Alert,
    AlertStatus,
    AlertStep,
    CspNotice,
    CspPlan,
    CspReview,
    CspReviewer,
    Gap,
    MissingPlan,
    Offender,
    Route,
    RouteRow,
    TableChange,
    TableVersion,
    Topic,
)
from routing._requests import RequestRegister
from routing._schema import (
    metadata,
    routing_alerts,
    routing_csp_reviews,
    routing_offender_history,
    routing_offenders,
    routing_tables,
)
from routing._subscriptions import Subscriptions
from routing._table import RouteTable, diff, parse_table

NO_AREA = "routing.no_area"
NO_CONTACT = "routing.no_contact"
CONTACT_INACTIVE = "routing.contact_inactive"

_T = routing_tables.c
_H = routing_offender_history.c


def canonical_json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class RoutingStore:
    """Designated-contact routing through SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._alerts = Alerts(engine)
        self._csp = CspBook(engine)
        self.subscriptions = Subscriptions(engine)
        self.requests = RequestRegister(engine)  # notices and information requests
        self._cached: tuple[int, RouteTable] | None = None

    @classmethod
    def open(cls, url: str) -> RoutingStore:
        """Connect and create the routing tables if missing."""
        engine = open_engine(url)
        with writing(engine, serial=True) as conn:  # two processes starting at once
            metadata.create_all(conn)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- the routing table, versioned ---------------------------------------------------

    @unavailable_on_db_error
    def import_table(self, doc: dict[str, Any], actor: str) -> TableChange:
        """Check `doc` and store it whole as the next version; say what changed."""
        if not actor:
            raise RoutingError("routing.bad_table", "the actor importing the table is required")
        table = parse_table(doc)
        canonical = canonical_json(table.to_doc())
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        at = datetime.now(UTC)
        with writing(self.engine, serial=True) as conn:
            head = conn.execute(select(routing_tables).order_by(_T.version.desc()).limit(1))
            previous = head.first()
            version = previous.version + 1 if previous else 1
            conn.execute(
                insert(routing_tables).values(
                    version=version, actor=actor, at=at, doc=canonical, digest=digest
                )
            )
        before = parse_table(json.loads(previous.doc)) if previous else None
        added, removed, changed = diff(before, table)
        return TableChange(
            version=version,
            previous_version=previous.version if previous else None,
            actor=actor,
            at=at,
            digest_before=previous.digest if previous else None,
            digest_after=digest,
            added=added,
            removed=removed,
            changed=changed,
        )

    @unavailable_on_db_error
    def export_table(self) -> dict[str, Any]:
        """The current table in its canonical form: importing it changes nothing."""
        return self._table_or_fail().to_doc()

    def table_version(self, version: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            doc = conn.execute(select(_T.doc).where(_T.version == version)).scalar_one_or_none()
        if doc is None:
            raise RoutingError("routing.unknown_version", f"no routing table version {version}")
        loaded: dict[str, Any] = json.loads(doc)
        return loaded

    def versions(self) -> list[TableVersion]:
        query = select(_T.version, _T.actor, _T.at, _T.digest).order_by(_T.version)
        with self.engine.connect() as conn:
            return [
                TableVersion(r.version, r.actor, _aware(r.at), r.digest)
                for r in conn.execute(query)
            ]

    def rows(self) -> list[RouteRow]:
        table = self._table()
        return list(table.rows) if table else []

    def scheme_needs(self) -> list[tuple[str, str, Topic]]:
        """Every (agency, area, topic) the scheme needs covered: areas x needs."""
        table = self._table()
        return table.needed() if table else []

    def csp_reviewers(self) -> list[CspReviewer]:
        table = self._table()
        return list(table.csp_reviewers) if table else []

    def _table(self) -> RouteTable | None:
        """The current table, parsed once per version (another process may import)."""
        with self.engine.connect() as conn:
            version = conn.execute(select(_T.version).order_by(_T.version.desc()).limit(1))
            current = version.scalar_one_or_none()
            if current is None:
                return None
            cached = self._cached
            if cached is not None and cached[0] == current:
                return cached[1]
            doc = conn.execute(select(_T.doc).where(_T.version == current)).scalar_one()
        table = parse_table(json.loads(doc))
        self._cached = (current, table)
        return table

    def _table_or_fail(self) -> RouteTable:
        table = self._table()
        if table is None:
            raise RoutingError("routing.no_table", "no routing table has been imported")
        return table

    # -- the offender registry ----------------------------------------------------------

    @unavailable_on_db_error
    def set_offender(
        self,
        ref: str,
        managing_officer: str,
        managing_agency: str,
        area: str | None,
        order_status: str,
        at: datetime,
    ) -> Offender:
        """Record the offender's state as of `at`; the latest `at` is the current one."""
        row = {
            "ref": ref,
            "managing_officer": managing_officer,
            "managing_agency": managing_agency,
            "area": area,
            "order_status": order_status,
            "updated_at": aware_utc(at),
        }
        stmt = upsert(self.engine, routing_offenders)
        stmt = stmt.on_conflict_do_update(
            index_elements=[routing_offenders.c.ref],
            set_={k: stmt.excluded[k] for k in row if k != "ref"},
            where=routing_offenders.c.updated_at <= stmt.excluded.updated_at,
        )
        with writing(self.engine) as conn:
            conn.execute(insert(routing_offender_history), row)
            conn.execute(stmt, row)
        return _offender(row)

    @unavailable_on_db_error
    def offender(self, ref: str) -> Offender | None:
        query = select(routing_offenders).where(routing_offenders.c.ref == ref)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _offender(row._asdict()) if row is not None else None

    def offender_at(self, ref: str, when: datetime) -> Offender | None:
        """The offender as the registry knew them at `when` (None before the first record)."""
        query = (
            select(routing_offender_history)
            .where(_H.ref == ref, _H.updated_at <= aware_utc(when))
            .order_by(_H.updated_at.desc(), _H.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _offender(row._asdict()) if row is not None else None

    # -- resolution and gaps ------------------------------------------------------------

    @unavailable_on_db_error
    def resolve(self, agency: str, offender_ref: str, topic: Topic | str, at: datetime) -> Route:
        """The designated contact for this agency, the offender's area at `at`, and topic.

        Never fails for want of a contact: falls back to the agency's duty inbox with
        a reason code (no area, nobody covers it, contact deactivated).
        """
        need = _topic(topic)
        known = self.offender_at(offender_ref, at) or self.offender(offender_ref)
        area = known.area if known else None
        if area is None:
            return _duty(agency, None, need, NO_AREA)
        table = self._table()
        row = table.row(agency, area, need) if table else None
        if row is None:
            return _duty(agency, area, need, NO_CONTACT)
        if not row.active:
            return _duty(agency, area, need, CONTACT_INACTIVE)
        deadline = row.hours.add_working(at, row.ack_within_min)
        deputy = row.deputy.id if row.deputy else None
        return Route(agency, area, need, row.contact.id, deputy, deadline, duty=False)

    @unavailable_on_db_error
    def check(self) -> list[Gap]:
        """Needs without an active contact, then open alerts parked at a duty inbox."""
        gaps = []
        table = self._table()
        for agency, area, topic in table.needed() if table else []:
            row = table.row(agency, area, topic) if table else None
            if row is None or not row.active:
                reason = NO_CONTACT if row is None else CONTACT_INACTIVE
                gaps.append(Gap(agency, area, topic, reason))
        parked = self._alerts.select_open(routing_alerts.c.route_reason.is_not(None))
        gaps.extend(
            Gap(a.agency, a.area, a.topic, a.route_reason or NO_CONTACT, a.alert_id) for a in parked
        )
        return gaps

    # -- alerts -------------------------------------------------------------------------

    def open_alert(
        self,
        alert_id: str,
        message_id: str,
        route: Route,
        offender: str,
        topic: Topic | str,
        sender_agency: str,
        purpose: str,
        created_at: datetime,
        frame: bytes,
    ) -> Alert:
        """Store a routed alert; a redelivered message returns the alert already stored."""
        new = NewAlert(
            alert_id,
            message_id,
            route,
            offender,
            _topic(topic),
            sender_agency,
            purpose,
            created_at,
            frame,
        )
        return self._alerts.open(new)

    @unavailable_on_db_error
    def open_alert_batch(self, news: Sequence[NewAlert]) -> int:
        """`open_alert` for a whole gateway batch, in one transaction."""
        return self._alerts.open_batch(list(news))

    @unavailable_on_db_error
    def alert(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def alert_frame(self, alert_id: str) -> bytes:
        return self._alerts.frame(alert_id)

    def alert_steps(self, alert_id: str) -> list[AlertStep]:
        """Opened, each escalation and the acknowledgement, oldest first."""
        return self._alerts.steps(alert_id)

    @unavailable_on_db_error
    def open_alerts(self, agency: str, contact_id: str | None = None) -> list[Alert]:
        """Unacknowledged alerts held by the agency (or one contact of it), newest first."""
        conditions = [routing_alerts.c.agency == agency]
        if contact_id is not None:
            conditions.append(routing_alerts.c.contact_id == contact_id)
        return self._alerts.select_open(*conditions)

    @unavailable_on_db_error
    def acknowledge(self, alert_id: str, by: str, at: datetime) -> Alert:
        return self._alerts.acknowledge(alert_id, by, at)

    def due_escalations(self, now: datetime) -> list[Alert]:
        """Open alerts whose holder's deadline has passed, oldest deadline first."""
        return self._alerts.due(now)

    def escalate(self, alert_id: str, now: datetime) -> Alert:
        """Escalate if due; either way return the alert as it now stands."""
        self.escalate_if_due(alert_id, now)
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise RoutingError("routing.unknown_alert", f"no alert {alert_id}")
        return alert

    def escalate_if_due(self, alert_id: str, now: datetime) -> Alert | None:
        """Escalate one level if due; None unless THIS call moved it (so only one
        worker re-publishes), which makes racing or repeated calls harmless."""
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise RoutingError("routing.unknown_alert", f"no alert {alert_id}")
        if not is_due(alert, now):
            return None
        return self._alerts.move(alert, self._next_holder(alert, now), now)

    def _next_holder(self, alert: Alert, now: datetime) -> Holder:
        duty = Holder(LEVEL_DUTY, AlertStatus.ESCALATED_DUTY, DUTY, None)
        if alert.level != LEVEL_CONTACT:
            return duty
        table = self._table()
        row = table.row(alert.agency, alert.area, alert.topic) if table and alert.area else None
        deputy = row.deputy.id if row and row.deputy else alert.deputy_id
        if deputy is None:
            return duty
        hours = row.hours if row else table.hours if table else None
        ack = row.ack_within_min if row else table.ack_within_min if table else None
        if hours is None or ack is None:
            return duty
        deadline = hours.add_working(now, ack)
        return Holder(LEVEL_DEPUTY, AlertStatus.ESCALATED_DEPUTY, deputy, deadline)

    # -- CSP reviews --------------------------------------------------------------------

    @unavailable_on_db_error
    def record_csp_review(self, offender: str, csp_id: str, reviewed_at: date) -> CspReview:
        """Record a review; the next is due six months later (the Act's minimum)."""
        return self._csp.record(offender, csp_id, reviewed_at)

    def csp_reviews(self) -> list[CspReview]:
        return self._csp.reviews()

    @unavailable_on_db_error
    def record_csp_event(self, offender: str, csp_id: str, status: str, on: date) -> CspPlan:
        """Corrections' csp.update: created, endorsed, reviewed or closed as of `on`."""
        return self._csp.apply(offender, csp_id, status, on)

    @unavailable_on_db_error
    def close_csps(self, offender: str, on: date, reason: str) -> list[CspPlan]:
        return self._csp.close_for_offender(offender, on, reason)

    @unavailable_on_db_error
    def csp_plans(self, offender: str | None = None) -> list[CspPlan]:
        return self._csp.plans(offender)

    @unavailable_on_db_error
    def csp_missing(self) -> list[MissingPlan]:
        """Offenders whose order needs a plan and who have no current one."""
        return self._csp.missing()

    @unavailable_on_db_error
    def overdue(self, today: date) -> list[CspReview]:
        """Plans whose review date has passed, most overdue first."""
        return self._csp.reviews(routing_csp_reviews.c.due < today)

    @unavailable_on_db_error
    def record_breach(
        self, message_id: str, offender: str, sender: str, action: str, at: datetime
    ) -> None:
        """An order.breach and the action taken (`breach_action` of its payload)."""
        record_breach(self.engine, message_id, offender, sender, action, at)

    @unavailable_on_db_error
    def register_figures(self, start: datetime, end: datetime, today: date) -> dict[str, Any]:
        """CSP and breach figures for `[start, end)` (routing/_csp_stats.py)."""
        return register_figures(self.engine, start, end, today)

    def csp_notices_due(self, today: date) -> list[CspNotice]:
        return self._csp.notices_due(today)

    def mark_csp_notice_sent(self, notice: CspNotice) -> None:
        self._csp.mark_sent(notice)


def _topic(topic: Topic | str) -> Topic:
    try:
        return Topic(topic)
    except ValueError:
        raise RoutingError("routing.unknown_topic", f"{topic!r} is not a topic") from None


def _duty(agency: str, area: str | None, topic: Topic, reason: str) -> Route:
    return Route(agency, area, topic, DUTY, None, None, duty=True, reason=reason)


def _aware(moment: datetime) -> datetime:
    value = from_db(moment)
    if value is None:
        raise RoutingError("routing.corrupt", "a required moment is missing")
    return value


def _offender(row: dict[str, Any]) -> Offender:
    return Offender(
        ref=row["ref"],
        managing_officer=row["managing_officer"],
        managing_agency=row["managing_agency"],
        area=row["area"],
        order_status=row["order_status"],
        updated_at=_aware(row["updated_at"]),
    )
