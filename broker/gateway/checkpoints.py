"""Signed checkpoints of the disclosure log: made by the gateway every N records or T
seconds, stored, and announced on the `S284_CHECKPOINTS` stream (no delete, no purge),
where every agency's SDK reads them and checks each extends the last it holds."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from audit import (
    Announcement,
    AuditStore,
    CheckpointSigner,
    VerifyReport,
    announce,
    parse_verifier_key,
    signed_checkpoint,
    verify_log,
)
from broker.errors import BrokerError, TransportError
from broker.home import Home
from broker.ids import new_id
from broker.nats.config import CHECKPOINT_SUBJECT
from broker.nats.transport import Transport
from broker.settings import Settings

log = structlog.get_logger("s284.checkpoints")


class Checkpointer:
    """Signs a checkpoint once `every_records` records have been added since the last one,
    and at least every `every_s` seconds while the log grows. The key stays with the signer
    (broker/signer): this process only asks it to sign."""

    def __init__(
        self,
        store: AuditStore,
        signer: CheckpointSigner,
        conn: Transport,
        every_records: int,
        every_s: float,
    ) -> None:
        self._store = store
        self._signer = signer
        self._conn = conn
        self._every_records = every_records
        self._every_s = every_s
        self._pending = 0
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def added(self, count: int) -> None:
        """Called after each committed batch with the number of new records."""
        self._pending += count
        if self._pending >= self._every_records:
            await self.checkpoint_now()

    async def run(self, stop: asyncio.Event) -> None:
        await self.republish_latest()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every_s / 4)
            if time.monotonic() - self._last >= self._every_s:
                await self.checkpoint_now()
        await self.checkpoint_now()  # the newest records are covered before we stop

    async def checkpoint_now(self) -> None:
        async with self._lock:
            self._pending = 0
            self._last = time.monotonic()
            try:
                made = await asyncio.to_thread(self._seal_and_sign)
            except Exception as exc:  # noqa: BLE001 - the next tick retries; records are durable
                # The signer's refusal (a tree that does not extend what it signed) says why;
                # other errors (a driver's) may quote too much: their class only.
                detail = str(exc) if isinstance(exc, BrokerError) else None
                log.warning("checkpoint_failed", error=exc.__class__.__name__, detail=detail)
                return
            if made is not None:
                await self._publish(made)

    def _seal_and_sign(self) -> Announcement | None:
        """The API access log's head goes into the log first, so this checkpoint covers it."""
        self._store.seal_access("gateway", new_id())
        return signed_checkpoint(self._store, self._signer)

    async def republish_latest(self) -> None:
        """A crash between storing and announcing a checkpoint is repaired at start."""
        latest = await asyncio.to_thread(self._store.latest_checkpoint)
        if latest is None:
            return
        previous = await asyncio.to_thread(self._store.checkpoint_before, latest.size)
        made = await asyncio.to_thread(announce, self._store, latest.note, latest.size, previous)
        await self._publish(made)

    async def _publish(self, made: Announcement) -> None:
        size = made.note.split("\n", 2)[1]
        try:
            await self._conn.publish(CHECKPOINT_SUBJECT, made.to_json(), f"checkpoint:{size}")
        except TransportError:
            log.warning("checkpoint_publish_failed", size=size)
            return
        log.info("checkpoint_published", size=size)


def verify_home_log(home: Home) -> VerifyReport:
    """`s284 audit verify` of a deployment home's own SQLite log."""
    store = AuditStore.open(Settings(home=home.path).database_url)
    try:
        return verify_log(store, parse_verifier_key(home.log_vkey()))
    finally:
        store.close()
