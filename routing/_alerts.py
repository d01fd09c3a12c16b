"""Routed alerts: opened once per (message, agency), acknowledged once, escalated by level.

Every change is a conditional UPDATE guarded by the state it expects, so two workers
racing on one alert cannot both move it, and nothing lives in memory: a restarted
process finds each alert's holder and deadline in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from routing._db import from_db, upsert, writing
from routing._errors import RoutingError
from routing._hours import aware_utc
from routing._model import LEVEL_CONTACT, LEVEL_DUTY, Alert, AlertStatus, AlertStep, Route, Topic
from routing._schema import routing_alert_steps, routing_alerts

_A = routing_alerts.c


@dataclass(frozen=True)
class Holder:
    """Who holds an alert after a step, and until when."""

    level: int
    status: AlertStatus
    contact_id: str
    deadline: datetime | None


@dataclass(frozen=True)
class NewAlert:
    alert_id: str
    message_id: str
    route: Route
    offender: str
    topic: Topic
    sender_agency: str
    purpose: str
    created_at: datetime
    frame: bytes


class Alerts:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def open(self, new: NewAlert) -> Alert:
        """Store the alert, or return the one already stored for (message id, agency)."""
        values = _new_row(new)
        stmt = upsert(self._engine, routing_alerts).on_conflict_do_nothing()
        with writing(self._engine) as conn:
            if conn.execute(stmt, values).rowcount:
                _step(conn, new.alert_id, values["created_at"], _holder_of(values))
            row = conn.execute(
                select(routing_alerts).where(
                    _A.message_id == new.message_id, _A.agency == new.route.agency
                )
            ).first()
        if row is None:
            raise RoutingError("routing.duplicate_alert_id", f"alert {new.alert_id} exists")
        return _alert(row)

    def open_batch(self, news: list[NewAlert]) -> int:
        """Store many alerts in one transaction (the gateway's group commit); alerts already
        stored for their (message id, agency) are left as they are. Returns how many new."""
        if not news:
            return 0  # most batches route nothing: no transaction, no fsync
        stmt = upsert(self._engine, routing_alerts).on_conflict_do_nothing()
        opened = 0
        with writing(self._engine) as conn:
            for new in news:
                values = _new_row(new)
                if conn.execute(stmt, values).rowcount:
                    _step(conn, new.alert_id, values["created_at"], _holder_of(values))
                    opened += 1
        return opened

    def get(self, alert_id: str) -> Alert | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(routing_alerts).where(_A.alert_id == alert_id)).first()
        return _alert(row) if row is not None else None

    def frame(self, alert_id: str) -> bytes:
        with self._engine.connect() as conn:
            frame = conn.execute(
                select(_A.frame).where(_A.alert_id == alert_id)
            ).scalar_one_or_none()
        if frame is None:
            raise RoutingError("routing.unknown_alert", f"no alert {alert_id}")
        return bytes(frame)

    def select_open(self, *conditions: Any, newest_first: bool = True) -> list[Alert]:
        order = _A.created_at.desc() if newest_first else _A.deadline.asc()
        query = (
            select(routing_alerts)
            .where(_A.status != AlertStatus.ACKNOWLEDGED.value, *conditions)
            .order_by(order, _A.alert_id)
        )
        with self._engine.connect() as conn:
            return [_alert(row) for row in conn.execute(query)]

    def due(self, now: datetime) -> list[Alert]:
        return self.select_open(
            _A.level < LEVEL_DUTY,
            _A.deadline.is_not(None),
            _A.deadline <= aware_utc(now),
            newest_first=False,
        )

    def steps(self, alert_id: str) -> list[AlertStep]:
        query = (
            select(routing_alert_steps)
            .where(routing_alert_steps.c.alert_id == alert_id)
            .order_by(routing_alert_steps.c.id)
        )
        with self._engine.connect() as conn:
            return [
                AlertStep(r.alert_id, _utc(r.at), r.level, r.contact_id, AlertStatus(r.status))
                for r in conn.execute(query)
            ]

    def acknowledge(self, alert_id: str, by: str, at: datetime) -> Alert:
        if not by:
            raise RoutingError("routing.bad_acknowledgement", "who acknowledged is required")
        when = aware_utc(at)
        stmt = (
            update(routing_alerts)
            .where(_A.alert_id == alert_id, _A.status != AlertStatus.ACKNOWLEDGED.value)
            .values(status=AlertStatus.ACKNOWLEDGED.value, acknowledged_by=by, acknowledged_at=when)
        )
        with writing(self._engine) as conn:
            acknowledged = conn.execute(stmt).rowcount
            if acknowledged:
                level = conn.execute(select(_A.level).where(_A.alert_id == alert_id)).scalar_one()
                _step(conn, alert_id, when, Holder(level, AlertStatus.ACKNOWLEDGED, by, None))
        alert = self.get(alert_id)
        if alert is None:
            raise RoutingError("routing.unknown_alert", f"no alert {alert_id}")
        if not acknowledged:
            raise RoutingError("routing.already_acknowledged", f"alert {alert_id}")
        return alert

    def move(self, alert: Alert, holder: Holder, now: datetime) -> Alert | None:
        """Hand a due alert on, unless someone else already did (then None)."""
        when = aware_utc(now)
        stmt = (
            update(routing_alerts)
            .where(
                _A.alert_id == alert.alert_id,
                _A.level == alert.level,
                _A.status != AlertStatus.ACKNOWLEDGED.value,
                _A.deadline <= when,
            )
            .values(
                level=holder.level,
                status=holder.status.value,
                contact_id=holder.contact_id,
                deadline=aware_utc(holder.deadline) if holder.deadline else None,
            )
        )
        with writing(self._engine) as conn:
            moved = conn.execute(stmt).rowcount
            if moved:
                _step(conn, alert.alert_id, when, holder)
        return self.get(alert.alert_id) if moved else None


def is_due(alert: Alert, now: datetime) -> bool:
    return (
        alert.is_open
        and alert.level < LEVEL_DUTY
        and alert.deadline is not None
        and alert.deadline <= aware_utc(now)
    )


def _new_row(new: NewAlert) -> dict[str, Any]:
    route = new.route
    return {
        "alert_id": new.alert_id,
        "message_id": new.message_id,
        "agency": route.agency,
        "area": route.area,
        "topic": Topic(new.topic).value,
        "contact_id": route.contact_id,
        "deputy_id": route.deputy_id,
        "offender": new.offender,
        "sender_agency": new.sender_agency,
        "purpose": new.purpose,
        "created_at": aware_utc(new.created_at),
        "deadline": aware_utc(route.deadline) if route.deadline else None,
        "status": AlertStatus.OPEN.value,
        "level": LEVEL_DUTY if route.duty else LEVEL_CONTACT,
        "route_reason": route.reason if route.duty else None,
        "frame": new.frame,
    }


def _holder_of(values: dict[str, Any]) -> Holder:
    status = AlertStatus(values["status"])
    return Holder(values["level"], status, values["contact_id"], values["deadline"])


def _step(conn: Connection, alert_id: str, at: datetime, holder: Holder) -> None:
    conn.execute(
        insert(routing_alert_steps).values(
            alert_id=alert_id,
            at=at,
            level=holder.level,
            contact_id=holder.contact_id,
            status=holder.status.value,
        )
    )


def _utc(moment: datetime) -> datetime:
    value = from_db(moment)
    if value is None:
        raise RoutingError("routing.corrupt", "a required moment is missing")
    return value


def _alert(row: Any) -> Alert:
    return Alert(
        alert_id=row.alert_id,
        message_id=row.message_id,
        agency=row.agency,
        contact_id=row.contact_id,
        offender=row.offender,
        topic=Topic(row.topic),
        sender_agency=row.sender_agency,
        purpose=row.purpose,
        created_at=_utc(row.created_at),
        deadline=from_db(row.deadline),
        status=AlertStatus(row.status),
        level=row.level,
        route_reason=row.route_reason,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=from_db(row.acknowledged_at),
        area=row.area,
        deputy_id=row.deputy_id,
    )
