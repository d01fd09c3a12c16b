"""Client SDK for agency systems: send sealed messages, read the verified inbox.

Over the ~400-line norm: `AgencyClient` is the SDK's whole surface (send, receipts,
inbox, alerts, notices, confirmations, checkpoints, directory pickup); the next split
moves the directory pickup and confirmations into modules of their own.

async with await AgencyClient.from_agency_home("/srv/police-s284") as client:
    receipt = await client.send(kind="risk.update", purpose="offender_management",
                                offender="S284-000123", to=["police"], payload={...})
    async for item in client.inbox():
        ...  # acknowledged once the loop asks for the next item

The client follows the signed key directory published on `s284.directory`: it checks for a
newer version at most once a second before sending or fetching, adopts it only if it
verifies against the pinned directory key and is not older than the one held, and signs
with the newest of its own keys the directory admits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import structlog

from audit import Announcement, AuditError, CheckpointKeeper, parse_verifier_key
from broker.errors import (
    ConfigError,
    CryptoError,
    DirectoryError,
    LogIntegrityError,
    ReceiptTimeoutError,
    TransportError,
)
from broker.home import AgencyHome, Home
from broker.nats.client import Connection
from broker.nats.config import (
    DIRECTORY_SUBJECT,
    STREAM_CHECKPOINTS,
    STREAM_DELIVER,
    STREAM_DIRECTORY,
    STREAM_RECEIPTS,
    Credentials,
    alert_consumer,
    checkpoint_consumer,
    confirm_subject,
    deliver_consumer,
    ingress_subject,
    notice_consumer,
    provider_ingress_subject,
    provider_receipt_subject,
    receipt_consumer,
    receipt_subject,
)
from broker.nats.transport import Inbound, Transport
from broker.seen import SEEN_FILE, SeenDeliveries
from broker.wire.confirmations import sign_confirmation
from broker.wire.directory import DirectoryVerifier, offer
from broker.wire.envelope import Agency, Envelope, Kind, Purpose, Receipt, Sender
from broker.wire.keys import DirectoryHolder, Identity, KeyDirectory, Keyring
from broker.wire.notices import NoticeContent, open_notice
from broker.wire.providers import SERVICE_ROLES, provider_of
from broker.wire.sealing import VerifiedDelivery, open_delivery, seal_ingress, verify_receipt

log = structlog.get_logger("s284.sdk")
_T = TypeVar("_T")


def _contact_of(subject: str) -> str | None:
    """s284.alert.<agency>.<contact> -> contact; None for a plain delivery."""
    parts = subject.split(".")
    return parts[3] if len(parts) == 4 and parts[1] == "alert" else None  # noqa: PLR2004


def _load_keeper(state: Path, log_key: str) -> CheckpointKeeper:
    verifier = parse_verifier_key(log_key)
    if not state.is_file():
        return CheckpointKeeper(verifier, {})
    return CheckpointKeeper.from_json(verifier, state.read_text())


def _save_keeper(state: Path, keeper: CheckpointKeeper) -> None:
    tmp = state.with_suffix(".tmp")
    tmp.write_text(keeper.to_json())
    tmp.replace(state)  # atomic: a crash never leaves half a file


_MAX_UNCLAIMED = 10_000


@dataclasses.dataclass
class DirectoryPickup:
    """Where newer directory versions are checked against: the pinned directory key, and
    the agency home that remembers the last version accepted (a rollback across restarts
    is refused too)."""

    verifier: DirectoryVerifier
    cache: AgencyHome | None = None
    every_s: float = 1.0
    last_check: float = float("-inf")


class AgencyClient:
    """One agency system's connection. Create with `from_agency_home`, `from_home`,
    `connect` or, on a transport already connected (the in-memory twin in tests),
    `on_transport`."""

    def __init__(
        self,
        conn: Transport,
        identity: Identity | Keyring,
        directory: KeyDirectory,
        sender: Sender,
        pickup: DirectoryPickup | None = None,
    ) -> None:
        self._conn = conn
        self._keys = identity if isinstance(identity, Keyring) else Keyring((identity,))
        self._directory = (
            directory if isinstance(directory, DirectoryHolder) else DirectoryHolder(directory)
        )
        self._sender = sender
        self._provider = provider_of(self._keys.name)  # a funded service's own client
        self._pickup = pickup
        self._waiting: dict[str, asyncio.Future[Receipt]] = {}
        self._early: OrderedDict[str, Receipt] = OrderedDict()
        self._confirming: set[asyncio.Task[None]] = set()
        cache = pickup.cache if pickup is not None else None
        self._seen = SeenDeliveries(cache.path / SEEN_FILE if cache is not None else None)

    @classmethod
    async def connect(
        cls,
        nats_url: str,
        creds: Credentials,
        identity: Identity | Keyring,
        directory: KeyDirectory,
        sender: Sender | None = None,
        pickup: DirectoryPickup | None = None,
    ) -> AgencyClient:
        name = f"s284-sdk-{identity.name}"
        conn = await Connection.connect(nats_url, creds, name=name)
        return await cls.on_transport(conn, identity, directory, sender, pickup)

    @classmethod
    async def on_transport(
        cls,
        conn: Transport,
        identity: Identity | Keyring,
        directory: KeyDirectory,
        sender: Sender | None = None,
        pickup: DirectoryPickup | None = None,
    ) -> AgencyClient:
        """A client on a connected transport, listening for its receipts; it closes `conn`."""
        provider = provider_of(identity.name)
        agency = provider.funder if provider else Agency(identity.name)
        role = SERVICE_ROLES[identity.service] if provider and identity.service else "system"
        client = cls(
            conn,
            identity,
            directory,
            sender or Sender(agency=agency, unit="hq", person_id="system", role=role),
            pickup,
        )
        receipts = provider_receipt_subject(provider, ">") if provider else None
        await conn.subscribe(receipts or receipt_subject(agency.value, ">"), client._on_receipt)
        await client.refresh_directory(force=True)
        return client

    @classmethod
    async def from_agency_home(
        cls, agency_home: Path | str, sender: Sender | None = None
    ) -> AgencyClient:
        """An agency's own home (`s284 agency init`, then the operator's connection
        details): its keys, NATS credentials, pinned directory key, last directory held."""
        ah = AgencyHome(Path(agency_home))
        keys, (url, creds) = ah.keyring(), ah.connection()
        pickup = DirectoryPickup(ah.directory_verifier(), ah)
        cached = ah.cached_directory()
        held = pickup.verifier.verify(cached) if cached else KeyDirectory([])
        client = await cls.connect(
            url, creds, keys, DirectoryHolder(held, cached or b""), sender, pickup
        )
        if client.directory_version == 0:
            await client.close()
            raise ConfigError(
                "no key directory published on s284.directory yet; is a gateway running?"
            )
        return client

    @classmethod
    async def from_home(
        cls, home: Path | str, agency: str, sender: Sender | None = None
    ) -> AgencyClient:
        """Embedded and demo: the agency home beside the broker's `home`, reached with the
        broker home's NATS details."""
        h = Home(Path(home))
        ah = h.agency_home(agency)
        pickup = DirectoryPickup(h.directory_verifier(), ah)
        signed = h.signed_directory()
        held = DirectoryHolder(pickup.verifier.verify(signed), signed)
        return await cls.connect(
            h.nats_url, h.credentials(agency), ah.keyring(), held, sender, pickup
        )

    @property
    def directory_version(self) -> int:
        return self._directory.version

    async def refresh_directory(self, *, force: bool = False) -> None:
        """Adopt a newer published directory; a refused one is logged and the held kept."""
        pickup = self._pickup
        now = asyncio.get_running_loop().time()
        if pickup is None or (not force and now - pickup.last_check < pickup.every_s):
            return
        pickup.last_check = now
        try:
            signed = await self._conn.last_message(STREAM_DIRECTORY, DIRECTORY_SUBJECT)
            if signed is None or not offer(self._directory, pickup.verifier, signed):
                return
        except TransportError as exc:  # NATS blip: the held version serves meanwhile
            log.warning("directory_unreachable", held=self._directory.version, error=str(exc))
            return
        except DirectoryError as exc:
            log.warning("directory_refused", held=self._directory.version, reason=str(exc))
            return
        log.info("directory_adopted", version=self._directory.version)
        if pickup.cache is not None:  # the agency may have rotated too: re-read its keys
            pickup.cache.cache_directory(signed)
            self._keys = pickup.cache.keyring()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def agency(self) -> Agency:
        return self._sender.agency

    @property
    def _ingress_subject(self) -> str:
        """The agency's subject, or a funded service's own (its funder is `agency`)."""
        if self._provider is not None:
            return provider_ingress_subject(self._provider)
        return ingress_subject(self.agency.value)

    def envelope(
        self,
        *,
        kind: Kind | str,
        purpose: Purpose | str,
        offender: str,
        to: Sequence[Agency | str],
        **extra: Any,
    ) -> Envelope:
        """Build and validate an envelope from this client's sender identity."""
        return Envelope(
            sender=self._sender,
            kind=Kind(kind),
            purpose=Purpose(purpose),
            offender=offender,
            recipients=[Agency(a) for a in to],
            **extra,
        )

    def seal(self, envelope: Envelope, payload: dict[str, Any]) -> bytes:
        """Signed with the newest of this agency's keys the directory admits."""
        signer = self._keys.signer(self._directory)
        return seal_ingress(envelope, payload, signer, self._directory)

    def _opened(self, opener: Callable[[Identity], _T]) -> _T:
        """With the key generation the item was sealed to (older ones still decrypt)."""
        error = CryptoError("no key of this agency opens it")
        for identity in self._keys.newest_first():
            try:
                return opener(identity)
            except CryptoError as exc:
                error = exc
        raise error

    async def publish_frame(self, frame: bytes, message_id: str) -> None:
        """Publish an already sealed frame (JetStream de-duplicates on the message id)."""
        await self._conn.publish(self._ingress_subject, frame, message_id)

    async def publish_unchecked(self, frame: bytes, headers: dict[str, str]) -> None:
        """Publish arbitrary bytes on this agency's ingress subject, bypassing the SDK's
        checks: for exercising the gateway with a misbehaving sender (demo, tests)."""
        await self._conn.publish_raw(self._ingress_subject, frame, headers)

    async def send(
        self,
        *,
        kind: Kind | str,
        purpose: Purpose | str,
        offender: str,
        to: Sequence[Agency | str],
        payload: dict[str, Any],
        timeout: float = 15.0,  # noqa: ASYNC109
        **extra: Any,
    ) -> Receipt:
        """Seal, publish and wait for the gateway's signed receipt (accepted or refused).

        `id=` (an envelope field, passed through `extra`) reuses a message id: a system
        resending after a crash does so under the id it recorded, so JetStream de-duplicates
        the publish and the gateway refuses a second copy as `replay.duplicate_id`.
        """
        env = self.envelope(kind=kind, purpose=purpose, offender=offender, to=to, **extra)
        await self.refresh_directory()
        await self.publish_frame(self.seal(env, payload), env.id)
        return await self.receipt(env.id, timeout)

    async def receipt(self, message_id: str, timeout: float = 15.0) -> Receipt:  # noqa: ASYNC109
        if message_id in self._early:
            return self._early.pop(message_id)
        fut = self._waiting.setdefault(message_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise ReceiptTimeoutError(
                f"no receipt for {message_id} within {timeout:.0f} s; is the gateway running?"
            ) from None
        finally:
            self._waiting.pop(message_id, None)

    def _on_receipt(self, data: bytes) -> None:
        try:
            receipt = verify_receipt(data, self._directory)
        except CryptoError:
            log.warning("receipt_rejected", reason="bad_signature")
            return
        ref = receipt.message_id or "unknown"
        fut = self._waiting.get(ref)
        if fut is not None and not fut.done():
            fut.set_result(receipt)
        else:  # arrived before anyone asked; keep a bounded number, oldest dropped first
            self._early[ref] = receipt
            while len(self._early) > _MAX_UNCLAIMED:
                self._early.popitem(last=False)

    async def stored_receipts(self, idle_timeout: float = 0.5) -> list[Receipt]:
        """Drain the receipts the broker kept for this agency (its receipt stream) and
        acknowledge them. `receipt()` only sees receipts published while this client is
        connected; a system restarting after a crash reads here the answers to messages it
        published before the crash, instead of sending them again.
        """
        user = self._provider.user if self._provider else self.agency.value
        consumer = self._conn.pull(STREAM_RECEIPTS, receipt_consumer(user))
        found: list[Receipt] = []
        while msgs := await consumer.fetch(256, timeout=idle_timeout):
            for msg in msgs:
                try:
                    found.append(verify_receipt(msg.data, self._directory))
                except CryptoError:
                    log.warning("receipt_rejected", seq=msg.stream_seq, reason="bad_signature")
                await msg.ack()
        return found

    async def inbox(
        self, follow: bool = False, batch: int = 64, idle_timeout: float = 1.0
    ) -> AsyncIterator[VerifiedDelivery]:
        """Verified, decrypted deliveries. Each is acknowledged when the next is requested,
        so one the caller fails to handle is redelivered, and then confirmed to the broker
        (a signed confirmation of receipt). One taken before (the broker re-sends what it
        has no confirmation for) is acknowledged and confirmed again, never yielded twice
        (broker/seen.py). Without `follow`, stops when empty.
        """
        consumer = deliver_consumer(self.agency.value)
        async for item in self._deliveries(consumer, follow, batch, idle_timeout):
            yield item

    async def alerts(
        self, follow: bool = False, batch: int = 64, idle_timeout: float = 1.0
    ) -> AsyncIterator[VerifiedDelivery]:
        """Routed alerts for this agency's designated contacts (and its duty inbox), verified
        and decrypted; `item.contact` names who it is for. Acked like `inbox`."""
        consumer = alert_consumer(self.agency.value)
        async for item in self._deliveries(consumer, follow, batch, idle_timeout):
            yield item

    async def _deliveries(
        self, durable: str, follow: bool, batch: int, idle_timeout: float
    ) -> AsyncIterator[VerifiedDelivery]:
        def opened(msg: Inbound) -> VerifiedDelivery:
            item = self._opened(lambda me: open_delivery(msg.data, me, self._directory))
            return dataclasses.replace(item, contact=_contact_of(msg.subject))

        pulled = self._pulled(
            durable, opened, follow, batch, idle_timeout, self._taken, self._seen_before
        )
        async for item in pulled:
            yield item

    def _seen_before(self, item: VerifiedDelivery) -> bool:
        """A re-sent delivery this system took already (broker/seen.py)."""
        return SeenDeliveries.key(item.delivery_id, item.contact) in self._seen

    async def _taken(self, item: VerifiedDelivery) -> None:
        """Remember it (so a re-send is not handed over again), then confirm it; a re-send
        is confirmed again: the broker re-sent it because no confirmation reached it."""
        self._seen.add(SeenDeliveries.key(item.delivery_id, item.contact))
        await self._confirm_soon(item)

    async def confirm(self, item: VerifiedDelivery) -> None:
        """Tell the broker this system has taken `item` (wire format section 3.7): a
        confirmation signed with this agency's key, recorded in the disclosure log as
        `received`. Called by `inbox()`/`alerts()` after each ack; a NATS failure is logged,
        the delivery stays unconfirmed in the log (`s284 audit unconfirmed`)."""
        signer = self._keys.signer(self._directory)
        frame = sign_confirmation(item.delivery_id, item.envelope.id, signer)
        subject = confirm_subject(self.agency.value)
        try:
            await self._conn.publish(subject, frame, f"confirm:{item.delivery_id}")
        except TransportError as exc:
            log.warning("confirmation_unsent", delivery_id=item.delivery_id, error=str(exc)[:200])

    async def _confirm_soon(self, item: VerifiedDelivery) -> None:
        """Confirmations go out in the background (many in flight at once, each waiting for
        its fsynced PubAck) so reading the inbox does not wait for them; `close` does."""
        task = asyncio.create_task(self.confirm(item))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def notices(
        self, follow: bool = False, batch: int = 64, idle_timeout: float = 1.0
    ) -> AsyncIterator[NoticeContent]:
        """What the broker tells this agency about its routed alerts (acknowledged,
        escalated, the contact's reply) and CSP review reminders; verified and decrypted."""

        def opened(msg: Inbound) -> NoticeContent:
            return self._opened(lambda me: open_notice(msg.data, me, self._directory))

        durable = notice_consumer(self.agency.value)
        async for notice in self._pulled(durable, opened, follow, batch, idle_timeout):
            yield notice

    async def _pulled(
        self,
        durable: str,
        opened: Callable[[Inbound], _T],
        follow: bool,
        batch: int,
        idle_timeout: float,
        taken: Callable[[_T], Awaitable[None]] | None = None,
        seen: Callable[[_T], bool] | None = None,
    ) -> AsyncIterator[_T]:
        """Verified items from one of this agency's consumers; each acked when the next is
        asked for (then handed to `taken`); one that fails verification is terminated
        (never redelivered); one `seen` before is acked (and handed to `taken`) unyielded."""
        consumer = self._conn.pull(STREAM_DELIVER, durable)
        while True:
            await self.refresh_directory()
            msgs = await consumer.fetch(batch, timeout=idle_timeout)
            if not msgs and not follow:
                return
            for msg in msgs:
                try:
                    item = opened(msg)
                except CryptoError as exc:
                    log.warning("frame_rejected", seq=msg.stream_seq, reason=str(exc))
                    await msg.term()
                    continue
                if seen is not None and seen(item):
                    log.info("delivery_seen_before", seq=msg.stream_seq)
                else:
                    yield item
                await msg.ack()
                if taken is not None:
                    await taken(item)

    async def sync_checkpoints(self, state: Path, log_key: str, idle_timeout: float = 1.0) -> int:
        """Fetch the log's new signed checkpoints and check each extends those kept in
        `state` (a JSON file this agency keeps); return how many were new.

        Raises LogIntegrityError on a forged checkpoint or a forked or rewritten log; the
        offending checkpoint is not acknowledged, so it stays for an operator to inspect.
        """
        keeper = _load_keeper(state, log_key)
        consumer = self._conn.pull(STREAM_CHECKPOINTS, checkpoint_consumer(self.agency.value))
        new = 0
        while msgs := await consumer.fetch(64, timeout=idle_timeout):
            for msg in msgs:
                try:
                    keeper.accept(Announcement.from_json(msg.data))
                except AuditError as exc:
                    _save_keeper(state, keeper)
                    raise LogIntegrityError(f"disclosure log checkpoint refused: {exc}") from None
                new += 1
                _save_keeper(state, keeper)
                await msg.ack()
        return new

    async def close(self) -> None:
        """Closes the connection once every pending confirmation of receipt has been sent."""
        await asyncio.gather(*self._confirming, return_exceptions=True)
        self._seen.close()
        for fut in self._waiting.values():
            fut.cancel()
        with contextlib.suppress(Exception):
            await self._conn.close()


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: how a long-running agency process stops cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
