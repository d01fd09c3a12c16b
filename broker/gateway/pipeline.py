"""The policy gateway: a stateless worker on the shared `gateway` pull consumer.

`Gateway.process_batch` lists its steps once, in order. Each step takes the messages that
reached the stage before it and makes the next stage (broker/gateway/stages.py), or ends a
message's way as `Refused` or `Retry`; the pure checks are in broker/gateway/steps.py.

    1 frame         Arrived -> Framed          size and shape; the agency from the subject
    2 authenticate  Framed -> Authenticated    signed by a key bound to that agency
    3 replay        Authenticated -> Fresh     within the window; id not seen on another seq
    4 open          Fresh -> Opened            Nats-Msg-Id is the signed id; decrypt; the
                                               envelope agrees with the claims; a
                                               funded service's role fits its key
    5 decide        Opened -> Decided          5a a notice's or request's deadline, an
                                               answer's request (requests.py); s 284 per
                                               recipient; 5b subscribers' copies
    6 minimise      Decided -> Minimised       per recipient, only what its purpose needs
    8a seal         Minimised -> Sealed        re-seal per recipient (before the commit, so
                                               nothing that can fail on one message runs
                                               after its disclosure is recorded)
    6b route        Sealed -> Routed           registry; alerts to their designated contacts
    7a count        identical refusals beyond a few per window: held, counted in one record
    7 record        Routed -> Recorded         one transaction for the batch (group commit)
    7b alert rows   alert rows and subscriptions, committed before anything is published
    8 publish       deliveries, their outbox copies and dead letters, every JetStream
                    ack awaited
    9 answer        ack ingress, then the signed receipt to the sender

Steps 8-9 of one batch overlap steps 1-7b of the next (`Gateway.run`): they wait on
nats-server's fsyncs while the next batch uses the CPU; batches still publish in order.

A bug in a per-message step retries that message (`Retry`), and after `max_deliver`
attempts dead-letters it (`DeadLettered`: refused `internal.dead_letter`). Nothing is
delivered before its record is committed; a crash anywhere leads to a redelivery that
re-runs the batch idempotently (records keyed by message and recipient, deliveries and
receipts de-duplicated by Nats-Msg-Id). While the log or the routing database is down
the gateway stops consuming and takes the batch again once the store answers.

Over 400 lines on purpose: the steps stay listed once, in one place, with the machinery
that runs them (guarding, timing, naks, counted refusals); what each step does lives in
stages.py, steps.py, records.py, routing.py, refusals.py and outbox.py.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog

from audit import AuditRecord, AuditStore, SeenMessage, StoreUnavailableError
from broker.errors import ReasonCode, Refusal, TransportError
from broker.gateway import outbox, requests, steps
from broker.gateway.checkpoints import Checkpointer
from broker.gateway.observer import NO_OBSERVER, GatewayObserver, timed_step
from broker.gateway.receipts import answer, answered_agency, answered_subject, outcome_fields
from broker.gateway.records import disclosures, refused
from broker.gateway.refusals import RefusalCounter
from broker.gateway.routing import AlertRouting
from broker.gateway.stages import (
    Arrived,
    Authenticated,
    DeadLettered,
    Decided,
    Delivery,
    Framed,
    Fresh,
    Item,
    Minimal,
    Minimised,
    Opened,
    Recorded,
    Refused,
    Retry,
    Routed,
    Sealed,
    Stage,
    attempt_key,
)
from broker.nats.config import (
    GATEWAY_CONSUMER,
    deliver_subject,
    ingress_streams,
)
from broker.nats.fanin import FanIn
from broker.nats.transport import Inbound, Transport
from broker.settings import Settings
from broker.wire.envelope import (
    Agency,
    DeliveryRef,
    DisclosureDecision,
    Receipt,
    delivery_id_for,
)
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.lean import delivered_content_json, envelope_json
from broker.wire.sealing import DeliverySealer, sign_receipt
from policies import Decision, EngineHolder, PolicyEngine
from routing import RequestRow, RoutingUnavailableError

log = structlog.get_logger("s284.gateway")
_S = TypeVar("_S", bound=Stage)
_DEAD_LETTER = Refusal(
    ReasonCode.INTERNAL_DEAD_LETTER,
    "the broker could not process this message; it is kept for an operator",
)
_UNPARSEABLE = Refusal(ReasonCode.FRAME_MALFORMED, "the frame could not be parsed")
_PARSE_FAILURES = (RecursionError, ValueError)
_UNTRUSTED = (Arrived, Framed, Authenticated, Fresh)  # stages whose next step parses the frame


@dataclass
class GatewayState:
    ready: bool = False
    processed: int = 0
    refused: int = 0


class Gateway:
    def __init__(
        self,
        settings: Settings,
        conn: Transport,
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
        self._counter = RefusalCounter.for_settings(settings)
        self._sealer = self._batch_sealer()
        self.state = GatewayState()
        self.observer: GatewayObserver = NO_OBSERVER  # metrics (broker/observe) set it

    def store_ok(self) -> bool:
        return self._store.ping()

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, check, decide, seal and record one batch while the batch before it is
        still being published and answered (steps 8-9 wait on nats-server's fsyncs, steps
        1-7 mostly on the CPU): at most one batch is in its tail, and a batch publishes only
        after the one before it has published and answered, so the order on every subject
        is the order of the batches."""
        consumer = FanIn([self._conn.pull(s, GATEWAY_CONSUMER) for s in ingress_streams()])
        log.info("gateway_started", policy_version=self._policy.version)
        tail: asyncio.Task[None] | None = None
        while not stop.is_set():
            self.state.ready = self._conn.is_connected
            msgs = await consumer.fetch(self._settings.fetch_batch, timeout=1.0)
            if msgs:
                tail = await self._process_safely(msgs, tail)
            if tail is not None and tail.done():
                await tail
                tail = None
            await self._commit_counted()
        await _finished(tail)
        await consumer.close()
        await self._commit_counted(final=True)
        self.state.ready = False
        log.info("gateway_stopped", processed=self.state.processed, refused=self.state.refused)

    async def _process_safely(
        self, msgs: list[Inbound], before: asyncio.Task[None] | None
    ) -> asyncio.Task[None] | None:
        """Steps 1-7b of this batch now; its steps 8-9 as a task that starts once the batch
        `before` it has finished them. A store outage naks the batch and waits for the
        store; a failed publish naks the batch's messages (JetStream redelivers them and the
        re-run is idempotent)."""
        try:
            items = await self.prepare_batch(msgs)
        except (StoreUnavailableError, RoutingUnavailableError) as exc:
            self.state.ready = False
            log.error("audit_unavailable", batch=len(msgs), error=type(exc).__name__)  # noqa: TRY400 - no traceback needed
            await self._nak_all(msgs, delay=2.0)
            await self._wait_for_store()
            return before
        return asyncio.create_task(self._deliver_after(before, msgs, items))

    async def _deliver_after(
        self, before: asyncio.Task[None] | None, msgs: list[Inbound], items: list[Item]
    ) -> None:
        await _finished(before)
        try:
            await self.deliver_batch(items)
        except TransportError as exc:
            log.warning("delivery_publish_failed", batch=len(msgs), error=str(exc)[:200])
            await self._nak_all(msgs, delay=1.0)

    async def process_batch(self, msgs: list[Inbound]) -> None:
        """Steps 1-9 for one batch, in order."""
        await self.deliver_batch(await self.prepare_batch(msgs))

    async def prepare_batch(self, msgs: list[Inbound]) -> list[Item]:
        """Steps 1-7b: everything up to the commit of the batch's records."""
        items: list[Item] = [Arrived(msg) for msg in msgs]
        items = self._each(items, Arrived, self._frame)  # 1
        items = self._each(items, Framed, self._authenticate)  # 2
        items = await self._replay(items)  # 3
        items = self._each(items, Fresh, self._open)  # 4
        items = await self._decide(items)  # 5, 5b
        items = self._each(items, Decided, self._minimise)  # 6
        self._sealer = self._batch_sealer()  # 8a's per-batch key, replaced every batch
        items = self._each(items, Minimised, self._seal)  # 8a
        await self._nak_all([item.msg for item in items if isinstance(item, Retry)], delay=1.0)
        items = await self._route(items)  # 6b
        items = self._counter.fold(items)  # 7a: a flood of identical refusals, held to count
        items = await self._record(items)  # 7
        if self._alerts is not None:  # 7b
            await asyncio.to_thread(self._alerts.committed, items)
        return items

    async def deliver_batch(self, items: list[Item]) -> None:
        """Steps 8-9: publish what step 7 committed, then ack and answer."""
        await self._publish(items)  # 8
        await self._answer([item for item in items if isinstance(item, Recorded | Refused)])  # 9

    # -- steps 1-6: one message at a time -----------------------------------------------

    def _frame(self, item: Arrived) -> Framed:
        agency, provider = steps.ingress_party(item.msg.subject)
        limit = self._settings.max_frame_bytes
        return Framed(item.msg, steps.check_frame(agency, item.msg.data, limit, provider))

    def _authenticate(self, item: Framed) -> Authenticated:
        claims = steps.authenticate(item.frame, self._directory)
        return Authenticated(item.msg, item.frame.agency, claims)

    @timed_step("replay")
    async def _replay(self, items: list[Item]) -> list[Item]:
        """3: one lookup for the batch; the same id twice within one batch is a replay too."""
        ids = [item.claims.id for item in items if isinstance(item, Authenticated)]
        seen = await asyncio.to_thread(self._store.first_seen, ids)

        def fresh(item: Authenticated) -> Fresh:
            msg, window = item.msg, self._settings.replay_window_s
            first = seen.get(item.claims.id)
            steps.check_replay(item.claims, msg.stored_at, msg.stream_seq, first, window)
            seen.setdefault(item.claims.id, msg.stream_seq)
            return Fresh(msg, item.agency, item.claims)

        return self._each(items, Authenticated, fresh)

    def _open(self, item: Fresh) -> Opened:
        steps.check_msg_id(item.msg.headers, item.claims)  # after 3: a replay says replay
        content = steps.open_payload(item.claims, self._identity)
        provider = steps.ingress_party(item.msg.subject)[1]  # step 2 bound the key to it
        services = self._engine_now().role_services()
        steps.check_service_role(content.envelope, provider, self._directory, services)
        return Opened(item.msg, item.agency, item.claims, content)

    @timed_step("decide")
    async def _decide(self, items: list[Item]) -> list[Item]:
        """5: every recipient with one policy bundle (a reload swaps bundles between messages,
        never within one); 5b: copies for the agencies already following the offender."""
        offenders = [item.content.envelope.offender for item in items if isinstance(item, Opened)]
        following = await self._subscribers(offenders)
        asked = await self._requests_of(items)

        def decide(item: Opened) -> Decided:
            env, engine = item.content.envelope, self._engine_now()
            requests.check(env, item.content.payload, asked)  # 5a
            subscribers = following.get(env.offender, frozenset())
            named = steps.decide(env, engine)
            pushed = steps.decide_pushes(env, set(subscribers), engine)
            return Decided(item, engine, tuple({**named, **pushed}.items()), subscribers)

        return self._each(items, Opened, decide)

    def _minimise(self, item: Decided) -> Minimised:
        content = item.opened.content
        shares = []
        for recipient, decision in item.permitted:
            payload, withheld = steps.minimise(
                content.payload, content.envelope, recipient, item.engine
            )
            shares.append(Minimal(recipient, decision, payload, tuple(withheld)))
        return Minimised(item, tuple(shares))

    def _batch_sealer(self) -> DeliverySealer:
        """8a's sealer for one batch: the next batch replaces it, and its key goes with it."""
        return DeliverySealer(self._identity, self._directory, self._settings.delivery_profile)

    def _seal(self, item: Minimised) -> Sealed:
        sealer = self._sealer
        envelope = envelope_json(item.decided.envelope)  # once per message, not per recipient
        return Sealed(
            item.decided,
            tuple(self._sealed(item.decided, s, envelope, sealer) for s in item.shares),
        )

    def _sealed(
        self, decided: Decided, share: Minimal, envelope: bytes, sealer: DeliverySealer
    ) -> Delivery:
        env = decided.envelope
        delivery_id = delivery_id_for(env.id, share.recipient)
        # Every part was validated on the way in: the content is joined, not re-validated.
        content = delivered_content_json(
            envelope,
            share.payload,
            share.withheld,
            _why(share.decision, decided.engine.version),
            decided.msg.data.decode("ascii"),
        )
        frame = sealer.seal(delivery_id, share.recipient, env.id, content)
        ref = DeliveryRef(delivery_id=delivery_id, recipient=share.recipient)
        return Delivery(share, ref, deliver_subject(share.recipient.value, env.kind.value), frame)

    # -- steps 6b-9: the whole batch ------------------------------------------------------

    @timed_step("route")
    async def _route(self, items: list[Item]) -> list[Item]:
        """6b: the offender registry, then alerts to their designated contacts."""
        if self._alerts is not None:
            return await asyncio.to_thread(self._alerts.route, items)
        return [Routed(i.decided, i.deliveries) if isinstance(i, Sealed) else i for i in items]

    @timed_step("record")
    async def _record(self, items: list[Item]) -> list[Item]:
        """7: every record of the batch, and the ids it used, in one durable transaction."""
        node = self._settings.node
        batch: list[AuditRecord] = []
        for item in items:
            if isinstance(item, Routed):
                batch += disclosures(item, node)
            elif isinstance(item, Refused):
                batch.append(item.record)
        seen = [_seen(item) for item in items if isinstance(item, Routed)]
        seen += [item.seen for item in items if isinstance(item, Refused) and item.seen]
        started = time.perf_counter()
        result = await asyncio.to_thread(self._store.append, batch, seen)
        self.observer.appended(len(batch), time.perf_counter() - started)
        if self._checkpointer is not None:
            await self._checkpointer.added(result.added)
        return [Recorded(item) if isinstance(item, Routed) else item for item in items]

    @timed_step("publish")
    async def _publish(self, items: list[Item]) -> None:
        """8: deliveries, each also kept in the outbox until its recipient confirms it
        (broker/gateway/outbox.py), and dead letters, pipelined; TransportError if any is
        not stored."""
        sent = [d for item in items if isinstance(item, Recorded) for d in item.routed.deliveries]
        publishes = [(d.subject, d.frame, d.ref.delivery_id) for d in sent]
        publishes += [outbox.entry(d.subject, d.frame, d.ref.delivery_id) for d in sent]
        publishes += [_dead_letter(item) for item in items if isinstance(item, DeadLettered)]
        if publishes:
            await self._conn.publish_many(publishes)

    @timed_step("answer")
    async def _answer(self, done: Sequence[Recorded | Refused], *, quiet: bool = False) -> None:
        """9: acks first (fire-and-forget), then receipts, pipelined, their acks awaited."""
        for item in done:
            await item.msg.ack()
        receipts = [r for r in (self._receipt(item, quiet=quiet) for item in done) if r]
        if not receipts:
            return
        try:
            await self._conn.publish_many(receipts)
        except TransportError:
            # The decisions are recorded and acked; receipts stay queryable in the audit log.
            log.warning("receipt_publish_failed", receipts=len(receipts))
        self.state.processed += len(done)
        refused_now = sum(1 for item in done if isinstance(item, Refused))
        if done:  # one line per batch at INFO; per-message lines at DEBUG (ids, codes only)
            log.info("batch_answered", accepted=len(done) - refused_now, refused=refused_now)

    async def _commit_counted(self, *, final: bool = False) -> None:
        """7a: each due `refusals_counted` record, committed; then what it counts is acked and
        answered. If the commit fails they stay unacked and JetStream redelivers them."""
        for counted in self._counter.due(final=final):
            try:
                result = await asyncio.to_thread(self._store.append, [counted.record], [])
            except StoreUnavailableError:
                await self._nak_all([item.msg for item in counted.refused], delay=1.0)
                continue
            if self._checkpointer is not None:
                await self._checkpointer.added(result.added)
            await self._answer(counted.refused, quiet=True)
            self.state.refused += len(counted.refused)
            log.info("refusals_counted", **counted.fields())

    def _receipt(
        self, item: Recorded | Refused, *, quiet: bool = False
    ) -> tuple[str, bytes, str] | None:
        """(subject, signed receipt, Nats-Msg-Id); None when there is no agency to answer."""
        receipt, agency = answer(item), answered_agency(item)
        if not quiet:
            self._log_outcome(item, receipt)
        if agency is None:
            return None
        subject = answered_subject(item, agency, receipt.message_id or "unknown")
        signed = sign_receipt(receipt, self._identity)
        return subject, signed, f"receipt:{attempt_key(item.msg)}"

    def _log_outcome(self, item: Recorded | Refused, receipt: Receipt) -> None:
        if isinstance(item, Refused):
            self.state.refused += 1
        self.observer.outcome(receipt.status, receipt.reason)
        if not log.is_enabled_for(logging.DEBUG):  # skip building the fields nobody reads
            return
        log.debug(
            "message_refused" if isinstance(item, Refused) else "message_accepted",
            **outcome_fields(item, receipt),
        )

    # -- the machinery around the steps ---------------------------------------------------

    def _each(self, items: list[Item], stage: type[_S], step: Callable[[_S], Item]) -> list[Item]:
        """Apply one per-message step to the messages at `stage`; the others pass through.
        A step that is a method of the gateway (1, 2, 4, 6, 8a) is timed here, once per batch;
        the helpers of the batch steps (3, 5) are timed with their step."""
        started = time.perf_counter()
        done = [self._guarded(item, step) if isinstance(item, stage) else item for item in items]
        if inspect.ismethod(step):
            self.observer.step(step.__name__.lstrip("_"), time.perf_counter() - started)
        return done

    def _guarded(self, item: _S, step: Callable[[_S], Item]) -> Item:
        """A refusal ends the message's way; a bug retries it, then dead-letters it."""
        try:
            return step(item)
        except Refusal as refusal:
            return refused(item, refusal, self._settings.node, self._policy.version)
        except Exception as exc:
            if isinstance(exc, _PARSE_FAILURES) and isinstance(item, _UNTRUSTED):
                # a parser choking on untrusted bytes: refused once, never retried, no traceback
                log.warning("frame_unparseable", seq=item.msg.stream_seq, error=type(exc).__name__)
                return refused(item, _UNPARSEABLE, self._settings.node, self._policy.version)
            log.exception("step_failed", seq=item.msg.stream_seq, step=step.__name__)
            if item.msg.num_delivered < self._settings.max_deliver:
                return Retry(item.msg)
            return refused(
                item, _DEAD_LETTER, self._settings.node, self._policy.version, dead_letter=True
            )

    def _engine_now(self) -> PolicyEngine:
        """A reload swaps bundles between messages, never within one."""
        return self._policy.current if isinstance(self._policy, EngineHolder) else self._policy

    async def _subscribers(self, offenders: list[str]) -> dict[str, frozenset[Agency]]:
        if self._alerts is None or not offenders:
            return {}
        return await asyncio.to_thread(self._alerts.subscribers, offenders)

    async def _requests_of(self, items: list[Item]) -> dict[str, list[RequestRow]]:
        """5a's one register lookup for the batch (no register: every answer is unknown)."""
        envelopes = [item.content.envelope for item in items if isinstance(item, Opened)]
        ids = requests.answered_ids(envelopes)
        if self._alerts is None or not ids:
            return {}
        return await asyncio.to_thread(self._alerts.requests_of, ids)

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


async def _finished(task: asyncio.Task[None] | None) -> None:
    """Wait for a batch's tail (steps 8-9); its own errors are handled inside it."""
    if task is not None:
        await task


def _seen(item: Routed) -> SeenMessage:
    return SeenMessage(item.decided.opened.claims.id, item.msg.stream_seq)


def _why(decision: Decision, version: str) -> DisclosureDecision:
    """What the recipient is told about why it may have this (inside the sealed frame)."""
    return DisclosureDecision(
        policy_ids=list(decision.policy_ids),
        reason=decision.reason,
        policy_version=version,
        review_required=decision.review_required,
    )


def _dead_letter(item: DeadLettered) -> tuple[str, bytes, str]:
    """(subject, the frame as it came, Nats-Msg-Id) on the dead-letter stream."""
    return (
        f"s284.dlq.ingress.{item.agency or 'unknown'}",
        item.msg.data,
        f"dlq:{attempt_key(item.msg)}",
    )
