"""All NATS I/O. The only module that imports `nats`.

Hardened against nats-py's known pitfalls: a fetch on an empty stream raises a
timeout (we return an empty batch); a pull subscription can go stale across a
server restart (we re-bind it); publishes can fail while a stream leader is being
elected or the connection is re-established (we retry with backoff, under the same
Nats-Msg-Id so JetStream de-duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from broker.errors import TransportError
from broker.nats.config import (
    CHECKPOINT_SUBJECT,
    DIRECTORY_SUBJECT,
    GATEWAY_CONSUMER,
    MAX_PAYLOAD,
    STREAM_CHECKPOINTS,
    STREAM_DELIVER,
    STREAM_DIRECTORY,
    STREAM_DLQ,
    STREAM_RECEIPTS,
    Credentials,
    agency_consumers,
    inbox_prefix,
    ingress_first_seq,
    ingress_stream,
    ingress_subject,
)
from broker.nats.login import connect_failure, login_options, tls_context

log = structlog.get_logger("s284.transport")

_RETRYABLE = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,  # stream briefly unavailable (update, election)
    asyncio.TimeoutError,
)
_DAY = 86_400.0


def _why(exc: Exception) -> str:
    return str(getattr(exc, "description", None) or exc.__class__.__name__)


@dataclass(frozen=True)
class StreamLimits:
    max_frame_bytes: int
    ack_wait_s: float
    max_deliver: int


@dataclass
class Inbound:
    """One JetStream message, with the metadata the gateway needs and its ack controls."""

    data: bytes
    subject: str
    headers: dict[str, str]
    stream_seq: int
    num_delivered: int
    stored_at: datetime
    _msg: Msg

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self._msg.nak(delay=delay)

    async def term(self) -> None:
        await self._msg.term()


def _inbound(msg: Msg) -> Inbound:
    meta = msg.metadata
    return Inbound(
        data=msg.data,
        subject=msg.subject,
        headers=dict(msg.headers or {}),
        stream_seq=meta.sequence.stream,
        num_delivered=meta.num_delivered,
        stored_at=meta.timestamp,
        _msg=msg,
    )


class PullConsumer:
    """A bound durable pull consumer that survives server restarts."""

    def __init__(self, conn: Connection, stream: str, durable: str) -> None:
        self._conn = conn
        self._stream = stream
        self._durable = durable
        self._sub: JetStreamContext.PullSubscription | None = None

    async def fetch(self, batch: int, timeout: float) -> list[Inbound]:  # noqa: ASYNC109
        try:
            if self._sub is None:
                self._sub = await self._conn.js.pull_subscribe_bind(
                    durable=self._durable, stream=self._stream
                )
            msgs = await self._sub.fetch(batch=batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            log.warning("fetch_failed", stream=self._stream, error=exc.__class__.__name__)
            await self._drop_sub()
            await asyncio.sleep(min(timeout, 1.0))
            return []
        return [_inbound(m) for m in msgs]

    async def _drop_sub(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except (nats.errors.Error, nats.js.errors.Error):
                log.debug("unsubscribe_failed", stream=self._stream)


class Connection:
    """An authenticated NATS connection with JetStream; create with `connect`."""

    def __init__(self, nc: Client, user: str) -> None:
        self._nc = nc
        self.js = nc.jetstream()
        self.user = user

    @classmethod
    async def connect(
        cls, url: str, creds: Credentials, name: str, connect_timeout: float = 5.0
    ) -> Connection:
        async def on_error(exc: Exception) -> None:
            errors[-1:] = [exc]
            log.warning("nats_error", user=creds.user, error=exc.__class__.__name__)

        async def on_disconnect() -> None:
            if not nc_holder or not nc_holder[0].is_closed:
                log.info("nats_disconnected", user=creds.user)

        async def on_reconnect() -> None:
            log.info("nats_reconnected", user=creds.user)

        nc_holder: list[Client] = []
        errors: list[Exception] = []
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    servers=[url],
                    **login_options(creds),
                    tls=tls_context(creds),
                    name=name,
                    inbox_prefix=inbox_prefix(creds.user).encode(),
                    connect_timeout=connect_timeout,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                ),
                timeout=connect_timeout * 2,
            )  # reconnects forever later, but not at first connect
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise connect_failure(url, creds.user, errors[-1] if errors else exc) from exc
        nc_holder.append(nc)
        return cls(nc, creds.user)

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def publish(self, subject: str, data: bytes, msg_id: str, attempts: int = 8) -> int:
        """JetStream publish with retries; returns the stream sequence (dedup-safe)."""
        delay = 0.1
        for attempt in range(attempts):
            try:
                ack = await self.js.publish(
                    subject, data, timeout=5.0, headers={"Nats-Msg-Id": msg_id}
                )
            except _RETRYABLE as exc:
                if attempt == attempts - 1:
                    raise TransportError(f"publish to {subject} failed: {exc!r}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                raise TransportError(f"publish to {subject} refused: {_why(exc)}") from exc
            else:
                return int(ack.seq)
        raise TransportError(f"publish to {subject} failed")

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        """Publish without our retry/dedup policy (used to exercise the gateway with bad input)."""
        try:
            ack = await self.js.publish(subject, data, timeout=5.0, headers=headers or None)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise TransportError(f"publish to {subject} refused: {_why(exc)}") from exc
        return int(ack.seq)

    def pull(self, stream: str, durable: str) -> PullConsumer:
        return PullConsumer(self, stream, durable)

    async def subscribe(self, subject: str, handler: Callable[[bytes], None]) -> Any:
        async def _cb(msg: Msg) -> None:
            handler(msg.data)

        try:
            return await self._nc.subscribe(subject, cb=_cb)
        except nats.errors.Error as exc:
            raise TransportError(f"cannot subscribe to {subject}: {exc!r}") from exc

    async def flush(self) -> None:
        await self._nc.flush(timeout=5)

    async def ensure_streams(self, limits: StreamLimits, agencies: list[str]) -> None:
        """Create or update every stream and durable consumer (idempotent). Needs the admin
        identity: the gateway's own user may not create or change streams."""
        window = max(300.0, limits.ack_wait_s * (limits.max_deliver + 1))
        for agency in agencies:
            await self._stream(_ingress_config(agency, limits, window))
            await self._consumer(
                ingress_stream(agency),
                GATEWAY_CONSUMER,
                ingress_subject(agency),
                limits,
                limits.max_deliver,
            )
        for name, subjects, age in (
            (STREAM_DELIVER, ["s284.deliver.>", "s284.alert.>", "s284.notice.>"], 30 * _DAY),
            (STREAM_RECEIPTS, ["s284.receipt.>"], 7 * _DAY),
            (STREAM_DLQ, ["s284.dlq.>"], 90 * _DAY),
            (STREAM_CHECKPOINTS, [CHECKPOINT_SUBJECT], 0.0),  # kept for ever
            (STREAM_DIRECTORY, [DIRECTORY_SUBJECT], 0.0),  # every signed version, for ever
        ):
            await self._stream(_kept_config(name, subjects, age, window))
        for agency in agencies:
            for consumer in agency_consumers(agency):
                await self._consumer(
                    consumer.stream, consumer.durable, consumer.filter_subject, limits
                )

    async def _stream(self, config: api.StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(config)

    async def _consumer(
        self, stream: str, durable: str, subject: str, limits: StreamLimits, max_deliver: int = -1
    ) -> None:
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            filter_subject=subject,
            ack_wait=limits.ack_wait_s,
            max_deliver=max_deliver,
            max_ack_pending=4096,
        )
        await self.js.add_consumer(stream, config)

    async def close(self) -> None:
        """Flush what we published, then close (drain would wait on idle pull requests)."""
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await self._nc.flush(timeout=2)
        await self._nc.close()


def _ingress_config(agency: str, limits: StreamLimits, window: float) -> api.StreamConfig:
    return api.StreamConfig(
        name=ingress_stream(agency),
        subjects=[ingress_subject(agency)],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
        max_msg_size=limits.max_frame_bytes + 64 * 1024,  # room for NATS headers
        duplicate_window=window,
        first_seq=ingress_first_seq(agency),
        deny_delete=True,
        deny_purge=True,
    )


def _kept_config(name: str, subjects: list[str], age: float, window: float) -> api.StreamConfig:
    return api.StreamConfig(
        name=name,
        subjects=subjects,
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=age,
        duplicate_window=window,
        max_msg_size=MAX_PAYLOAD,
        deny_delete=True,
        deny_purge=True,
    )


async def raw_jetstream_baseline(url: str, count: int, frame_bytes: int, window: int) -> float:
    """The yardstick for `s284 bench`: bare nats-py JetStream publish (pipelined, `window`
    in flight, with Nats-Msg-Id) and pull-consume with ack of `count` frames on a file
    stream, against an unauthenticated server. Returns seconds until the last ack."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            api.StreamConfig(name="BENCH", subjects=["bench.>"], storage=api.StorageType.FILE)
        )
        consumer = asyncio.create_task(_consume_all(js, count, window))
        start = asyncio.get_running_loop().time()
        data = b"x" * frame_bytes
        for first in range(0, count, window):
            await asyncio.gather(
                *(
                    js.publish("bench.ingress", data, headers={"Nats-Msg-Id": f"raw-{i}"})
                    for i in range(first, min(first + window, count))
                )
            )
        await asyncio.wait_for(consumer, 120.0)
        return asyncio.get_running_loop().time() - start
    finally:
        await nc.close()


async def _consume_all(js: JetStreamContext, count: int, window: int) -> None:
    sub = await js.pull_subscribe("bench.>", durable="bench", stream="BENCH")
    seen = 0
    while seen < count:
        try:
            msgs = await sub.fetch(window, timeout=1.0)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in msgs:
            await msg.ack()
        seen += len(msgs)
