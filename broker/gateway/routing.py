"""Designated-contact routing inside the gateway (the Dunedin scheme).

Two steps join the gateway's pipeline for every batch (both in a worker thread):

    6b route      the offender registry first (Corrections' order.status, csp.update: a
                  placement counts from that message on); then a risk.alert or
                  needs.notification goes, per recipient agency, to the
                  designated contact for (the offender's current area, topic) on
                  s284.alert.<agency>.<contact>, or to the agency's duty inbox with a reason;
                  an `alert_routed` record joins the disclosure records
    7b committed  after the records are durable and before anything is published, in one
                  transaction each: the alert rows (an acknowledgement deadline drives
                  escalation, so timers survive a restart) and each recipient's
                  subscription to the offender (later updates are pushed to it, step 5b)

A redelivered batch repeats both idempotently (alerts keyed by delivery id).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import structlog

from audit import AuditRecord, Event
from broker.gateway.stages import Work
from broker.ids import new_id
from broker.nats.config import alert_subject
from broker.wire.envelope import Agency, Envelope, Kind
from routing import NewAlert, Route, RoutingStore, Topic

log = structlog.get_logger("s284.routing")

ROUTED_KINDS = frozenset({Kind.RISK_ALERT, Kind.NEEDS_NOTIFICATION})


def topic_of(env: Envelope) -> Topic:
    return Topic(env.topic) if env.topic is not None else Topic.RISK


class AlertRouting:
    """The gateway's routing steps; synchronous, called through the gateway's DB guard."""

    def __init__(self, store: RoutingStore) -> None:
        self._store = store

    def find_subscribers(self, works: list[Work]) -> None:
        """5b's input: the agencies already informed about each message's offender."""
        opened = [w for w in works if w.content is not None and w.refusal is None]
        following = self._store.subscriptions.of(
            w.content.envelope.offender for w in opened if w.content
        )
        for work in opened:
            if work.content is not None:
                agencies = following.get(work.content.envelope.offender, set())
                work.subscribers = {Agency(a) for a in agencies}

    def route(self, works: list[Work]) -> None:
        """In ingress order: a placement (order.status) takes effect before an alert behind
        it in the same batch is routed."""
        for work in works:
            content = work.content if work.refusal is None else None
            if content is None:
                continue
            self._registry(work, content.envelope, content.payload)
            if content.envelope.kind in ROUTED_KINDS:
                self._route_work(work)

    def _route_work(self, work: Work) -> None:
        if work.content is None:
            return
        env = work.content.envelope
        for index, (_, frame, ref) in enumerate(work.deliveries):
            route = self._store.resolve(
                ref.recipient.value, env.offender, topic_of(env), work.msg.stored_at
            )
            work.routes[ref.delivery_id] = route
            contact_ref = ref.model_copy(
                update={"contact": route.contact_id, "route_reason": route.reason}
            )
            subject = alert_subject(ref.recipient.value, route.contact_id)
            work.deliveries[index] = (subject, frame, contact_ref)
            self._annotate_records(work, ref.recipient, route)

    @staticmethod
    def _annotate_records(work: Work, recipient: Agency, route: Route) -> None:
        for i, record in enumerate(work.records):
            if record.event == Event.DISCLOSED and record.recipient_agency == recipient.value:
                work.records[i] = dataclasses.replace(record, recipient_contact=route.contact_id)
                work.records.append(routed_record(work.records[i], route, level=0))
                return

    def committed(self, works: list[Work]) -> None:
        """Alert rows and subscriptions of the whole batch, each in one transaction."""
        accepted = [w for w in works if w.refusal is None and w.content is not None]
        self._store.open_alert_batch(_new_alerts(accepted))
        self._store.subscriptions.add(  # only first disclosures: no write in steady state
            (
                (w.content.envelope.offender, ref.recipient.value)
                for w in accepted
                if w.content is not None
                for _, _, ref in w.deliveries
                if ref.recipient not in w.subscribers
            ),
            max((w.msg.stored_at for w in works), default=datetime.now(UTC)),
        )

    def _registry(self, work: Work, env: Envelope, payload: dict[str, Any]) -> None:
        if env.sender.agency is not Agency.CORRECTIONS:
            return
        if env.kind is Kind.ORDER_STATUS:
            area = payload.get("area")
            officer = payload.get("managing_officer") or env.sender.person_id
            self._store.set_offender(
                env.offender,
                str(officer),
                Agency.CORRECTIONS.value,
                area if isinstance(area, str) and area else None,
                env.order_status.value,
                work.msg.stored_at,
            )
        elif env.kind is Kind.CSP_UPDATE:
            csp_id, reviewed = payload.get("csp_id"), payload.get("reviewed_on")
            try:
                on = date.fromisoformat(str(reviewed))
            except ValueError:
                log.warning("csp_update_without_review_date", message_id=env.id)
                return
            self._store.record_csp_review(env.offender, str(csp_id or env.id), on)


def _new_alerts(works: list[Work]) -> list[NewAlert]:
    alerts = []
    for work in works:
        if work.content is None:
            continue
        env = work.content.envelope
        for _, frame, ref in work.deliveries:
            route = work.routes.get(ref.delivery_id)
            if route is not None:
                alerts.append(
                    NewAlert(
                        ref.delivery_id,
                        env.id,
                        route,
                        env.offender,
                        topic_of(env),
                        env.sender.agency.value,
                        env.purpose.value,
                        work.msg.stored_at,
                        frame,
                    )
                )
    return alerts


def routed_record(disclosed: AuditRecord, route: Route, level: int) -> AuditRecord:
    """The `alert_routed` record beside a disclosure: who it went to, and why there."""
    where = "the agency's duty inbox" if route.duty else "the designated contact"
    step = ("", " (escalated to the deputy)", " (escalated to the duty inbox)")[level]
    return dataclasses.replace(
        disclosed,
        record_id=new_id(),
        dedupe_key=f"alert_routed:{disclosed.message_id}:{disclosed.recipient_agency}:{level}",
        event=Event.ALERT_ROUTED.value,
        recipient_contact=route.contact_id,
        reason_code=route.reason,
        reason=f"routed to {where}{step}",
        withheld=(),
    )
