"""What happens to a routed alert after delivery: acknowledgement, the contact's reply,
escalation when nobody acknowledges in time, and CSP review reminders.

Every step is recorded in the disclosure log and told to the managing officer's agency
as a signed, sealed notice (broker/wire/notices.py). Escalation and reminder state lives in
the routing store, so a restart of this process loses no timer.
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
from broker.wire.envelope import Agency
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.notices import NoticeContent, seal_notice
from policies import EngineHolder, PolicyEngine, PolicyRequest
from routing import Alert, CspNotice, RoutingStore

log = structlog.get_logger("s284.alerts")
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
        engine = self._engine()
        request = PolicyRequest(
            sender_agency=alert.agency,
            sender_role="designated_contact",
            recipient_agency=alert.sender_agency,
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
            record = self._reply_record(alert, message_id, contact, ruling, allowed=False)
            await asyncio.to_thread(self._ctx.audit.append, [record])
            raise Refusal(ReasonCode.POLICY_DENIED, decision.reason)
        payload, _ = engine.minimise({"concern": text}, request)
        record = self._reply_record(alert, message_id, contact, ruling, allowed=True)
        await asyncio.to_thread(self._ctx.audit.append, [record])
        content = NoticeContent(event="reply", text=payload.get("concern"), **_about(alert))
        await self._notify(alert, content, f"reply.{message_id}")
        return message_id

    async def _own_alert(self, alert_id: str, contact: Principal) -> Alert:
        alert = await asyncio.to_thread(self._ctx.routing.alert, alert_id)
        if alert is None or alert.agency != contact.agency or alert.contact_id != contact.subject:
            raise NotYourAlertError(alert_id, contact.subject)
        return alert

    def _engine(self) -> PolicyEngine:
        policy = self._ctx.policy
        return policy.current if isinstance(policy, EngineHolder) else policy

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
        reviewers = await asyncio.to_thread(self._ctx.routing.csp_reviewers)
        record_id = new_id()
        for reviewer in reviewers:
            content = NoticeContent(
                event="csp_review_due",
                offender=notice.offender,
                csp_id=notice.csp_id,
                due=notice.due.isoformat(),
                milestone=notice.milestone,
                contact=reviewer.id,
                agency=MANAGING_AGENCY.value,
            )
            notice_id = f"csp.{notice.csp_id}.{notice.milestone}.{reviewer.id}"
            await self._publish_notice(MANAGING_AGENCY, notice_id, content)
        due = records.CspDue(notice.offender, notice.csp_id, notice.due, notice.milestone)
        record = records.csp_reminder(record_id, self._ctx.node, due, MANAGING_AGENCY.value, today)
        await asyncio.to_thread(self._ctx.audit.append, [record])
        await asyncio.to_thread(self._ctx.routing.mark_csp_notice_sent, notice)

    # -- records and notices ----------------------------------------------------------------

    def _origin(self, alert: Alert) -> records.Origin:
        return records.Origin(datetime.now(UTC), alert.sender_agency, self._ctx.node)

    def _reply_record(
        self,
        alert: Alert,
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
        return records.reply(new_id(), origin, about, alert.sender_agency, ruling, allowed=allowed)

    async def _notify(self, alert: Alert, content: NoticeContent, suffix: str) -> None:
        await self._publish_notice(
            Agency(alert.sender_agency), f"{alert.alert_id}.{suffix}", content
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
