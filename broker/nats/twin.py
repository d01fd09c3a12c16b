"""An in-memory twin of NATS JetStream, for fast tests of the gateway, SDK and alerts.

    server = MemoryNats()
    gateway = server.connect("gateway")          # a `Transport`, like `Connection`
    await gateway.ensure_streams(limits, agencies)
    police = server.connect("police")

It keeps the JetStream semantics the broker relies on: streams by subject filter (`*`,
`>`), work-queue and limits retention, the Nats-Msg-Id duplicate window (a duplicate
returns the original sequence), maximum message size, durable pull consumers with filter
subjects, ack / nak with delay / term, redelivery after ack_wait up to max_deliver, and
core NATS fan-out to subscribers. It enforces the isolation rules of
`broker.nats.permissions`, so what nats-server refuses, the twin refuses too
(tests/test_transport_contract.py runs the same assertions on both).

Not modelled: max_age expiry, clustering, restarts, TLS and the JetStream API as such.
Fetch waits on an event, never in a polling loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from broker.errors import TransportError
from broker.nats.config import MAX_PAYLOAD
from broker.nats.permissions import Permissions, permissions_for, subject_matches
from broker.nats.streams import ConsumerSpec, StreamSpec, consumer_specs, stream_specs
from broker.nats.transport import Inbound, StreamLimits
from broker.wire.providers import ProviderId

if TYPE_CHECKING:
    from broker.nats.transport import Transport

log = structlog.get_logger("s284.twin")
MSG_ID = "Nats-Msg-Id"


def _now() -> float:
    return asyncio.get_running_loop().time()


class _Signal:
    """Wakes every waiter at each change; a waiter takes `current` before it looks."""

    def __init__(self) -> None:
        self.current = asyncio.Event()

    def fire(self) -> None:
        self.current.set()
        self.current = asyncio.Event()


@dataclass(frozen=True)
class _Stored:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]
    stored_at: datetime


class _Stream:
    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.messages: dict[int, _Stored] = {}
        self.last_seq = spec.first_seq - 1
        self.changed = _Signal()
        self.interrupts = 0  # fetches waiting when this rises return at once
        self._ids: dict[str, tuple[int, float]] = {}  # Nats-Msg-Id -> (seq, stored at)

    def store(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        if len(data) > self.spec.max_msg_size:
            raise TransportError(
                f"publish to {subject} refused: message size exceeds maximum allowed"
            )
        msg_id = headers.get(MSG_ID)
        original = self._duplicate_of(msg_id)
        if original is not None:
            return original
        self.last_seq += 1
        self.messages[self.last_seq] = _Stored(
            self.last_seq, subject, data, dict(headers), datetime.now(UTC)
        )
        if msg_id:
            self._ids[msg_id] = (self.last_seq, _now())
        self.changed.fire()
        return self.last_seq

    def _duplicate_of(self, msg_id: str | None) -> int | None:
        horizon = _now() - self.spec.duplicate_window_s
        for old in [k for k, (_, at) in self._ids.items() if at < horizon]:
            del self._ids[old]
        if msg_id is None or msg_id not in self._ids:
            return None
        return self._ids[msg_id][0]

    def remove(self, seq: int) -> None:
        if self.spec.work_queue:
            self.messages.pop(seq, None)


@dataclass
class _Pending:
    num_delivered: int = 0
    redeliver_at: float = 0.0


class _Consumer:
    """A durable pull consumer: new messages in order, then due redeliveries."""

    def __init__(self, spec: ConsumerSpec, stream: _Stream) -> None:
        self.spec = spec
        self.stream = stream
        self.next_seq = stream.spec.first_seq  # ingress streams number in per-agency ranges
        self.pending: dict[int, _Pending] = {}  # delivered, neither acked nor terminated

    async def fetch(self, batch: int, timeout: float, may_ack: bool) -> list[Inbound]:  # noqa: ASYNC109
        deadline, interrupts = _now() + timeout, self.stream.interrupts
        while True:
            changed = self.stream.changed.current
            taken = self._take(batch, may_ack)
            remaining = deadline - _now()
            if taken or remaining <= 0 or self.stream.interrupts != interrupts:
                return taken
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, self._next_redelivery()))
            except TimeoutError:
                continue

    def _next_redelivery(self) -> float:
        due = [p.redeliver_at for p in self.pending.values()]
        return max(0.0, min(due) - _now()) if due else float("inf")

    def _take(self, batch: int, may_ack: bool) -> list[Inbound]:
        now, out = _now(), list[Inbound]()
        for seq in sorted(self.pending):
            if len(out) < batch and self.pending[seq].redeliver_at <= now:
                out += self._redeliver(seq, may_ack)
        while len(out) < batch and self.next_seq <= self.stream.last_seq:
            msg = self.stream.messages.get(self.next_seq)
            self.next_seq += 1
            wanted = not self.spec.filter_subject or subject_matches(
                self.spec.filter_subject, msg.subject if msg else ""
            )
            if msg is not None and wanted:
                self.pending[msg.seq] = _Pending()
                out.append(self._deliver(msg, may_ack))
        return out

    def _redeliver(self, seq: int, may_ack: bool) -> list[Inbound]:
        msg, pending = self.stream.messages.get(seq), self.pending[seq]
        spent = 0 < self.spec.max_deliver <= pending.num_delivered
        if msg is None or spent:  # JetStream stops delivering it; it stays in the stream
            del self.pending[seq]
            return []
        return [self._deliver(msg, may_ack)]

    def _deliver(self, msg: _Stored, may_ack: bool) -> Inbound:
        pending = self.pending[msg.seq]
        pending.num_delivered += 1
        pending.redeliver_at = _now() + self.spec.ack_wait_s
        controls = _Acks(self, msg.seq, may_ack=may_ack)
        return Inbound(
            msg.data,
            msg.subject,
            dict(msg.headers),
            msg.seq,
            pending.num_delivered,
            msg.stored_at,
            controls,
        )

    def settle(self, seq: int, *, remove: bool) -> None:
        if self.pending.pop(seq, None) is not None and remove:
            self.stream.remove(seq)

    def nak(self, seq: int, delay: float | None) -> None:
        pending = self.pending.get(seq)
        if pending is not None:
            pending.redeliver_at = _now() + (delay or 0.0)
            self.stream.changed.fire()


class _Acks:
    """The ack controls of one delivery. As on nats-server, an ack the user may not send
    is dropped (and the message redelivered after ack_wait), not raised."""

    def __init__(self, consumer: _Consumer, seq: int, *, may_ack: bool) -> None:
        self._consumer = consumer
        self._seq = seq
        self._may_ack = may_ack

    def _allowed(self, what: str) -> bool:
        if not self._may_ack:
            durable = self._consumer.spec.durable
            log.warning("twin_permission_violation", what=what, consumer=durable)
        return self._may_ack

    async def ack(self) -> None:
        if self._allowed("ack"):
            self._consumer.settle(self._seq, remove=True)

    async def nak(self, delay: float | None = None) -> None:
        if self._allowed("nak"):
            self._consumer.nak(self._seq, delay)

    async def term(self) -> None:
        if self._allowed("term"):
            self._consumer.settle(self._seq, remove=True)  # as JetStream: term acks, no redelivery


class _Subscription:
    def __init__(self, server: MemoryNats, subject: str, handler: Callable[[bytes], None]) -> None:
        self.subject = subject
        self.handler = handler
        self._server = server

    async def unsubscribe(self) -> None:
        self._server.drop(self)


class MemoryNats:
    """The server side: streams, durable consumers and core subscriptions, in this process.
    `connect(user)` gives a `Transport` with that user's permissions."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._streams: dict[str, _Stream] = {}
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        self._subs: list[_Subscription] = []

    def connect(self, user: str) -> TwinConnection:
        return TwinConnection(self, user)

    def stream_size(self, stream: str) -> int:
        """How many messages a stream holds now (what `stream_info().state.messages` says)."""
        found = self._streams.get(stream)
        return len(found.messages) if found is not None else 0

    def last_message(self, stream: str, subject: str) -> bytes | None:
        found = self._streams.get(stream)
        if found is None:
            raise TransportError(f"cannot read {subject} from {stream}: stream not found")
        matching = [m for m in found.messages.values() if subject_matches(subject, m.subject)]
        return max(matching, key=lambda m: m.seq).data if matching else None

    def interrupt(self) -> None:
        """Every fetch waiting now returns what it has (nothing): a worker told to stop
        need not sit out its fetch timeout (tests stop gateways hundreds of times)."""
        for stream in self._streams.values():
            stream.interrupts += 1
            stream.changed.fire()

    def ensure(
        self, limits: StreamLimits, agencies: list[str], providers: tuple[ProviderId, ...] = ()
    ) -> None:
        for spec in stream_specs(limits, agencies):
            old = self._streams.get(spec.name)
            if old is None:
                self._streams[spec.name] = _Stream(spec)
            else:
                old.spec = spec
        for cspec in consumer_specs(limits, agencies, providers=providers):
            key = (cspec.stream, cspec.durable)
            if key in self._consumers:
                self._consumers[key].spec = cspec
            else:
                self._consumers[key] = _Consumer(cspec, self._streams[cspec.stream])

    def consumer(self, stream: str, durable: str) -> _Consumer:
        found = self._consumers.get((stream, durable))
        if found is None:
            raise TransportError(f"consumer {durable} on {stream} not found")
        return found

    def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        for sub in [s for s in self._subs if subject_matches(s.subject, subject)]:
            asyncio.get_running_loop().call_soon(sub.handler, data)  # core NATS fan-out
        for stream in self._streams.values():
            if any(subject_matches(p, subject) for p in stream.spec.subjects):
                return stream.store(subject, data, headers)
        raise TransportError(f"publish to {subject} failed: no stream (no responders)")

    def subscribe(self, subject: str, handler: Callable[[bytes], None]) -> _Subscription:
        sub = _Subscription(self, subject, handler)
        self._subs.append(sub)
        return sub

    def drop(self, sub: _Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)


class _TwinPull:
    def __init__(self, conn: TwinConnection, stream: str, durable: str) -> None:
        self._conn = conn
        self._stream = stream
        self._durable = durable

    async def fetch(self, batch: int, timeout: float) -> list[Inbound]:  # noqa: ASYNC109
        perms = self._conn.permissions
        self._conn.check_open()
        if not perms.may_pull(self._stream, self._durable):
            raise TransportError(
                f"fetch from {self._stream}/{self._durable} refused: permissions violation"
            )
        consumer = self._conn.server.consumer(self._stream, self._durable)
        return await consumer.fetch(batch, timeout, perms.may_ack(self._stream, self._durable))


class TwinConnection:
    """One user's connection to a `MemoryNats`; satisfies `broker.nats.transport.Transport`."""

    def __init__(self, server: MemoryNats, user: str) -> None:
        self.server = server
        self.permissions: Permissions = permissions_for(user)
        self._user = user
        self._open = True
        self._subs: list[_Subscription] = []

    @property
    def user(self) -> str:
        return self._user

    @property
    def is_connected(self) -> bool:
        return self._open

    def check_open(self) -> None:
        if not self._open:
            raise TransportError(f"connection of {self._user!r} is closed")

    async def publish(self, subject: str, data: bytes, msg_id: str) -> int:
        return self._publish(subject, data, {MSG_ID: msg_id})

    async def publish_many(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        return [self._publish(subject, data, {MSG_ID: msg_id}) for subject, data, msg_id in items]

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        return self._publish(subject, data, headers)

    def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        self.check_open()
        if not self.permissions.may_publish(subject):
            raise TransportError(f"publish to {subject} refused: permissions violation")
        if len(data) > self.server.max_payload:
            raise TransportError(f"publish to {subject} refused: maximum payload exceeded")
        return self.server.publish(subject, data, headers)

    def pull(self, stream: str, durable: str) -> _TwinPull:
        return _TwinPull(self, stream, durable)

    async def last_message(self, stream: str, subject: str) -> bytes | None:
        self.check_open()
        if not self.permissions.may_read_last(stream):
            raise TransportError(f"cannot read {subject} from {stream}: permissions violation")
        return self.server.last_message(stream, subject)

    async def subscribe(self, subject: str, handler: Callable[[bytes], None]) -> _Subscription:
        self.check_open()
        if not self.permissions.may_subscribe(subject):
            raise TransportError(f"cannot subscribe to {subject}: permissions violation")
        sub = self.server.subscribe(subject, handler)
        self._subs.append(sub)
        return sub

    async def flush(self) -> None:
        self.check_open()
        await asyncio.sleep(0)  # let call_soon fan-out run, as a round trip would

    async def ensure_streams(
        self, limits: StreamLimits, agencies: list[str], providers: tuple[ProviderId, ...] = ()
    ) -> None:
        self.check_open()
        if not self.permissions.manage_streams:
            raise TransportError(f"{self._user!r} may not manage streams: permissions violation")
        self.server.ensure(limits, agencies, providers)

    async def close(self) -> None:
        self._open = False
        for sub in self._subs:
            self.server.drop(sub)
        self._subs.clear()


if TYPE_CHECKING:  # mypy proves the twin is a Transport, as it does for the real client
    _CONFORMS: Transport = TwinConnection(MemoryNats(), "gateway")
