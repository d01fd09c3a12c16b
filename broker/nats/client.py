"""All NATS I/O. The only module that imports `nats`.

Over the ~400-line norm because the import contract keeps every nats-py call in one
place; login and TLS already live in login.py and tls.py, the layout in streams.py.

Hardened against nats-py's known pitfalls: a fetch on an empty stream raises a
timeout (we return an empty batch); a pull subscription can go stale across a
server restart (we re-bind it); publishes can fail while a stream leader is being
elected or the connection is re-established (we retry with backoff, under the same
Nats-Msg-Id so JetStream de-duplicates); nats-server reports a permission violation
asynchronously, so we watch for it and refuse at once instead of timing out.

`Connection` satisfies `broker.nats.transport.Transport`, as does the in-memory twin.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from broker.errors import TransportError
from broker.nats.cluster import replicas_for
from broker.nats.config import Credentials, inbox_prefix
from broker.nats.login import connect_failure, login_options, tls_context
from broker.nats.streams import ConsumerSpec, StreamSpec, consumer_specs, stream_specs
from broker.nats.transport import Inbound, StreamLimits
from broker.wire.providers import ProviderId

__all__ = ["Connection", "Inbound", "PullConsumer", "StreamLimits", "raw_jetstream_baseline"]

log = structlog.get_logger("s284.transport")
_T = TypeVar("_T")

_RETRYABLE = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,  # stream briefly unavailable (update, election)
    asyncio.TimeoutError,
)
_ERR_GRACE_S = 0.05
_PIPELINED_ACK_S = 5.0  # as long as a single publish waits for its ack
_VIOLATION = re.compile(
    r'permissions violation for (publish|subscription) to "([^"]+)"', re.IGNORECASE
)


def _acked_seq(fut: asyncio.Future[Any]) -> int | None:
    """The stream sequence of a pipelined publish's ack; None if it failed or timed out."""
    if not fut.done() or fut.cancelled() or fut.exception() is not None:
        return None
    return int(fut.result().seq)


def _why(exc: Exception) -> str:
    return str(getattr(exc, "description", None) or exc.__class__.__name__)


def _inbound(msg: Msg) -> Inbound:
    meta = msg.metadata
    return Inbound(
        data=msg.data,
        subject=msg.subject,
        headers=dict(msg.headers or {}),
        stream_seq=meta.sequence.stream,
        num_delivered=meta.num_delivered,
        stored_at=meta.timestamp,
        _controls=msg,  # nats-py's Msg has ack(), nak(delay), term(): it is AckControls
    )


class _Violations:
    """Permission violations, which nats-server reports on the connection (-ERR) rather
    than to the request that caused them, matched back to the operation by subject."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], set[asyncio.Future[None]]] = {}

    def report(self, exc: Exception) -> None:
        found = _VIOLATION.search(str(exc))
        if found is None:
            return
        key = (found.group(1).lower(), found.group(2).lower())  # nats-py lowercases it all
        for fut in self._waiting.pop(key, set()):
            if not fut.done():
                fut.set_result(None)

    @contextlib.contextmanager
    def watch(self, kind: str, subject: str) -> Iterator[asyncio.Future[None]]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = (kind, subject.lower())
        self._waiting.setdefault(key, set()).add(fut)
        try:
            yield fut
        finally:
            waiting = self._waiting.get(key, set())
            waiting.discard(fut)
            if not waiting:  # subjects are often unique (receipts): keep nothing behind
                self._waiting.pop(key, None)
            fut.cancel()

    async def guard(self, kind: str, subject: str, call: Awaitable[_T]) -> _T:
        """`call`'s result, or TransportError as soon as the server refuses `subject`."""
        with self.watch(kind, subject) as refused:
            task: asyncio.Future[_T] = asyncio.ensure_future(call)
            waiting: set[asyncio.Future[Any]] = {task, refused}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task.cancel()  # our caller gave up (e.g. a timeout): so does the operation
                raise
            if not task.done():
                task.cancel()
                raise TransportError(f"{kind} to {subject} refused: permissions violation")
            return task.result()


class _FirstConnect:
    """nats-py retries a failed first connection in its reconnect loop, calling error_cb
    each time; this stops it at the first failure, or at the first once `patience` is spent."""

    def __init__(self, patience: float) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + patience
        self._gave_up: asyncio.Future[Exception] = loop.create_future()
        self._connected = False

    def failed(self, exc: Exception) -> bool:
        """True while still connecting: the error is then ours to report, not to log."""
        if self._connected:
            return False
        if asyncio.get_running_loop().time() >= self._deadline and not self._gave_up.done():
            self._gave_up.set_result(exc)
        return True

    async def run(self, connecting: Awaitable[None], timeout: float) -> None:  # noqa: ASYNC109
        task = asyncio.ensure_future(connecting)
        waiting: set[asyncio.Future[Any]] = {task, self._gave_up}
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            self._connected = True
            task.result()  # nats-py's own refusal (no servers, a bad URL), if any
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._gave_up.done():
            raise self._gave_up.result()
        raise TimeoutError


def _options(
    creds: Credentials,
    name: str,
    connect_timeout: float,
    on_error: Callable[[Exception], Awaitable[None]],
    nc: Client,
) -> dict[str, Any]:
    async def on_disconnect() -> None:
        if not nc.is_closed:
            log.info("nats_disconnected", user=creds.user)

    async def on_reconnect() -> None:
        log.info("nats_reconnected", user=creds.user)

    return {
        **login_options(creds),
        "tls": tls_context(creds),
        "name": name,
        "inbox_prefix": inbox_prefix(creds.user).encode(),
        "connect_timeout": connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }


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
            next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._durable}"
            msgs = await self._conn.violations.guard(
                "publish", next_subject, self._sub.fetch(batch=batch, timeout=timeout)
            )
        except TransportError:
            await self._drop_sub()
            raise
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

    def __init__(self, nc: Client, user: str, violations: _Violations | None = None) -> None:
        self._nc = nc
        self.js = nc.jetstream()
        self.user = user
        self.violations = violations or _Violations()

    @classmethod
    async def connect(
        cls,
        url: str,
        creds: Credentials,
        name: str,
        connect_timeout: float = 5.0,
        patience: float = 0.0,
    ) -> Connection:
        """Connect once, or keep trying quietly for `patience` seconds (the gateway, a
        follower: waiting is what they are for); a refused first connection is a
        TransportError at once. Once connected, a lost connection is re-established forever."""
        violations = _Violations()
        first = _FirstConnect(patience)

        async def on_error(exc: Exception) -> None:
            violations.report(exc)
            if not first.failed(exc):
                log.warning("nats_error", user=creds.user, error=exc.__class__.__name__)

        nc = Client()
        options = _options(creds, name, connect_timeout, on_error, nc)
        if patience > 0:
            log.info("nats_waiting", url=url, user=creds.user, patience_s=patience)
        try:
            servers = [u.strip() for u in url.split(",") if u.strip()]  # a cluster: every node
            await first.run(nc.connect(servers=servers, **options), connect_timeout * 2)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            with contextlib.suppress(nats.errors.Error, OSError):
                await nc.close()
            raise connect_failure(url, creds.user, exc) from exc
        return cls(nc, creds.user, violations)

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def publish(self, subject: str, data: bytes, msg_id: str, attempts: int = 12) -> int:
        """JetStream publish with retries; returns the stream sequence (dedup-safe). Twelve
        attempts back off to about 17 s in all: longer than a cluster's leader election or
        a client's reconnect to another node, each retry under the same Nats-Msg-Id."""
        delay = 0.1
        for attempt in range(attempts):
            try:
                ack = await self._guarded_publish(subject, data, {"Nats-Msg-Id": msg_id})
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

    async def publish_many(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        """Several JetStream publishes pipelined (nats-py's `publish_async`: all sent on one
        reply subscription, then every ack awaited together), instead of a request each.
        Any that fails or is not acknowledged in time goes again through `publish` (its
        retries and permission check) under the same Nats-Msg-Id, so each is stored once."""
        futures: list[asyncio.Future[Any]] = []
        # one not sent (e.g. reconnecting) stops the loop: those without a future go again below
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            for subject, data, msg_id in items:
                headers = {"Nats-Msg-Id": msg_id}
                futures.append(await self.js.publish_async(subject, data, headers=headers))
        if futures:
            _, late = await asyncio.wait(futures, timeout=_PIPELINED_ACK_S)
            for fut in late:
                fut.cancel()
        seqs = [_acked_seq(fut) for fut in futures] + [None] * (len(items) - len(futures))
        again = [i for i, seq in enumerate(seqs) if seq is None]
        redone = await asyncio.gather(*(self.publish(*items[i]) for i in again))
        for i, seq in zip(again, redone, strict=True):
            seqs[i] = seq
        return [int(seq or 0) for seq in seqs]

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        """Publish without our retry/dedup policy (used to exercise the gateway with bad input)."""
        try:
            ack = await self._guarded_publish(subject, data, headers or None)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise TransportError(f"publish to {subject} refused: {_why(exc)}") from exc
        return int(ack.seq)

    async def last_message(self, stream: str, subject: str) -> bytes | None:
        """The newest message on `subject` in `stream`, None if there is none yet."""
        try:
            msg = await self.js.get_last_msg(stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise TransportError(f"cannot read {subject} from {stream}: {_why(exc)}") from exc
        return msg.data

    async def _guarded_publish(
        self, subject: str, data: bytes, headers: dict[str, str] | None
    ) -> Any:
        publish = self.js.publish(subject, data, timeout=5.0, headers=headers)
        return await self.violations.guard("publish", subject, publish)

    def pull(self, stream: str, durable: str) -> PullConsumer:
        return PullConsumer(self, stream, durable)

    async def consumer_lag(self, stream: str, durable: str) -> tuple[int, int]:
        """(not yet delivered, delivered but not acknowledged) on a durable consumer, as the
        server counts them: the lag an operator watches (broker/observe)."""
        try:
            info = await self.js.consumer_info(stream, durable, timeout=2.0)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise TransportError(f"cannot read consumer {stream}/{durable}: {_why(exc)}") from exc
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    async def subscribe(self, subject: str, handler: Callable[[bytes], None]) -> Any:
        """Core NATS; refused at once (TransportError) if this user may not subscribe."""

        async def _cb(msg: Msg) -> None:
            handler(msg.data)

        with self.violations.watch("subscription", subject) as refused:
            try:
                sub = await self._nc.subscribe(subject, cb=_cb)
                await self._nc.flush(timeout=5)  # the server answers a refused SUB before PONG
                # nats-py hands the -ERR to its error callback as a task: let it run
                await asyncio.wait({refused}, timeout=_ERR_GRACE_S)
            except (TimeoutError, nats.errors.Error) as exc:
                raise TransportError(f"cannot subscribe to {subject}: {exc!r}") from exc
            if refused.done() and not refused.cancelled():
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()
                raise TransportError(f"cannot subscribe to {subject}: permissions violation")
        return sub

    async def flush(self) -> None:
        await self._nc.flush(timeout=5)

    def replicas(self) -> int:
        """How many copies of each stream: R1 on a lone server (embedded), R3 when the
        server we reached is in a cluster of three or more (its INFO names the cluster
        and every member's client URL)."""
        info: dict[str, Any] = self._nc._server_info  # noqa: SLF001 - nats-py keeps INFO here
        if not info.get("cluster"):
            return 1
        return replicas_for(len(info.get("connect_urls") or []))

    async def ensure_streams(
        self, limits: StreamLimits, agencies: list[str], providers: tuple[ProviderId, ...] = ()
    ) -> None:
        """Create or update every stream and durable consumer (idempotent). Needs the admin
        identity: the gateway's own user may not create or change streams."""
        try:
            replicas = self.replicas()
            for stream in stream_specs(limits, agencies, replicas):
                await self._stream(stream)
            for consumer in consumer_specs(limits, agencies, replicas, providers):
                await self._consumer(consumer)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise TransportError(
                f"cannot set up the streams as {self.user!r}: {_why(exc)}"
            ) from exc

    async def _stream(self, spec: StreamSpec) -> None:
        config = api.StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            retention=(
                api.RetentionPolicy.WORK_QUEUE if spec.work_queue else api.RetentionPolicy.LIMITS
            ),
            storage=api.StorageType.FILE,
            max_msg_size=spec.max_msg_size,
            max_age=spec.max_age_s,
            duplicate_window=spec.duplicate_window_s,
            first_seq=spec.first_seq,
            max_msgs=spec.max_msgs,
            allow_direct=spec.allow_direct or None,
            deny_delete=True,
            deny_purge=True,
            num_replicas=spec.replicas,
        )
        create = self.js.add_stream(config)
        try:
            await self.violations.guard("publish", f"$JS.API.STREAM.CREATE.{spec.name}", create)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(config)

    async def _consumer(self, spec: ConsumerSpec) -> None:
        config = api.ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            filter_subject=spec.filter_subject or None,  # "": every subject of the stream
            ack_wait=spec.ack_wait_s,
            max_deliver=spec.max_deliver,
            max_ack_pending=spec.max_ack_pending,
            num_replicas=spec.replicas,
        )
        await self.js.add_consumer(spec.stream, config)

    async def close(self) -> None:
        """Flush what we published, then close (drain would wait on idle pull requests)."""
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await self._nc.flush(timeout=2)
        await self._nc.close()


async def raw_jetstream_baseline(
    url: str, count: int, frame_bytes: int, window: int, creds: Credentials | None = None
) -> float:
    """The yardstick for `s284 bench`: bare nats-py JetStream publish (pipelined, `window`
    in flight, with Nats-Msg-Id) and pull-consume with ack of `count` frames on a file
    stream, against an unauthenticated server, or as `creds` (the admin, on the lab's
    cluster: TLS, and as many replicas as the s284 streams have). Returns seconds until
    the last ack."""
    login: dict[str, Any] = {}
    if creds is not None:
        login = {**login_options(creds), "tls": tls_context(creds)}
    nc = await nats.connect([u.strip() for u in url.split(",")], **login)
    try:
        js = nc.jetstream()
        replicas = Connection(nc, creds.user if creds else "bench").replicas()
        await js.add_stream(
            api.StreamConfig(
                name="BENCH",
                subjects=["bench.>"],
                storage=api.StorageType.FILE,
                num_replicas=replicas,
            )
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
