"""What happens to a routed alert after delivery: acknowledgement, the contact's reply,
escalation when nobody acknowledges in time, and CSP review reminders.

Every step is recorded in the disclosure log and told, as a signed, sealed notice
(broker/wire/notices.py), to the offender's managing officer at the managing agency the
registry names, or to Corrections' duty inbox with a reason when none is on record (the
Dunedin scheme: information flows back to the managing officer); acknowledgements and
escalations also to the alert's sender when that is another agency. Escalation and
reminder state lives in the routing store, so a restart of this process loses no timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime

import structlog

from audit import AuditRecord, AuditStore, records
from broker.auth import Principal
from broker.errors import NotYourAlertError, ReasonCode, Refusal, TransportError
from broker.ids import new_id
from broker.nats.config import alert_subject, notice_subject
from broker.nats.transport import Transport
from broker.wire.envelope import MAP_AGENCIES, Agency
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.notices import NoticeContent, seal_notice
from policies import EngineHolder, PolicyEngine, PolicyRequest
from routing import DUTY, Alert, CspNotice, RoutingStore

log = structlog.get_logger("s284.alerts")
AGENCY_VALUES = frozenset(a.value for a in MAP_AGENCIES)
NO_MANAGING_OFFICER = "offender.no_managing_officer"


@dataclass(frozen=True)
class BackTo:
    """Where information about an alert flows back to: an agency and its officer ("duty":
    the agency's duty inbox, then `reason` says why)."""

    agency: Agency
    officer: str
    reason: str | None


MANAGING_AGENCY = Agency.CORRECTIONS  # the managing officer sits at Community Corrections
REPLY_KIND, REPLY_PURPOSE = "concern.report", "offender_management"


@dataclass(frozen=True)
class AlertContext:
    """What the flow needs from the deployment; one object, not a dozen parameters."""

    routing: RoutingStore
    audit: AuditStore
    conn: Transport
    gateway: Identity
    directory: KeyDirectory
    policy: EngineHolder | PolicyEngine
    node: str
    check_every_s: float = 15.0


class AlertFlow:
    """Implements `broker.alert_actions.AlertActions` and runs the escalation timers."""

    def __init__(self, ctx: AlertContext) -> None:
        self._ctx = ctx

    # -- acknowledgement and reply (the contact's actions) ------------------------------

    async def acknowledge(self, alert_id: str, contact: Principal) -> Alert:
        alert = await self._own_alert(alert_id, contact)
        now = datetime.now(UTC)
        acked = await asyncio.to_thread(
            self._ctx.routing.acknowledge, alert_id, contact.subject, now
        )
        record = records.acknowledged(new_id(), self._origin(acked), _facts(acked), _held(acked))
        await asyncio.to_thread(self._ctx.audit.append, [record])
        await self._notify(acked, NoticeContent(event="acknowledged", **_about(acked)), "ack")
        log.info("alert_acknowledged", alert_id=alert.alert_id, level=alert.level)
        return acked

    async def reply(self, alert_id: str, contact: Principal, text: str) -> str:
        """The contact's concern, decided by the s 284 policy like any disclosure."""
        alert = await self._own_alert(alert_id, contact)
        back = await self._back_to(alert)
        engine = self._engine()
        request = PolicyRequest(
            sender_agency=alert.agency,
            sender_role="designated_contact",
            recipient_agency=back.agency.value,
            kind=REPLY_KIND,
            purpose=REPLY_PURPOSE,
            order_status=await self._order_status(alert.offender),
            justification=None,
            consent_reference=None,
            law_reference=None,
        )
        decision = engine.decide(request)
        message_id = new_id()
        ruling = records.Ruling(
            decision.reason,
            tuple(decision.policy_ids),
            engine.version,
            inputs=_inputs(request),
        )
        if not decision.allowed:
            record = self._reply_record(alert, back, message_id, contact, ruling, allowed=False)
            await asyncio.to_thread(self._ctx.audit.append, [record])
            raise Refusal(ReasonCode.POLICY_DENIED, decision.reason)
        payload, _ = engine.minimise({"concern": text}, request)
        record = self._reply_record(alert, back, message_id, contact, ruling, allowed=True)
        await asyncio.to_thread(self._ctx.audit.append, [record])
        content = NoticeContent(event="reply", text=payload.get("concern"), **_about(alert))
        await self._notify(alert, content, f"reply.{message_id}", back, sender_too=False)
        return message_id

    async def _own_alert(self, alert_id: str, contact: Principal) -> Alert:
        alert = await asyncio.to_thread(self._ctx.routing.alert, alert_id)
        if alert is None or alert.agency != contact.agency or alert.contact_id != contact.subject:
            raise NotYourAlertError(alert_id, contact.subject)
        return alert

    def _engine(self) -> PolicyEngine:
        policy = self._ctx.policy
        return policy.current if isinstance(policy, EngineHolder) else policy

    async def _back_to(self, alert: Alert) -> BackTo:
        """Where information about an alert flows back: the offender's managing officer at
        the managing agency the registry names, or Corrections' duty inbox with a reason."""
        known = await asyncio.to_thread(self._ctx.routing.offender, alert.offender)
        if known is not None and known.managing_agency in AGENCY_VALUES:
            return BackTo(Agency(known.managing_agency), known.managing_officer, None)
        return BackTo(MANAGING_AGENCY, DUTY, NO_MANAGING_OFFICER)

    async def _order_status(self, offender: str) -> str:
        known = await asyncio.to_thread(self._ctx.routing.offender, offender)
        return known.order_status if known is not None else "none"

    # -- timers ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick(datetime.now(UTC))
            except Exception:  # noqa: BLE001 - a database or NATS outage: next tick retries
                log.warning("alert_timers_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._ctx.check_every_s)

    async def tick(self, now: datetime) -> None:
        """Escalate every alert past its deadline; send CSP review reminders that are due."""
        for due in await asyncio.to_thread(self._ctx.routing.due_escalations, now):
            await self._escalate(due, now)
        today = now.date()
        for notice in await asyncio.to_thread(self._ctx.routing.csp_notices_due, today):
            await self._csp_reminder(notice, today)

    async def _escalate(self, due: Alert, now: datetime) -> None:
        alert = await asyncio.to_thread(self._ctx.routing.escalate_if_due, due.alert_id, now)
        if alert is None:
            return  # acknowledged meanwhile, or another worker escalated it first
        frame = await asyncio.to_thread(self._ctx.routing.alert_frame, alert.alert_id)
        subject = alert_subject(alert.agency, alert.contact_id)
        await self._ctx.conn.publish(subject, frame, f"{alert.alert_id}.L{alert.level}")
        record = records.escalated(new_id(), self._origin(alert), _facts(alert), _held(alert))
        await asyncio.to_thread(self._ctx.audit.append, [record])
        content = NoticeContent(event="escalated", level=alert.level, **_about(alert))
        await self._notify(alert, content, f"esc{alert.level}")
        log.info("alert_escalated", alert_id=alert.alert_id, level=alert.level)

    async def _csp_reminder(self, notice: CspNotice, today: date) -> None:
        """Each reviewer gets a notice on its own agency's stream (SOCT at DFFH, the MAP
        chair at Corrections); each agency reminded gets its record in the log."""
        reviewers = []
        for reviewer in await asyncio.to_thread(self._ctx.routing.csp_reviewers):
            if reviewer.agency in AGENCY_VALUES:
                reviewers.append(reviewer)
            else:
                log.warning("csp_reviewer_unknown_agency", contact=reviewer.contact.id)
        for reviewer in reviewers:
            content = NoticeContent(
                event="csp_review_due",
                offender=notice.offender,
                csp_id=notice.csp_id,
                due=notice.due.isoformat(),
                milestone=notice.milestone,
                contact=reviewer.contact.id,
                agency=reviewer.agency,
            )
            notice_id = f"csp.{notice.csp_id}.{notice.milestone}.{reviewer.contact.id}"
            await self._publish_notice(Agency(reviewer.agency), notice_id, content)
        due = records.CspDue(notice.offender, notice.csp_id, notice.due, notice.milestone)
        reminded = sorted({r.agency for r in reviewers})
        entries = [records.csp_reminder(new_id(), self._ctx.node, due, a, today) for a in reminded]
        await asyncio.to_thread(self._ctx.audit.append, entries)
        await asyncio.to_thread(self._ctx.routing.mark_csp_notice_sent, notice)

    # -- records and notices ----------------------------------------------------------------

    def _origin(self, alert: Alert) -> records.Origin:
        return records.Origin(datetime.now(UTC), alert.sender_agency, self._ctx.node)

    def _reply_record(
        self,
        alert: Alert,
        back: BackTo,
        message_id: str,
        contact: Principal,
        ruling: records.Ruling,
        *,
        allowed: bool,
    ) -> AuditRecord:
        about = records.About(
            message_id=message_id,
            sender_agency=alert.agency,
            sender_person=contact.subject,
            offender=alert.offender,
            kind=REPLY_KIND,
            purpose=REPLY_PURPOSE,
            correlation_id=alert.message_id,
        )
        origin = records.Origin(datetime.now(UTC), alert.agency, self._ctx.node)
        return records.reply(new_id(), origin, about, back.agency.value, ruling, allowed=allowed)

    async def _notify(
        self,
        alert: Alert,
        content: NoticeContent,
        suffix: str,
        back: BackTo | None = None,
        *,
        sender_too: bool = True,
    ) -> None:
        """To the managing officer (`_back_to`); an acknowledgement or escalation also to
        the alert's sender when that is another agency, so it knows its alert was taken."""
        back = back or await self._back_to(alert)
        addressed = content.model_copy(
            update={"officer": back.officer, "route_reason": back.reason}
        )
        await self._publish_notice(back.agency, f"{alert.alert_id}.{suffix}", addressed)
        if sender_too and alert.sender_agency != back.agency.value:
            await self._publish_notice(
                Agency(alert.sender_agency), f"{alert.alert_id}.{suffix}.sender", content
            )

    async def _publish_notice(self, to: Agency, notice_id: str, content: NoticeContent) -> None:
        frame = seal_notice(notice_id, to, content, self._ctx.gateway, self._ctx.directory)
        try:
            await self._ctx.conn.publish(notice_subject(to.value, new_id()), frame, notice_id)
        except TransportError:
            log.warning("notice_publish_failed", notice_id=notice_id)
            raise


def _facts(alert: Alert) -> records.About:
    """What an alert's entries in the log are about: its message, sender and offender."""
    return records.About(
        message_id=alert.message_id,
        sender_agency=alert.sender_agency,
        offender=alert.offender,
        purpose=alert.purpose,
    )


def _inputs(request: PolicyRequest) -> records.DecisionInputs:
    """A reply carries no evidence: the request's fields are the decision's whole input."""
    return records.DecisionInputs(
        request.sender_agency,
        request.sender_role,
        request.recipient_agency,
        request.kind,
        request.purpose,
        request.order_status,
        justification_length=0,
        has_consent_reference=False,
        has_law_reference=False,
    )


def _held(alert: Alert) -> records.Held:
    return records.Held(alert.alert_id, alert.agency, alert.contact_id, alert.level)


def _about(alert: Alert) -> dict[str, str]:
    return {
        "alert_id": alert.alert_id,
        "message_id": alert.message_id,
        "offender": alert.offender,
        "agency": alert.agency,
        "contact": alert.contact_id,
    }
