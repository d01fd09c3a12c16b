"""What the rest of the broker uses of NATS, as a Protocol: the real client
(`broker.nats.client.Connection`) and the in-memory twin (`broker.nats.twin`) both satisfy
it, and one contract test suite (tests/test_transport_contract.py) holds them to the same
behaviour. Nothing here imports `nats`: an `Inbound` carries its ack controls as a small
protocol, so its users never see a nats-py type."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from broker.wire.providers import ProviderId


@dataclass(frozen=True)
class StreamLimits:
    """The deployment's limits that shape the streams and consumers."""

    max_frame_bytes: int
    ack_wait_s: float
    max_deliver: int


class AckControls(Protocol):
    """How one delivered JetStream message is settled (nats-py's `Msg` fits as it is)."""

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None: ...

    async def term(self) -> None: ...


@dataclass
class Inbound:
    """One JetStream message, with the metadata the gateway needs and its ack controls."""

    data: bytes = field(repr=False)  # ciphertext, but still never in a repr or a log
    subject: str
    headers: dict[str, str]
    stream_seq: int
    num_delivered: int
    stored_at: datetime
    _controls: AckControls = field(repr=False)

    async def ack(self) -> None:
        await self._controls.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Redeliver, after `delay` seconds if given (else at once)."""
        await self._controls.nak(delay=delay)

    async def term(self) -> None:
        """Never redeliver this message to this consumer."""
        await self._controls.term()


class Consumer(Protocol):
    """A bound durable pull consumer."""

    async def fetch(self, batch: int, timeout: float) -> list[Inbound]:  # noqa: ASYNC109
        """Up to `batch` messages; an empty list when none came within `timeout` seconds."""
        ...


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Transport(Protocol):
    """An authenticated NATS connection with JetStream, as the broker uses it.

    Every refusal (permission, size, no stream, connection lost) raises
    `broker.errors.TransportError`.
    """

    @property
    def user(self) -> str: ...

    @property
    def is_connected(self) -> bool: ...

    async def publish(self, subject: str, data: bytes, msg_id: str) -> int:
        """JetStream publish under `Nats-Msg-Id: msg_id`; the stream sequence (a duplicate
        within the stream's window returns the original's)."""
        ...

    async def publish_many(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        """`publish` of each (subject, data, msg_id), pipelined: the stream sequences, in
        order; TransportError if any cannot be stored."""
        ...

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        """JetStream publish with exactly these headers, without retries."""
        ...

    def pull(self, stream: str, durable: str) -> Consumer: ...

    async def last_message(self, stream: str, subject: str) -> bytes | None:
        """The newest message on `subject` in `stream`; None if there is none yet."""
        ...

    async def subscribe(self, subject: str, handler: Callable[[bytes], None]) -> Subscription:
        """Core NATS: `handler` sees every message published on `subject` from now on."""
        ...

    async def flush(self) -> None: ...

    async def ensure_streams(
        self, limits: StreamLimits, agencies: list[str], providers: tuple[ProviderId, ...] = ()
    ) -> None:
        """Create or update every stream and durable consumer (idempotent; gateway only)."""
        ...

    async def close(self) -> None: ...
