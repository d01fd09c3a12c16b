"""The outbox: every sealed delivery frame is kept until its recipient confirms it, and a
delivery left unconfirmed is re-sent (issue 16; docs/wire-format.md section 3.8).

JetStream's acknowledgement says the server stored a delivery, not that the recipient's
system got it: a node's page cache can lose acknowledged writes, and a recipient can be
offline for days. Only the recipient's signed confirmation (broker/gateway/confirmations.py)
closes a disclosure. So step 8 of the pipeline also writes each frame (ciphertext only,
sealed to the recipient) to S284_OUTBOX, a work-queue stream of the broker account that no
agency account imports, under `s284.outbox.<the delivery subject>` and
`Nats-Msg-Id: outbox:<delivery id>`.

The reconciler is a task in each gateway process on one durable consumer of that stream:
JetStream hands each outbox entry to one gateway at a time, so several gateways never
re-send the same delivery at once, with no leader election to get wrong. For each entry:

  1 young      stored less than `outbox_resend_after_s` ago: look again when it is due
  2 confirmed  the log holds a `received` record for it: ack, which deletes the frame
  3 re-send    else publish the same frame on the same subject, under the same
               `Nats-Msg-Id` (the delivery id); wait twice as long before the next look
  4 give up    after `outbox_max_resends` re-sends: the frame goes to S284_DLQ
               (`s284.dlq.outbox.<recipient>`), the operator alert
               `delivery_unconfirmed_gave_up` is logged, and the entry is acked

Re-sends are counted by JetStream's delivery count of the entry (a log outage that naks an
entry counts as a look). A recipient de-duplicates re-sent deliveries by delivery id
(broker/sdk.py), so a re-send the recipient already had is acknowledged, not handed to the
application twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from audit import AuditStore, StoreUnavailableError, disclosure_of
from broker.errors import TransportError
from broker.nats.config import GATEWAY_CONSUMER, STREAM_OUTBOX, outbox_subject, resend_subject
from broker.nats.transport import Inbound, Transport

log = structlog.get_logger("s284.outbox")

OUTBOX_ID = "outbox:"
GAVE_UP = "delivery_unconfirmed_gave_up"
_MSG_ID = "Nats-Msg-Id"
_BACKOFF = 2.0


def entry(subject: str, frame: bytes, delivery_id: str) -> tuple[str, bytes, str]:
    """(subject, data, Nats-Msg-Id) of the outbox copy of one delivery (pipeline step 8)."""
    return outbox_subject(subject), frame, OUTBOX_ID + delivery_id


@dataclass(frozen=True)
class ResendPolicy:
    """When to re-send an unconfirmed delivery, and when to stop (from Settings)."""

    after_s: float
    max_resends: int

    def wait_after(self, resends: int) -> float:
        """Seconds until the next look once `resends` re-sends were made."""
        return self.after_s * _BACKOFF**resends


class Reconciler:
    """Re-sends deliveries whose recipients have not confirmed them; deletes the others."""

    def __init__(
        self, conn: Transport, store: AuditStore, policy: ResendPolicy, batch: int = 256
    ) -> None:
        self._conn = conn
        self._store = store
        self._policy = policy
        self._batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._conn.pull(STREAM_OUTBOX, GATEWAY_CONSUMER)
        while not stop.is_set():
            try:
                msgs = await consumer.fetch(self._batch, timeout=1.0)
                for msg in msgs:
                    await self.settle(msg)
            except TransportError as exc:  # NATS blip: JetStream redelivers after ack_wait
                log.warning("outbox_unreachable", error=str(exc)[:200])
                await asyncio.sleep(1.0)

    async def settle(self, msg: Inbound) -> None:
        """Steps 1-4 for one outbox entry."""
        age = (datetime.now(UTC) - msg.stored_at).total_seconds()
        if age < self._policy.after_s:  # 1
            await msg.nak(delay=self._policy.after_s - age)
            return
        delivery_id = msg.headers.get(_MSG_ID, "").removeprefix(OUTBOX_ID)
        try:
            confirmed = await asyncio.to_thread(self._confirmed, delivery_id)
        except StoreUnavailableError:
            await msg.nak(delay=2.0)
            return
        if confirmed:  # 2
            await msg.ack()
            return
        resends = max(0, msg.num_delivered - 2)  # the first look came before it was due
        if resends >= self._policy.max_resends:  # 4
            await self._give_up(msg, delivery_id, resends)
            return
        await self._conn.publish(resend_subject(msg.subject), msg.data, delivery_id)  # 3
        log.info("delivery_resent", delivery_id=delivery_id, resend=resends + 1)
        await msg.nak(delay=self._policy.wait_after(resends + 1))

    def _confirmed(self, delivery_id: str) -> bool:
        """True once a `received` record refers to the disclosure (or the log holds none:
        nothing to re-send for)."""
        message_id, _, recipient = delivery_id.rpartition(".")
        disclosed = disclosure_of(self._store, message_id, recipient)
        if disclosed is None:
            log.warning("outbox_without_disclosure", delivery_id=delivery_id)
            return True
        return disclosed.confirmed

    async def _give_up(self, msg: Inbound, delivery_id: str, resends: int) -> None:
        recipient = delivery_id.rpartition(".")[2]
        dead = f"s284.dlq.outbox.{recipient}"
        await self._conn.publish(dead, msg.data, f"dlq:{OUTBOX_ID}{delivery_id}")
        log.error(
            GAVE_UP, delivery_id=delivery_id, recipient=recipient, resends=resends,
            age_s=round((datetime.now(UTC) - msg.stored_at).total_seconds()),
        )  # fmt: skip
        await msg.ack()
