"""Confirmations of receipt: beside the pipeline, a small loop records in the disclosure
log that a recipient's system took a delivery (docs/wire-format.md section 3.7).

For each confirmation on S284_CONFIRM, in order:
  1 verify   signed by a current key of the agency whose subject it came on, for a
             delivery addressed to that agency (broker.wire.confirmations)
  2 look up  the disclosure of that message to that agency (`confirm.unknown_delivery`)
  3 once     not confirmed before (`confirm.replayed`; the same confirmation redelivered
             after a crash records nothing again)
  4 record   a `received` record referring to the disclosure, or a refusal
  5 ack      only once the record is committed; a log outage naks and retries
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from audit import AuditRecord, AuditStore, Disclosed, StoreUnavailableError, disclosure_of, records
from broker.errors import ConfirmationError, TransportError
from broker.gateway.checkpoints import Checkpointer
from broker.ids import new_id
from broker.nats.config import GATEWAY_CONSUMER, STREAM_CONFIRM
from broker.nats.transport import Inbound, Transport
from broker.wire.confirmations import MALFORMED, Confirmation, verify_confirmation
from broker.wire.envelope import Agency
from broker.wire.keys import KeyDirectory

log = structlog.get_logger("s284.confirmations")

UNKNOWN_DELIVERY = "confirm.unknown_delivery"
REPLAYED = "confirm.replayed"
_AGENCIES = {a.value for a in Agency}


@dataclass(frozen=True)
class ConfirmationContext:
    """What the loop needs: the connection, the log, the key directory the gateway holds
    (kept current by the gateway), the node name, and the checkpointer to tell."""

    conn: Transport
    store: AuditStore
    directory: KeyDirectory
    node: str
    checkpointer: Checkpointer | None = None


class Confirmations:
    """The gateway's consumer of confirmations of receipt."""

    def __init__(self, ctx: ConfirmationContext, batch: int = 64) -> None:
        self._ctx = ctx
        self._batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._ctx.conn.pull(STREAM_CONFIRM, GATEWAY_CONSUMER)
        while not stop.is_set():
            try:
                msgs = await consumer.fetch(self._batch, timeout=1.0)
            except TransportError as exc:  # NATS blip: try again shortly
                log.warning("confirmations_unreachable", error=str(exc)[:200])
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                await self._settle(msg)

    async def _settle(self, msg: Inbound) -> None:
        """4-5: record, then ack; a log outage leaves it for a later attempt."""
        try:
            record = await asyncio.to_thread(self.record_for, msg)
            if record is not None:
                result = await asyncio.to_thread(self._ctx.store.append, [record])
                if self._ctx.checkpointer is not None:
                    await self._ctx.checkpointer.added(result.added)
        except StoreUnavailableError as exc:
            log.error("audit_unavailable", seq=msg.stream_seq, error=type(exc).__name__)  # noqa: TRY400 - no traceback needed
            await msg.nak(delay=2.0)
            return
        await msg.ack()

    def record_for(self, msg: Inbound) -> AuditRecord | None:
        """1-3: the record this confirmation makes (None: already recorded from it)."""
        agency = msg.subject.rsplit(".", 1)[-1]
        try:
            found = self._verified(msg, agency)
        except ConfirmationError as exc:
            return self._refused(msg, agency, exc, None)
        disclosed = disclosure_of(self._ctx.store, found.message_id, agency)
        if disclosed is None:
            why = ConfirmationError(UNKNOWN_DELIVERY, f"no disclosure of {found.delivery_id}")
            return self._refused(msg, agency, why, None)
        if disclosed.confirmed:
            if disclosed.confirmation_seq == msg.stream_seq:
                return None  # redelivered after a crash: recorded already
            why = ConfirmationError(REPLAYED, f"{found.delivery_id} was confirmed before")
            return self._refused(msg, agency, why, disclosed)
        log.info("delivery_received", message_id=found.message_id, recipient=agency)
        return records.received(
            new_id(), self._origin(agency, found.confirmed_at), self._about(disclosed, msg),
            disclosed.record_id, agency,
        )  # fmt: skip

    def _verified(self, msg: Inbound, agency: str) -> Confirmation:
        if agency not in _AGENCIES:
            raise ConfirmationError(MALFORMED, "not on an agency's confirmation subject")
        return verify_confirmation(msg.data, self._ctx.directory, agency)

    def _origin(self, agency: str, when: datetime) -> records.Origin:
        return records.Origin(when, agency, self._ctx.node)

    @staticmethod
    def _about(disclosed: Disclosed, msg: Inbound) -> records.About:
        return records.About(
            message_id=disclosed.message_id, ingress_seq=msg.stream_seq,
            sender_agency=disclosed.sender_agency, kind=disclosed.kind,
            purpose=disclosed.purpose, restricted=disclosed.restricted,
        )  # fmt: skip

    def _refused(
        self, msg: Inbound, agency: str, exc: ConfirmationError, disclosed: Disclosed | None
    ) -> AuditRecord:
        log.warning("confirmation_refused", seq=msg.stream_seq, agency=agency, code=exc.code)
        about = (
            self._about(disclosed, msg) if disclosed else records.About(ingress_seq=msg.stream_seq)
        )
        return records.confirmation_refused(
            new_id(),
            self._origin(agency if agency in _AGENCIES else "unknown", datetime.now(UTC)),
            about,
            exc.code,
            str(exc),
            attempt=str(msg.stream_seq),
            disclosure_id=disclosed.record_id if disclosed else None,
        )
