"""`s284 bench`: the full pipeline against raw NATS JetStream, measured in one run.

Longer than the ~400-line norm on purpose: one benchmark, read top to bottom (set-up,
load, figures, report), outside the library's import graph.

Not a test: it prints figures. Three phases, each on synthetic data only:

1. throughput  a fresh embedded deployment (`s284 up` in its own process, temporary
               home, free loopback ports);
               Corrections pre-seals N risk.update messages to Police and Health,
               publishes them pipelined and waits for every receipt; then the Police
               inbox is drained and counted.
2. latency     the same deployment at a steady offered rate: receipt arrival minus
               send time, per message.
3. raw NATS    a second, plain nats-server (same binary): JetStream publish of frames
               of the same size, same pipelining, pulled and acked by a consumer.

Phases 1 and 2 run twice: with JetStream's fsync before every acknowledgement (the
deployment's setting) and, for comparison only, without it (S284_NATS_SYNC_ALWAYS=false).

The deployment's log (JSON at INFO, as in production) goes to deployment.log in the
temporary home, so the cost of logging is measured but the terminal stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import structlog

from bench.progress import say
from broker import logs
from broker.errors import BrokerError
from broker.home import Home
from broker.nats.client import raw_jetstream_baseline
from broker.nats.server import free_loopback_ports, nats_server_binary
from broker.runtime import Started
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import Agency, Receipt, Sender
from policies import decision_latency

WINDOW = 256  # publishes in flight at once, in both the pipeline and the raw baseline
LATENCY_SECONDS = 5.0
DECISIONS = 20_000
PAYLOAD_BYTES = 500
RECEIPT_TIMEOUT = 120.0
_T = TypeVar("_T")

Sealed = list[tuple[str, bytes]]  # (message id, sealed frame)


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sealing:
    messages: int
    seconds: float
    frame_bytes: int

    @property
    def rate(self) -> float:
        return _rate(self.messages, self.seconds)


@dataclass(frozen=True)
class Throughput:
    messages: int
    accepted: int
    seconds: float
    delivered_police: int
    drain_seconds: float

    @property
    def rate(self) -> float:
        return _rate(self.accepted, self.seconds)


@dataclass(frozen=True)
class Latency:
    offered_rate: int
    sent: int
    accepted: int
    send_rate: float
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Raw:
    messages: int
    frame_bytes: int
    total_seconds: float

    @property
    def rate(self) -> float:
        return _rate(self.messages, self.total_seconds)


@dataclass(frozen=True)
class Unsynced:
    """Phases 1 and 2 again on a server without fsync before acknowledgement."""

    throughput: Throughput
    latency: Latency


@dataclass(frozen=True)
class Report:
    sealing: Sealing
    throughput: Throughput
    latency: Latency
    raw: Raw
    decision: dict[str, float]
    unsynced: Unsynced

    @property
    def ok(self) -> bool:
        runs = [(self.throughput, self.latency), (self.unsynced.throughput, self.unsynced.latency)]
        return all(
            t.accepted == t.delivered_police == t.messages and lat.accepted == lat.sent
            for t, lat in runs
        )

    def as_dict(self) -> dict[str, Any]:
        def with_rate(obj: Sealing | Throughput | Raw) -> dict[str, Any]:
            return {**asdict(obj), "msgs_per_s": obj.rate}

        return {
            "host": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
            },
            "window": WINDOW,
            "sealing": with_rate(self.sealing),
            "pipeline": with_rate(self.throughput),
            "latency": asdict(self.latency),
            "fsync_off": {
                "pipeline": with_rate(self.unsynced.throughput),
                "latency": asdict(self.unsynced.latency),
            },
            "raw_jetstream": with_rate(self.raw),
            "pipeline_over_raw": self.throughput.rate / self.raw.rate if self.raw.rate else None,
            "policy_decision": self.decision,
            "ok": self.ok,
        }


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


# -- helpers ---------------------------------------------------------------------------


def _windows(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _pipelined(calls: Sequence[Awaitable[Any]]) -> None:
    """Await the calls WINDOW at a time (each window concurrently)."""
    for window in _windows(calls, WINDOW):
        await asyncio.gather(*window)


def synthetic_payload(index: int) -> dict[str, Any]:
    """An invented risk update of about PAYLOAD_BYTES bytes of JSON; no real person."""
    payload: dict[str, Any] = {
        "synthetic": True,
        "sequence": index,
        "risk_level": ("low", "moderate", "high")[index % 3],
        "assessment_tool": "SYNTHETIC-RA-1",
        "factors": ["accommodation_change", "missed_appointment", "new_associate"],
        "next_review": "2030-01-15",
        "notes": "",
    }
    filler = PAYLOAD_BYTES - len(json.dumps(payload))
    payload["notes"] = ("Synthetic benchmark text, not about any person. " * 20)[: max(filler, 0)]
    return payload


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """Send structlog events (JSON, INFO) to `path` for the duration; restore afterwards."""
    saved = structlog.get_config()
    with path.open("w", encoding="utf-8") as fh:
        with contextlib.redirect_stderr(fh):
            logs.configure("INFO", json=True)  # binds the logger factory to fh
        try:
            yield
        finally:
            structlog.configure(**saved)


# -- the embedded deployment -------------------------------------------------------------


@contextlib.asynccontextmanager
async def embedded(root: Path, *, sync_always: bool = True) -> AsyncIterator[Started]:
    """`s284 up` as its own process (as in production, the gateway does not share a core
    with the agency system), on free ports in root/home; SIGTERM-ed and reaped on exit.
    `sync_always=False`: its nats-server without fsync before acknowledgement."""
    nats_port, http_port = free_loopback_ports(2)
    home = root / "home"
    env = {**os.environ, "S284_NATS_SYNC_ALWAYS": "true" if sync_always else "false"}
    with (root / "deployment.log").open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broker.cli",
            "up",
            "--home",
            str(home),
            "--nats-port",
            str(nats_port),
            "--http-port",
            str(http_port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=env,
        )
    try:
        http_url = f"http://127.0.0.1:{http_port}"
        await _wait_ready(proc, http_url)
        h = Home(home)
        yield Started(h, h.nats_url, http_url, Settings(home=home).database_url)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)


async def _wait_ready(proc: asyncio.subprocess.Process, http_url: str) -> None:
    for _ in range(600):
        if proc.returncode is not None:
            raise BrokerError(f"`s284 up` exited at start (code {proc.returncode})")
        if await asyncio.to_thread(_ready, f"{http_url}/readyz"):
            return
        await asyncio.sleep(0.05)
    raise BrokerError("the embedded deployment was not ready within 30 s")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our loopback URL
            return bool(resp.status == 200)  # noqa: PLR2004
    except OSError:
        return False


async def _client(home: Path, agency: Agency) -> AgencyClient:
    sender = Sender(agency=agency, unit="bench", person_id="bench-1", role="case_manager")
    return await AgencyClient.from_home(home, agency.value, sender)


def seal_messages(client: AgencyClient, count: int, offset: int = 0) -> Sealed:
    sealed: Sealed = []
    for index in range(offset, offset + count):
        env = client.envelope(
            kind="risk.update",
            purpose="offender_management",
            offender=f"S284-9{index % 100_000:05d}",
            to=[Agency.POLICE, Agency.HEALTH],
        )
        sealed.append((env.id, client.seal(env, synthetic_payload(index))))
    return sealed


def timed_seal(client: AgencyClient, count: int, offset: int = 0) -> tuple[Sealed, Sealing]:
    start = time.perf_counter()
    sealed = seal_messages(client, count, offset)
    seconds = time.perf_counter() - start
    size = round(statistics.fmean(len(frame) for _, frame in sealed)) if sealed else 0
    return sealed, Sealing(count, seconds, size)


# -- phase 1: throughput -----------------------------------------------------------------


async def _receipts(client: AgencyClient, ids: Sequence[str]) -> list[Receipt | BaseException]:
    return await asyncio.gather(
        *(client.receipt(mid, RECEIPT_TIMEOUT) for mid in ids), return_exceptions=True
    )


def _accepted(results: Sequence[Receipt | BaseException]) -> int:
    return sum(1 for r in results if isinstance(r, Receipt) and r.accepted)


async def pipeline_throughput(client: AgencyClient, sealed: Sealed) -> tuple[int, float]:
    """Publish all frames pipelined; (accepted receipts, first publish -> last receipt)."""
    start = time.perf_counter()
    await _pipelined([client.publish_frame(frame, mid) for mid, frame in sealed])
    results = await _receipts(client, [mid for mid, _ in sealed])
    return _accepted(results), time.perf_counter() - start


async def drain_inbox(client: AgencyClient, expected: set[str]) -> tuple[int, float]:
    """Read (verify, decrypt, ack) the inbox; count deliveries of the expected ids and time
    them up to the last one (not the idle wait that tells the inbox is empty)."""
    start = last = time.perf_counter()
    found: set[str] = set()
    async for item in client.inbox(batch=256, idle_timeout=1.0):
        if item.envelope.id in expected:
            found.add(item.envelope.id)
            last = time.perf_counter()
    return len(found), last - start


# -- phase 2: latency ------------------------------------------------------------------


async def _timed_send(client: AgencyClient, mid: str, frame: bytes) -> tuple[float, float, bool]:
    """(send time, latency, accepted) of one message; latency = receipt - send."""
    sent = time.perf_counter()
    await client.publish_frame(frame, mid)
    receipt = await client.receipt(mid, RECEIPT_TIMEOUT)
    return sent, time.perf_counter() - sent, receipt.accepted


async def _offer(
    client: AgencyClient, sealed: Sealed, rate: int
) -> list[asyncio.Task[tuple[float, float, bool]]]:
    """Start one send every 1/rate s by the monotonic clock, never waiting for receipts."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for index, (mid, frame) in enumerate(sealed):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed_send(client, mid, frame)))
    return tasks


async def latency_at_rate(client: AgencyClient, sealed: Sealed, rate: int) -> Latency:
    tasks = await _offer(client, sealed, rate)
    done = await asyncio.gather(*tasks, return_exceptions=True)
    results = [r for r in done if isinstance(r, tuple)]
    ends = [sent + latency for sent, latency, _ in results]
    sends = [sent for sent, _, _ in results]
    millis = sorted(latency * 1000 for _, latency, _ in results)
    first = min(sends, default=0.0)
    return Latency(
        offered_rate=rate,
        sent=len(sealed),
        accepted=sum(1 for r in results if r[2]),
        send_rate=_rate(len(sends) - 1, max(sends, default=0.0) - first),
        achieved_rate=_rate(len(results), max(ends, default=0.0) - first),
        p50_ms=_percentile(millis, 0.50),
        p99_ms=_percentile(millis, 0.99),
        max_ms=millis[-1] if millis else 0.0,
    )


# -- phase 3: raw JetStream baseline -----------------------------------------------------


@contextlib.asynccontextmanager
async def plain_nats_server(store: Path) -> AsyncIterator[str]:
    """A plain nats-server with JetStream on a free port; terminated and reaped on exit."""
    (port,) = free_loopback_ports(1)
    proc = await asyncio.create_subprocess_exec(
        str(nats_server_binary()),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_listening(proc, port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        await _terminate(proc)


async def _wait_listening(proc: asyncio.subprocess.Process, port: int) -> None:
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


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- the whole run ---------------------------------------------------------------------------


async def _pipeline_phases(
    root: Path, messages: int, rate: int, *, sync_always: bool = True
) -> tuple[Sealing, Throughput, Latency]:
    fsync = "fsync on" if sync_always else "fsync off"
    say(f"1/5 starting a temporary embedded broker ({fsync})")
    async with embedded(root, sync_always=sync_always) as started:
        sender = await _client(started.home.path, Agency.CORRECTIONS)
        police = await _client(started.home.path, Agency.POLICE)
        try:
            sealed, sealing = timed_seal(sender, messages)
            say(f"2/5 pipeline: {messages:,} messages sealed, publishing them")
            accepted, seconds = await pipeline_throughput(sender, sealed)
            say(f"    {accepted:,} accepted in {seconds:.1f} s; draining the police inbox")
            delivered, drain = await drain_inbox(police, {mid for mid, _ in sealed})
            throughput = Throughput(messages, accepted, seconds, delivered, drain)
            offered, _ = timed_seal(sender, max(1, int(rate * LATENCY_SECONDS)), messages)
            say(f"3/5 latency at {rate} msg/s for {LATENCY_SECONDS:g} s")
            latency = await latency_at_rate(sender, offered, rate)
        finally:
            await sender.close()
            await police.close()
    return sealing, throughput, latency


async def measure(messages: int, rate: int) -> Report:
    with tempfile.TemporaryDirectory(prefix="s284-bench-") as tmp:
        root = Path(tmp)
        with _logs_to(root / "bench.log"):
            sealing, throughput, latency = await _pipeline_phases(root, messages, rate)
            (root / "fsync-off").mkdir()
            off = await _pipeline_phases(root / "fsync-off", messages, rate, sync_always=False)
        (root / "raw").mkdir()
        say("4/5 raw JetStream baseline")
        async with plain_nats_server(root / "raw") as url:
            seconds = await raw_jetstream_baseline(url, messages, sealing.frame_bytes, WINDOW)
            raw = Raw(messages, sealing.frame_bytes, seconds)
    say("5/5 policy decision latency")
    decision = await asyncio.to_thread(decision_latency, DECISIONS)
    return Report(sealing, throughput, latency, raw, decision, Unsynced(off[1], off[2]))


def render_table(report: Report) -> str:
    s, t, lat, raw = report.sealing, report.throughput, report.latency, report.raw
    off, off_lat = report.unsynced.throughput, report.unsynced.latency
    ratio = t.rate / raw.rate if raw.rate else 0.0
    rows = [
        ("client sealing (pre-sealed, not timed below)", s.messages, s.seconds, s.rate),
        ("pipeline: first publish -> last receipt", t.accepted, t.seconds, t.rate),
        (
            "police inbox drain (verify+decrypt+ack)",
            t.delivered_police,
            t.drain_seconds,
            _rate(t.delivered_police, t.drain_seconds),
        ),
        ("pipeline, fsync off (comparison only)", off.accepted, off.seconds, off.rate),
        ("raw JetStream publish + pull/ack", raw.messages, raw.total_seconds, raw.rate),
    ]
    header = (
        f"s284 bench: {t.messages} messages, ~{PAYLOAD_BYTES} B payload, sealed frame "
        f"{s.frame_bytes} B, {WINDOW} in flight; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; load average {_load()}"
    )
    summary = (
        f"pipeline / raw JetStream: {ratio:.2f}; accepted {t.accepted}/{t.messages}, "
        f"delivered to police {t.delivered_police}/{t.messages}"
    )
    latency = (
        f"latency at {lat.offered_rate} msg/s offered ({lat.sent} messages): "
        f"p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms;\n"
        f"  sent at {lat.send_rate:.0f} msg/s, achieved {lat.achieved_rate:.0f} msg/s, "
        f"accepted {lat.accepted}/{lat.sent}\n"
        f"  fsync off (comparison only): p50 {off_lat.p50_ms:.1f} ms, "
        f"p99 {off_lat.p99_ms:.1f} ms, achieved {off_lat.achieved_rate:.0f} msg/s"
    )
    verdict = "OK" if report.ok else "NOT OK: some messages were not accepted or not delivered"
    lines = [
        header,
        "",
        f"{'phase':<46} {'messages':>9} {'seconds':>9} {'msg/s':>9}",
        *(f"{name:<46} {n:>9} {sec:>9.2f} {r:>9.0f}" for name, n, sec, r in rows),
        "",
        summary,
        latency,
        (
            f"s 284 policy decision ({report.decision['decisions']:.0f} decisions, parse once, "
            f"decide many): median {report.decision['median_us']:.0f} us, "
            f"p99 {report.decision['p99_us']:.0f} us"
        ),
        verdict,
    ]
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def emit(report: Report, as_json: bool, out: TextIO | None = None) -> None:
    text = json.dumps(report.as_dict(), indent=2) if as_json else render_table(report)
    click.echo(text, file=out)


async def run_bench(messages: int, rate: int, as_json: bool) -> int:
    """Entry point of `s284 bench`: 0 when every message was accepted and delivered."""
    if messages < 1 or rate < 1:
        raise click.UsageError("--messages and --rate must be at least 1")
    report = await measure(messages, rate)
    emit(report, as_json)
    return 0 if report.ok else 1
