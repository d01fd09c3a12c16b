"""Designated-contact routing inside the gateway (the Dunedin scheme).

Three calls join the gateway's steps (broker/gateway/pipeline.py), each for the whole
batch in a worker thread:

    5b subscribers  the agencies already informed about each offender (pushed updates)
    6b route        the offender registry first (Corrections' order.status, csp.update: a
                    placement counts from that message on, an order ending closes the
                    offender's plans, a plan's life is kept in the CSP register); then
                    a risk.alert or needs.notification goes, per recipient agency, to the
                    designated contact for (the offender's current area, topic) on
                    s284.alert.<agency>.<contact>, or to the agency's duty inbox with a
                    reason (re-signed into the alert frame, so the duty inbox reads why):
                    a new `Routed` record, whose deliveries carry their `Route`
    7b committed    after the records are durable and before anything is published, in one
                    transaction each: the alert rows (an acknowledgement deadline drives
                    escalation, so timers survive a restart), the request register's
                    notices, requests and answers (broker/gateway/requests.py) and each
                    recipient's subscription to the offender (later updates are pushed to
                    it, step 5b; never to the Authority)

A redelivered batch repeats them idempotently (alerts keyed by delivery id). The store
raises `RoutingUnavailableError` when its database is down; the gateway then retries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from broker.gateway import requests
from broker.gateway.stages import Delivery, Item, Recorded, Retry, Routed, Sealed
from broker.nats.config import alert_subject
from broker.wire.envelope import Agency, Envelope, Kind
from broker.wire.keys import Identity
from broker.wire.payloads import UNRECOGNISED, breach_action
from broker.wire.sealing import with_route_reason
from routing import CSP_STATUSES, ORDER_ENDED, NewAlert, RequestRow, RoutingStore, Topic

log = structlog.get_logger("s284.routing")

ROUTED_KINDS = frozenset({Kind.RISK_ALERT, Kind.NEEDS_NOTIFICATION})
VICTORIA = ZoneInfo("Australia/Melbourne")


def topic_of(env: Envelope) -> Topic:
    return Topic(env.topic) if env.topic is not None else Topic.RISK


class AlertRouting:
    """The gateway's routing steps; synchronous: the gateway calls them in a worker thread."""

    def __init__(self, store: RoutingStore, gateway: Identity | None = None) -> None:
        self._store = store
        self._gateway = gateway  # signs the route reason into alerts parked at a duty inbox

    def subscribers(self, offenders: Iterable[str]) -> dict[str, frozenset[Agency]]:
        """5b's input: offender -> the agencies already informed about them."""
        following = self._store.subscriptions.of(offenders)
        return {ref: frozenset(Agency(a) for a in agencies) for ref, agencies in following.items()}

    def requests_of(self, request_ids: list[str]) -> dict[str, list[RequestRow]]:
        """5a's input: the register's rows of the requests a batch's answers name."""
        return self._store.requests.of(request_ids) if request_ids else {}

    def route(self, items: list[Item]) -> list[Item]:
        """6b, in ingress order: a placement (order.status) takes effect before an alert
        behind it in the same batch is routed."""
        return [self._routed(item) if isinstance(item, Sealed) else item for item in items]

    def _routed(self, item: Sealed) -> Routed:
        env, at = item.decided.envelope, item.msg.stored_at
        self._registry(env, item.decided.opened.content.payload, at)
        if env.kind not in ROUTED_KINDS:
            return Routed(item.decided, item.deliveries)
        return Routed(item.decided, tuple(self._to_contact(d, env, at) for d in item.deliveries))

    def _to_contact(self, delivery: Delivery, env: Envelope, at: datetime) -> Delivery:
        recipient = delivery.ref.recipient.value
        route = self._store.resolve(recipient, env.offender, topic_of(env), at)
        ref = delivery.ref.model_copy(
            update={"contact": route.contact_id, "route_reason": route.reason}
        )
        subject = alert_subject(recipient, route.contact_id)
        frame = delivery.frame
        if route.duty and route.reason and self._gateway is not None:
            frame = with_route_reason(frame, route.reason, self._gateway)
        return dataclasses.replace(delivery, ref=ref, subject=subject, route=route, frame=frame)

    def committed(self, items: list[Item]) -> None:
        """7b: alert rows and subscriptions of the whole batch, each in one transaction."""
        recorded = [item for item in items if isinstance(item, Recorded)]
        self._store.open_alert_batch(_new_alerts(recorded))
        self._store.requests.open(requests.opened(recorded))  # notices, information requests
        self._store.requests.answer(requests.answers(recorded))
        answered = [item.msg.stored_at for item in items if not isinstance(item, Retry)]
        self._store.subscriptions.add(  # only first disclosures: no write in steady state
            (
                (item.routed.decided.envelope.offender, d.ref.recipient.value)
                for item in recorded
                for d in item.routed.deliveries
                if d.ref.recipient not in item.routed.decided.subscribers
                and d.ref.recipient is not Agency.PSA  # the Authority follows no offender
            ),
            max(answered, default=datetime.now(UTC)),
        )

    def _registry(self, env: Envelope, payload: dict[str, Any], at: datetime) -> None:
        if env.kind is Kind.ORDER_BREACH:  # whoever reports it: the breach register
            self._breach(env, payload, at)
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
                at,
            )
            if env.order_status.value == ORDER_ENDED:
                self._store.close_csps(env.offender, _day(env), "the order ended")
        elif env.kind is Kind.CSP_UPDATE:
            self._csp_event(env, payload)

    def _csp_event(self, env: Envelope, payload: dict[str, Any]) -> None:
        """A plan created, endorsed, reviewed or closed (docs/wire-format.md, csp.update).
        The payload is already disclosed and recorded: one it cannot place in the register
        is logged for the operator, never refused after the fact."""
        status = payload.get("csp_status") or ("reviewed" if "reviewed_on" in payload else None)
        day = payload.get("status_on") or payload.get("reviewed_on")
        try:
            on = date.fromisoformat(str(day)) if day is not None else _day(env)
        except ValueError:
            log.warning("csp_update_bad_date", message_id=env.id)
            return
        if status not in CSP_STATUSES:
            log.warning("csp_update_bad_status", message_id=env.id)
            return
        csp_id = str(payload.get("csp_id") or env.id)
        self._store.record_csp_event(env.offender, csp_id, str(status), on)


    def _breach(self, env: Envelope, payload: dict[str, Any], at: datetime) -> None:
        """An order.breach and the action taken (docs/wire-format.md). Already disclosed and
        recorded: an action outside the vocabulary is counted as `unrecognised` and logged
        for the operator, never refused after the fact."""
        action = breach_action(payload.get("action"))
        if action == UNRECOGNISED:
            log.warning("breach_bad_action", message_id=env.id)
        self._store.record_breach(env.id, env.offender, env.sender.agency.value, action, at)


def _day(env: Envelope) -> date:
    """The day a message was made, in Victoria: a plan's or order's event date by default."""
    return env.created_at.astimezone(VICTORIA).date()


def _new_alerts(recorded: list[Recorded]) -> list[NewAlert]:
    return [
        NewAlert(
            d.ref.delivery_id,
            env.id,
            d.route,
            env.offender,
            topic_of(env),
            env.sender.agency.value,
            env.purpose.value,
            item.msg.stored_at,
            d.frame,
        )
        for item in recorded
        for env in [item.routed.decided.envelope]
        for d in item.routed.deliveries
        if d.route is not None
    ]
