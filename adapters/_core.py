"""The common core every agency adapter runs: inbound loop and outbound writer.

Inbound, for each source record, in file order:
    1 skip       a record whose key is already settled (sent, refused) is not sent again
    2 map        the agency module maps it, or says why not (-> quarantine, row-level reason)
    3 identify   the local offender id must be in the offender map (-> quarantine, never guessed)
    4 record     the key and a message id are committed as `pending` BEFORE the send
    5 send       through the SDK under that message id; a resend after a crash reuses it,
                 so JetStream de-duplicates it and the gateway refuses a second copy
                 (`replay.duplicate_id`, which for a pending record means "already sent")
    6 settle     accepted -> sent; refused -> quarantined with the reason code
    7 advance    the file position, so a restart resumes where it stopped

Outbound: each verified delivery is written atomically to the destination folder in the
agency's format, named by its delivery id; NATS is acknowledged only after the write (the
SDK acks a delivery when the next is requested). A delivery the format cannot hold is
written as plain JSON under `unrenderable/` and listed in the quarantine; a failed write
leaves it unacknowledged, so NATS redelivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import ValidationError

from adapters._config import AdapterConfig, read_offender_map
from adapters._files import delivery_document, json_bytes, publish_file
from adapters._model import AgencyModule, Outbound, Outgoing, SourceRecord, Unmappable
from adapters._state import AdapterState, SendStatus
from broker import (
    AgencyClient,
    ReasonCode,
    Receipt,
    ReceiptTimeoutError,
    TransportError,
    VerifiedDelivery,
    new_id,
)

log = structlog.get_logger("s284.adapter")
FILE_RECORD = "#file"
_IDLE_S = 0.2  # how long an empty fetch waits before the outbound pass ends
UNRENDERABLE = "unrenderable"  # destination subfolder for deliveries the format cannot hold


class Stalled(Exception):  # noqa: N818 - a pause, not a failure
    """No answer from the broker for a record; stop this pass and retry it later."""


class Adapter:
    """One agency adapter: the module's formats plus the core's guarantees."""

    def __init__(
        self,
        module: AgencyModule,
        config: AdapterConfig,
        client: AgencyClient,
        state: AdapterState,
    ) -> None:
        self.module = module
        self.config = config
        self.client = client
        self.state = state
        self._recovered: dict[str, Receipt] = {}

    def load_offender_map(self) -> None:
        self.state.load_offender_map(read_offender_map(self.config.mapping))

    # -- inbound ---------------------------------------------------------------------------

    def source_files(self) -> list[Path]:
        """Files the agency system finished writing (write a dot-file, then rename)."""
        if not self.config.source.is_dir():
            return []
        return sorted(
            p
            for p in self.config.source.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith(self.module.suffixes)
        )

    async def poll_once(self) -> None:
        """Read every unfinished source file to its end. Raises `Stalled` to retry later."""
        await self._recover_receipts()
        for path in self.source_files():
            await self._read_file(path)

    async def _read_file(self, path: Path) -> None:
        position = self.state.position(path.name)
        if position.complete:
            return
        try:
            records = self.module.records(path)
        except Unmappable as exc:
            self.state.quarantine(path.name, path.name + FILE_RECORD, exc.reason, exc.detail)
            log.warning("file_quarantined", source=path.name, reason=exc.reason)
            self.state.advance(path.name, 0, complete=True)
            return
        for index in range(position.records_done, len(records)):
            await self._one(path.name, records[index])
            self.state.advance(path.name, index + 1)
        self.state.advance(path.name, len(records), complete=True)

    async def _one(self, source: str, record: SourceRecord) -> None:
        row = self.state.sent(record.key)  # 1 skip
        if row is not None and row.status is not SendStatus.PENDING:
            return
        try:
            out = self._map(record)  # 2 map
            if out is None:
                log.info("record_kept_local", key=record.key, type=record.record_type)
                return
            offender = self._offender(out)  # 3 identify
        except Unmappable as exc:
            self.state.quarantine(source, record.key, exc.reason, exc.detail)
            log.warning("record_quarantined", key=record.key, reason=exc.reason)
            return
        message_id = row.message_id if row is not None else new_id()
        if row is None:
            self.state.record_pending(record.key, message_id)  # 4 record
        receipt = await self._send(out, offender, message_id)  # 5 send
        self._settle(source, record.key, message_id, receipt, resend=row is not None)  # 6

    def _map(self, record: SourceRecord) -> Outgoing | None:
        try:
            return self.module.map_in(record)
        except Unmappable:
            raise
        except Exception as exc:  # noqa: BLE001 - one odd record must not stop the rest
            raise Unmappable(
                "record.mapping_error", f"the mapping failed ({type(exc).__name__})"
            ) from None

    def _offender(self, out: Outgoing) -> str:
        ref = self.state.offender_ref(out.local_offender_id)
        if ref is None:
            raise Unmappable(
                "offender.unmapped",
                f"local id {out.local_offender_id!r} is not in the offender map",
            )
        return ref

    async def _send(self, out: Outgoing, offender: str, message_id: str) -> Receipt:
        if message_id in self._recovered:
            return self._recovered.pop(message_id)
        try:
            return await self.client.send(
                kind=out.kind,
                purpose=out.purpose,
                offender=offender,
                to=list(out.to),
                payload=out.payload,
                timeout=self.config.receipt_timeout_s,
                id=message_id,
                order_status=out.order_status,
            )
        except (ReceiptTimeoutError, TransportError) as exc:
            await self._recover_receipts()
            if message_id in self._recovered:
                return self._recovered.pop(message_id)
            raise Stalled(message_id) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            return _local_refusal(message_id, f"envelope field {field}: {first['msg']}")

    def _settle(
        self, source: str, key: str, message_id: str, receipt: Receipt, resend: bool
    ) -> None:
        if receipt.accepted:
            self.state.settle(key, SendStatus.SENT)
            log.info("record_sent", key=key, message_id=message_id)
        elif resend and receipt.reason == ReasonCode.REPLAY_DUPLICATE_ID.value:
            self.state.settle(key, SendStatus.SENT, reason=receipt.reason)
            log.info("record_already_sent", key=key, message_id=message_id)
        else:
            reason = f"refused.{receipt.reason or 'unknown'}"
            self.state.settle(key, SendStatus.REFUSED, reason=reason)
            self.state.quarantine(source, key, reason, receipt.detail or "refused by the gateway")
            log.warning("record_refused", key=key, message_id=message_id, reason=receipt.reason)

    async def _recover_receipts(self) -> None:
        """After a crash: receipts for pending records, kept by the broker while we were away."""
        if not self.state.pending():
            return
        for receipt in await self.client.stored_receipts():
            if receipt.message_id is not None:
                self._recovered[receipt.message_id] = receipt
        pending = {row.message_id for row in self.state.pending()}
        self._recovered = {k: v for k, v in self._recovered.items() if k in pending}

    async def run_inbound(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
            except Stalled as exc:
                log.warning("inbound_stalled", message_id=str(exc), reason="no_receipt")
            await _wait(stop, self.config.poll_interval_s)

    # -- outbound --------------------------------------------------------------------------

    async def drain_outbound(self) -> int:
        """Write everything delivered so far, routed alerts included (an agency system takes
        its designated contacts' alerts too); each acknowledged after its write."""
        written = 0
        async for item in self.client.inbox(follow=False, idle_timeout=_IDLE_S):
            written += self.write(item)
        async for item in self.client.alerts(follow=False, idle_timeout=_IDLE_S):
            written += self.write(item)
        return written

    def write(self, item: VerifiedDelivery) -> int:
        """Write one delivery; an OSError propagates, leaving it unacknowledged."""
        if self.state.was_written(item.delivery_id):
            return 0  # redelivered after the write but before the ack
        out = _outbound(item, self.state.local_id(item.envelope.offender))
        try:
            suffix, content = self.module.render(out)
            path = self.config.destination / f"{item.delivery_id}{suffix}"
        except Exception as exc:  # noqa: BLE001 - kept for a person, never dropped
            path = self.config.destination / UNRENDERABLE / f"{item.delivery_id}.json"
            content = json_bytes(delivery_document(out))
            self.state.quarantine(
                "outbound", item.delivery_id, "outbound.unrenderable", type(exc).__name__
            )
            log.warning("delivery_unrenderable", delivery_id=item.delivery_id)
        publish_file(path, content)
        self.state.mark_written(item.delivery_id, path.name, out.sender.value)
        log.info("delivery_written", delivery_id=item.delivery_id, kind=out.kind.value)
        return 1

    async def run_outbound(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.drain_outbound()
            except OSError as exc:  # unacknowledged: NATS redelivers it after ack_wait
                log.warning("delivery_write_failed", error=type(exc).__name__)
            await _wait(stop, self.config.poll_interval_s)


def _outbound(item: VerifiedDelivery, local_id: str | None) -> Outbound:
    env = item.envelope
    return Outbound(
        delivery_id=item.delivery_id,
        message_id=env.id,
        sender=env.sender.agency,
        kind=env.kind,
        purpose=env.purpose,
        offender_ref=env.offender,
        local_id=local_id,
        created_at=env.created_at,
        payload=item.payload,
        withheld=list(item.withheld),
    )


def _local_refusal(message_id: str, detail: str) -> Receipt:
    """The SDK refused to build the envelope: settle it as the gateway would have."""
    return Receipt(
        message_id=message_id,
        status="refused",
        reason=ReasonCode.ENVELOPE_INVALID.value,
        detail=detail,
        decided_at=datetime.now(UTC),
    )


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
