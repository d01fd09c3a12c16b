"""The raw-pipeline yardstick of `s284 bench`: the gateway's exact NATS pattern, nothing else.

A fair limit for the pipeline is not "one publish and one fetch per message" but what the
gateway itself asks of NATS: pull a batch from the ingress work queue, publish two
deliveries per message (`Nats-Msg-Id`, every JetStream ack awaited), ack the ingress
messages, publish a receipt per message (acks awaited), next batch. This module does just
that, through the broker's own `Connection` and `FanIn`, on the broker's own streams and
consumers (`ensure_streams`), with no crypto, no policy and no audit.

`python -m bench.rawpipe URL` is the raw gateway, run as its own process like the real one
(so the publishing client does not share its core); `raw_pipeline` drives it: a plain
nats-server (fsync before acknowledgement as the deployment has it), the publisher at the
pipeline's in-flight window for at least `seconds`, receipts counted on a core
subscription, CPU of the raw gateway and of nats-server read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bench import procstat
from bench.progress import Ticker
from broker.errors import BrokerError
from broker.gateway.tuning import run_server
from broker.nats.client import Connection, StreamLimits
from broker.nats.config import (
    GATEWAY_CONSUMER,
    Credentials,
    deliver_subject,
    ingress_streams,
    ingress_subject,
    receipt_subject,
)
from broker.nats.fanin import FanIn
from broker.nats.server import free_loopback_ports, nats_server_binary
from broker.wire.envelope import Agency

RECIPIENTS = (Agency.POLICE, Agency.HEALTH)
SENDER = Agency.CORRECTIONS
RECEIPT_BYTES = 420  # about the size of a signed receipt
_CREDS = Credentials("bench", SecretStr("unused: the plain server has no auth"))


@dataclass(frozen=True)
class RawPipeline:
    messages: int
    seconds: float
    gateway_cpu_s: float | None
    nats_cpu_s: float | None
    load_1m: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


# -- the raw gateway (its own process) ------------------------------------------------------


async def _one_batch(conn: Connection, consumer: FanIn, batch: int) -> int:
    msgs = await consumer.fetch(batch, timeout=1.0)
    if not msgs:
        return 0
    ids = [msg.headers.get("Nats-Msg-Id", "") for msg in msgs]
    await asyncio.gather(  # 8: two deliveries per message, about twice the ingress frame
        *(
            conn.publish(deliver_subject(to.value, "risk.update"), msg.data * 2, f"{mid}:{to}")
            for msg, mid in zip(msgs, ids, strict=True)
            for to in RECIPIENTS
        )
    )
    for msg in msgs:  # 9: ack ingress, then the receipts, their acks awaited together
        await msg.ack()
    receipt = b"r" * RECEIPT_BYTES
    await asyncio.gather(
        *(
            conn.publish(receipt_subject(SENDER.value, mid), receipt, f"receipt:{mid}")
            for mid in ids
        )
    )
    return len(msgs)


async def raw_gateway(url: str, batch: int) -> None:
    """Consume until SIGTERM, as `Gateway.run` does, minus everything but the NATS I/O."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    conn = await Connection.connect(url, _CREDS, name="s284-bench-raw-gateway")
    consumer = FanIn([conn.pull(s, GATEWAY_CONSUMER) for s in ingress_streams()])
    print("ready", flush=True)  # the driver waits for this line
    try:
        while not stop.is_set():
            await _one_batch(conn, consumer, batch)
    finally:
        await consumer.close()
        await conn.close()


# -- the driver ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def plain_server(store: Path, *, sync_always: bool) -> AsyncIterator[tuple[str, int]]:
    """A plain nats-server with JetStream on a free port (fsync as asked); (url, pid)."""
    (port,) = free_loopback_ports(1)
    conf = store / "raw.conf"
    sync = ", sync_interval: always" if sync_always else ""
    conf.write_text(f'jetstream {{ store_dir: "{store / "js"}"{sync} }}\n', encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        str(nats_server_binary()),
        *("-a", "127.0.0.1", "-p", str(port), "-c", str(conf)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _listening(proc, port)
        yield f"nats://127.0.0.1:{port}", proc.pid
    finally:
        await _stop(proc)


async def _listening(proc: asyncio.subprocess.Process, port: int) -> None:
    for _ in range(300):
        if proc.returncode is not None:
            raise BrokerError(f"plain nats-server exited at start (code {proc.returncode})")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise BrokerError("plain nats-server did not listen within 15 s")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def _raw_gateway_process(url: str, batch: int) -> AsyncIterator[int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bench.rawpipe", url, str(batch)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None  # noqa: S101 - PIPE above
        line = await asyncio.wait_for(proc.stdout.readline(), 60.0)
        if line.strip() != b"ready":
            raise BrokerError("the raw gateway did not start")
        yield proc.pid
    finally:
        await _stop(proc)


class _Receipts:
    """Counts receipts as they are published; `all_in` is set once `expected` have come."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.expected: int | None = None
        self.all_in = asyncio.Event()

    def __call__(self, _data: bytes) -> None:
        self.count += 1
        self.last = time.perf_counter()
        self._check()

    def expect(self, count: int) -> None:
        self.expected = count
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.count >= self.expected:
            self.all_in.set()


async def _publish_for(conn: Connection, seconds: float, frame: bytes, window: int) -> int:
    """Publish `window` frames at a time until `seconds` have passed; how many were sent."""
    sent, deadline = 0, time.perf_counter() + seconds
    subject = ingress_subject(SENDER.value)
    while time.perf_counter() < deadline:
        await asyncio.gather(
            *(conn.publish(subject, frame, f"raw-{sent + i:012d}") for i in range(window))
        )
        sent += window
    return sent


async def raw_pipeline(
    root: Path, seconds: float, frame_bytes: int, window: int, batch: int, *, sync_always: bool
) -> RawPipeline:
    """Publish for `seconds` (>= 10 for stable figures) into the raw gateway; first publish ->
    last receipt, and the CPU the raw gateway and nats-server spent meanwhile."""
    async with plain_server(root, sync_always=sync_always) as (url, server_pid):
        conn = await Connection.connect(url, _CREDS, name="s284-bench-raw")
        try:
            limits = StreamLimits(max_frame_bytes=1024 * 1024, ack_wait_s=30.0, max_deliver=5)
            await conn.ensure_streams(limits, [a.value for a in Agency])
            receipts = _Receipts()
            await conn.subscribe(f"s284.receipt.{SENDER.value}.>", receipts)
            async with _raw_gateway_process(url, batch) as gateway_pid:
                pids = (gateway_pid, server_pid)
                cpu0 = [procstat.cpu_seconds(p) for p in pids]
                start = time.perf_counter()
                async with Ticker("raw pipeline receipts", lambda: receipts.count):
                    sent = await _publish_for(conn, seconds, b"x" * frame_bytes, window)
                    await _wait_for(receipts, sent)
                cpu1 = [procstat.cpu_seconds(p) for p in pids]
        finally:
            await conn.close()
    used = [_delta(a, b) for a, b in zip(cpu0, cpu1, strict=True)]
    return RawPipeline(receipts.count, receipts.last - start, used[0], used[1], _load())


async def _wait_for(receipts: _Receipts, count: int) -> None:
    """Every receipt, or give up after two minutes (the figures then show the shortfall)."""
    receipts.expect(count)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receipts.all_in.wait(), 120.0)


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _load() -> float:
    import os  # noqa: PLC0415

    return os.getloadavg()[0]


if __name__ == "__main__":
    # the gateway's own event loop (uvloop unless S284_EVENT_LOOP=asyncio), for a fair yardstick
    run_server(raw_gateway(sys.argv[1], int(sys.argv[2])))
