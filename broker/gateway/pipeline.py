"""The policy gateway: a stateless worker on the shared `gateway` pull consumer.

Each batch runs the steps of broker/_steps.py per message, then the I/O steps:

    6b route      offender registry, then alerts to their designated contacts
                  (broker/routing_flow.py)
    7 audit       one durable transaction for the whole batch (group commit)
    7b committed  alert rows and new subscriptions, before anything is published
    8 deliver     re-seal per recipient and publish, awaiting every JetStream ack
    9 ack         ack ingress, then publish the signed receipt to the sender

Nothing is delivered before its record is committed; a crash anywhere leads to a
redelivery that re-runs the batch idempotently (records keyed by message and
recipient, deliveries and receipts de-duplicated by Nats-Msg-Id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import SQLAlchemyError

from audit import AuditRecord, AuditStore, SeenMessage
from broker.errors import AuditUnavailableError, ReasonCode, Refusal, TransportError
from broker.gateway import steps
from broker.gateway.checkpoints import Checkpointer
from broker.gateway.routing import AlertRouting
from broker.gateway.stages import Work
from broker.ids import new_id
from broker.nats.client import Connection, Inbound
from broker.nats.config import (
    GATEWAY_CONSUMER,
    deliver_subject,
    ingress_streams,
    receipt_subject,
)
from broker.nats.fanin import FanIn
from broker.settings import Settings
from broker.wire.envelope import (
    Agency,
    DeliveredContent,
    DeliveryRef,
    DisclosureDecision,
    Receipt,
    delivery_id_for,
)
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.sealing import seal_delivery, sign_receipt
from policies import Decision, EngineHolder, PolicyEngine

log = structlog.get_logger("s284.gateway")
_R = TypeVar("_R")


@dataclass
class GatewayState:
    ready: bool = False
    processed: int = 0
    refused: int = 0


class Gateway:
    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        store: AuditStore,
        policy: PolicyEngine,
        identity: Identity,
        directory: KeyDirectory,
        checkpointer: Checkpointer | None = None,
        alerts: AlertRouting | None = None,
    ) -> None:
        self._settings = settings
        self._conn = conn
        self._store = store
        self._policy = policy
        self._identity = identity
        self._directory = directory
        self._checkpointer = checkpointer
        self._alerts = alerts
        self.state = GatewayState()

    def _engine_now(self) -> PolicyEngine:
        """A reload swaps bundles between messages, never within one."""
        return self._policy.current if isinstance(self._policy, EngineHolder) else self._policy

    def _version_for(self, work: Work) -> str:
        return (work.engine or self._policy).version

    def store_ok(self) -> bool:
        return self._store.ping()

    async def run(self, stop: asyncio.Event) -> None:
        consumer = FanIn([self._conn.pull(s, GATEWAY_CONSUMER) for s in ingress_streams()])
        log.info("gateway_started", policy_version=self._policy.version)
        while not stop.is_set():
            self.state.ready = self._conn.is_connected
            msgs = await consumer.fetch(self._settings.fetch_batch, timeout=1.0)
            if msgs:
                await self._process_safely(msgs)
        await consumer.close()
        self.state.ready = False
        log.info("gateway_stopped", processed=self.state.processed, refused=self.state.refused)

    async def _process_safely(self, msgs: list[Inbound]) -> None:
        try:
            await self.process_batch(msgs)
        except AuditUnavailableError:
            self.state.ready = False
            log.error("audit_unavailable", batch=len(msgs))  # noqa: TRY400 - no traceback needed
            await self._nak_all(msgs, delay=2.0)
            await self._wait_for_store()
        except TransportError as exc:
            log.warning("delivery_publish_failed", batch=len(msgs), error=str(exc)[:200])
            await self._nak_all(msgs, delay=1.0)

    async def process_batch(self, msgs: list[Inbound]) -> None:
        works = [Work(m) for m in msgs]
        for work in works:
            self._guarded(work, self._verify)
        await self._check_replays(works)
        for work in works:
            self._guarded(work, self._open)
        if self._alerts is not None:  # who follows each offender (pushed updates)
            await self._db(self._alerts.find_subscribers, works)
        for work in works:
            self._guarded(work, self._decide)
        retry = [w for w in works if w.retry]
        works = [w for w in works if not w.retry]
        await self._nak_all([w.msg for w in retry], delay=1.0)
        if self._alerts is not None:  # 6b: offender registry, then alerts to their contacts
            await self._db(self._alerts.route, works)
        await self._audit(works)  # 7
        if self._alerts is not None:  # 7b: alert rows (escalation timers), subscriptions
            await self._db(self._alerts.committed, works)
        await self._deliver(works)  # 8
        # 9: acks first (fire-and-forget), then receipts, their publish acks awaited together
        for work in works:
            await work.msg.ack()
        await asyncio.gather(*(self._receipt(work) for work in works))
        self.state.processed += len(works)

    def _guarded(self, work: Work, step: Callable[[Work], None]) -> None:
        """A bug in a step must not take the batch down: retry, then dead-letter."""
        if work.retry:
            return
        try:
            step(work)
        except Exception:
            log.exception("step_failed", seq=work.msg.stream_seq, step=step.__name__)
            if work.msg.num_delivered < self._settings.max_deliver:
                work.retry = True
                return
            work.refusal = Refusal(
                ReasonCode.INTERNAL_DEAD_LETTER,
                "the broker could not process this message; it is kept for an operator",
            )
            work.dead_letter = True
            work.content = None
            self._record_refusal(work)

    # -- steps 1-2 -------------------------------------------------------------

    def _verify(self, work: Work) -> None:
        try:
            work.agency = steps.ingress_agency(work.msg.subject)
            frame = steps.check_frame(work.agency, work.msg.data, self._settings.max_frame_bytes)
            work.claims = steps.authenticate(frame, self._directory)
        except Refusal as refusal:
            work.refusal = refusal

    # -- step 3 ------------------------------------------------------------------

    async def _check_replays(self, works: list[Work]) -> None:
        ids = [w.claims.id for w in works if w.claims is not None and w.refusal is None]
        seen = await self._db(self._store.first_seen, ids)
        for work in works:
            if work.claims is None or work.refusal is not None:
                continue
            try:
                steps.check_replay(
                    work.claims,
                    work.msg.stored_at,
                    work.msg.stream_seq,
                    seen.get(work.claims.id),
                    self._settings.replay_window_s,
                )
            except Refusal as refusal:
                work.refusal = refusal
            else:
                seen.setdefault(work.claims.id, work.msg.stream_seq)  # replays within a batch

    # -- steps 4-6 ---------------------------------------------------------------

    def _open(self, work: Work) -> None:
        if work.refusal is not None or work.claims is None:
            self._record_refusal(work)
            return
        try:
            steps.check_msg_id(work.msg.headers, work.claims)
            work.content = steps.open_payload(work.claims, self._identity)
        except Refusal as refusal:
            work.refusal = refusal
            self._record_refusal(work)

    def _decide(self, work: Work) -> None:
        if work.refusal is not None or work.content is None:
            return
        try:
            work.engine = self._engine_now()
            decisions = steps.decide(work.content.envelope, work.engine)
        except Refusal as refusal:
            work.refusal = refusal
            self._record_refusal(work)
            return
        pushed = steps.decide_pushes(work.content.envelope, work.subscribers, work.engine)
        for recipient, decision in {**decisions, **pushed}.items():
            self._prepare_delivery(work, recipient, decision)

    def _prepare_delivery(self, work: Work, recipient: Agency, decision: Decision) -> None:
        if work.content is None:
            raise RuntimeError("delivery prepared before the payload was opened")
        env = work.content.envelope
        engine = work.engine or self._engine_now()
        payload, withheld = steps.minimise(work.content.payload, env, recipient, engine)
        delivery_id = delivery_id_for(env.id, recipient)
        why = DisclosureDecision(
            policy_ids=list(decision.policy_ids),
            reason=decision.reason,
            policy_version=engine.version,
            review_required=decision.review_required,
        )
        # Every part was validated on the way in; skip re-validating the envelope per recipient.
        content = DeliveredContent.model_construct(
            envelope=env,
            payload=payload,
            withheld=withheld,
            decision=why,
            origin=work.msg.data.decode("ascii"),
        )
        frame = seal_delivery(delivery_id, recipient, content, self._identity, self._directory)
        subject = deliver_subject(recipient.value, env.kind.value)
        work.deliveries.append(
            (subject, frame, DeliveryRef(delivery_id=delivery_id, recipient=recipient))
        )
        work.records.append(self._record(work, "disclosed", recipient, decision, withheld))

    def _record(
        self,
        work: Work,
        event: str,
        recipient: Agency | None,
        decision: Decision | None,
        withheld: list[str] | None = None,
    ) -> AuditRecord:
        env = work.content.envelope if work.content is not None else None
        refusal = work.refusal
        key = (
            f"disclosed:{env.id}:{recipient}"
            if event == "disclosed" and env
            else f"refused:{work.key}"
        )
        return AuditRecord(
            record_id=new_id(),
            dedupe_key=key,
            event=event,
            occurred_at=work.msg.stored_at,
            ingress_agency=work.agency.value if work.agency else "unknown",
            decision="permit" if refusal is None else "deny",
            reason_code=refusal.code.value if refusal else None,
            reason=refusal.detail if refusal else (decision.reason if decision else ""),
            node=self._settings.node,
            message_id=work.claims.id if work.claims else None,
            ingress_seq=work.msg.stream_seq,
            sender_agency=env.sender.agency.value if env else None,
            sender_person=env.sender.person_id if env else None,
            recipient_agency=recipient.value if recipient else None,
            offender=env.offender if env else None,
            kind=env.kind.value if env else None,
            purpose=env.purpose.value if env else None,
            justification=env.justification if env else None,
            consent_reference=env.consent_reference if env else None,
            law_reference=env.law_reference if env else None,
            restricted=bool(env and env.restricted),
            correlation_id=env.correlation_id if env else None,
            policy_ids=tuple(decision.policy_ids) if decision else (),
            policy_version=self._version_for(work),
            review_required=bool(decision and decision.review_required),
            withheld=tuple(withheld or ()),
            payload_digest=work.payload_digest,
        )

    def _record_refusal(self, work: Work) -> None:
        work.records = [self._record(work, "refused", None, None)]
        work.deliveries = []

    # -- steps 7-9 ---------------------------------------------------------------

    async def _audit(self, works: list[Work]) -> None:
        records = [r for w in works for r in w.records]
        seen = [
            SeenMessage(w.claims.id, w.msg.stream_seq)
            for w in works
            if w.claims is not None and (w.refusal is None or w.refusal.code not in _NOT_SEEN)
        ]
        result = await self._db(self._store.append, records, seen)
        if self._checkpointer is not None:
            await self._checkpointer.added(result.added)

    async def _deliver(self, works: list[Work]) -> None:
        publishes = [
            self._conn.publish(subject, frame, ref.delivery_id)
            for w in works
            for subject, frame, ref in w.deliveries
        ]
        publishes += [
            self._conn.publish(
                f"s284.dlq.ingress.{w.agency or 'unknown'}", w.msg.data, f"dlq:{w.key}"
            )
            for w in works
            if w.dead_letter
        ]
        await asyncio.gather(*publishes)

    async def _receipt(self, work: Work) -> None:
        refusal = work.refusal
        receipt = Receipt(
            message_id=work.message_ref,
            status="refused" if refusal else "accepted",
            reason=refusal.code.value if refusal else None,
            detail=refusal.detail if refusal else None,
            deliveries=[ref for _, _, ref in work.deliveries],
            decided_at=datetime.now(UTC),
            policy_version=self._version_for(work),
        )
        self._log_outcome(work)
        if work.agency is None:
            return
        subject = receipt_subject(work.agency.value, work.message_ref or "unknown")
        try:
            await self._conn.publish(
                subject, sign_receipt(receipt, self._identity), f"receipt:{work.key}"
            )
        except TransportError:
            # The decision is recorded and acked; the receipt stays queryable in the audit log.
            log.warning("receipt_publish_failed", message_id=work.message_ref)

    def _log_outcome(self, work: Work) -> None:
        if work.refusal is not None:
            self.state.refused += 1
            log.info(
                "message_refused",
                message_id=work.message_ref,
                reason=work.refusal.code.value,
                ingress=work.agency.value if work.agency else None,
                seq=work.msg.stream_seq,
            )
        else:
            log.info(
                "message_accepted",
                message_id=work.message_ref,
                deliveries=len(work.deliveries),
                seq=work.msg.stream_seq,
            )

    async def _nak_all(self, msgs: list[Inbound], delay: float) -> None:
        for msg in msgs:
            try:
                await msg.nak(delay=delay)
            except Exception:  # noqa: BLE001 - best effort: JetStream redelivers after ack_wait
                log.debug("nak_failed", seq=msg.stream_seq)

    async def _wait_for_store(self) -> None:
        while not await asyncio.to_thread(self._store.ping):  # noqa: ASYNC110 - polling a DB
            await asyncio.sleep(1.0)
        log.info("audit_available")

    async def _db(self, fn: Callable[..., _R], *args: Any) -> _R:
        try:
            return await asyncio.to_thread(fn, *args)
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(exc.__class__.__name__) from exc


# Refusals that come before the id is trustworthy or that are about the id itself
# do not mark the id as used.
_NOT_SEEN = {ReasonCode.REPLAY_DUPLICATE_ID, ReasonCode.REPLAY_OUTSIDE_WINDOW}
