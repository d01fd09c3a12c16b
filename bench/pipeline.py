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
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import structlog

from bench.deployment import Cpu, Deployment, deployment
from bench.deployment import as_dict as cpu_dict
from bench.profiled import STEPS
from bench.progress import Ticker, say
from bench.rawpipe import RawPipeline, raw_pipeline
from broker import logs
from broker.errors import BrokerError
from broker.nats.client import raw_jetstream_baseline
from broker.nats.server import free_loopback_ports, nats_server_binary
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
    load_1m: float = 0.0

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
    load_1m: float = 0.0  # at the end of the phase, beside its wall-clock figure
    drain_load_1m: float = 0.0

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
    load_1m: float = 0.0


@dataclass(frozen=True)
class Raw:
    messages: int
    frame_bytes: int
    total_seconds: float
    load_1m: float = 0.0

    @property
    def rate(self) -> float:
        return _rate(self.messages, self.total_seconds)


@dataclass(frozen=True)
class Run:
    """Phases 1 and 2 on one deployment, and the CPU phase 1 cost per message."""

    sealing: Sealing
    throughput: Throughput
    latency: Latency
    cpu: Cpu


@dataclass(frozen=True)
class Options:
    messages: int
    rate: int | None  # None: half the measured throughput
    workers: int = 1
    profile: bool = False
    raw_seconds: float = 10.0
    fsync_comparison: bool = True


@dataclass(frozen=True)
class Report:
    options: Options
    run: Run
    raw: Raw
    raw_pipeline: RawPipeline
    decision: dict[str, float]
    unsynced: Run | None  # phases 1 and 2 without fsync before acknowledgement

    @property
    def ok(self) -> bool:
        runs = [self.run, *([self.unsynced] if self.unsynced else [])]
        return all(
            r.throughput.accepted == r.throughput.delivered_police == r.throughput.messages
            and r.latency.accepted == r.latency.sent
            for r in runs
        )

    @property
    def over_raw_pipeline(self) -> float | None:
        raw = self.raw_pipeline.rate
        return self.run.throughput.rate / raw if raw else None

    def as_dict(self) -> dict[str, Any]:
        def with_rate(obj: Sealing | Throughput | Raw | RawPipeline) -> dict[str, Any]:
            return {**asdict(obj), "msgs_per_s": obj.rate}

        def run(r: Run) -> dict[str, Any]:
            return {
                "pipeline": with_rate(r.throughput),
                "latency": asdict(r.latency),
                "cpu": cpu_dict(r.cpu),
            }

        raw_rate = self.raw.rate
        return {
            "host": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
            },
            "window": WINDOW,
            "workers": self.options.workers,
            "sealing": with_rate(self.run.sealing),
            **run(self.run),
            "fsync_off": run(self.unsynced) if self.unsynced else None,
            "raw_pipeline": with_rate(self.raw_pipeline),
            "pipeline_over_raw_pipeline": self.over_raw_pipeline,
            "raw_jetstream": with_rate(self.raw),
            "pipeline_over_raw": self.run.throughput.rate / raw_rate if raw_rate else None,
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


# -- the clients -------------------------------------------------------------------------


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
    return sealed, Sealing(count, seconds, size, _load1())


# -- phase 1: throughput -----------------------------------------------------------------


class Counter:
    """How many receipts have arrived so far (for the progress line)."""

    def __init__(self) -> None:
        self.n = 0


async def _receipts(
    client: AgencyClient, ids: Sequence[str], seen: Counter | None = None
) -> list[Receipt | BaseException]:
    async def one(mid: str) -> Receipt:
        receipt = await client.receipt(mid, RECEIPT_TIMEOUT)
        if seen is not None:
            seen.n += 1
        return receipt

    return await asyncio.gather(*(one(mid) for mid in ids), return_exceptions=True)


def _accepted(results: Sequence[Receipt | BaseException]) -> int:
    return sum(1 for r in results if isinstance(r, Receipt) and r.accepted)


async def pipeline_throughput(
    client: AgencyClient, sealed: Sealed, seen: Counter | None = None
) -> tuple[int, float]:
    """Publish all frames pipelined; (accepted receipts, first publish -> last receipt)."""
    start = time.perf_counter()
    await _pipelined([client.publish_frame(frame, mid) for mid, frame in sealed])
    results = await _receipts(client, [mid for mid, _ in sealed], seen)
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
        load_1m=_load1(),
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


async def _throughput(
    running: Deployment, sender: AgencyClient, police: AgencyClient, sealed: Sealed
) -> tuple[Throughput, Cpu]:
    """Phase 1, with the deployment's CPU from the first publish to the last receipt."""
    before = await running.snapshot()
    seen = Counter()
    async with Ticker("receipts", lambda: seen.n, len(sealed)):
        accepted, seconds = await pipeline_throughput(sender, sealed, seen)
    cpu = Cpu.between(before, await running.snapshot(), accepted)
    load = _load1()
    say(
        f"    {accepted:,} accepted in {seconds:.1f} s (load {load:.2f}); draining the police inbox"
    )
    delivered, drain = await drain_inbox(police, {mid for mid, _ in sealed})
    drained = Throughput(len(sealed), accepted, seconds, delivered, drain, load, _load1())
    return drained, cpu


async def _pipeline_phases(root: Path, opts: Options, *, sync_always: bool = True) -> Run:
    fsync = "fsync on" if sync_always else "fsync off"
    workers = f", {opts.workers} gateway workers" if opts.workers > 1 else ""
    say(f"1/6 starting a temporary embedded broker ({fsync}{workers})")
    async with deployment(
        root, sync_always=sync_always, workers=opts.workers, profile=opts.profile
    ) as running:
        home = running.started.home.path
        sender = await _client(home, Agency.CORRECTIONS)
        police = await _client(home, Agency.POLICE)
        try:
            sealed, sealing = timed_seal(sender, opts.messages)
            say(f"2/6 pipeline: {opts.messages:,} messages sealed, publishing them")
            throughput, cpu = await _throughput(running, sender, police, sealed)
            rate = opts.rate or max(1, round(throughput.rate / 2))
            offered, _ = timed_seal(sender, max(1, int(rate * LATENCY_SECONDS)), opts.messages)
            say(f"3/6 latency at {rate} msg/s for {LATENCY_SECONDS:g} s")
            latency = await latency_at_rate(sender, offered, rate)
        finally:
            await sender.close()
            await police.close()
    return Run(sealing, throughput, latency, cpu)


async def measure(opts: Options) -> Report:
    with tempfile.TemporaryDirectory(prefix="s284-bench-") as tmp:
        root = Path(tmp)
        with _logs_to(root / "bench.log"):
            run = await _pipeline_phases(root, opts)
            off = None
            if opts.fsync_comparison:
                (root / "fsync-off").mkdir()
                off = await _pipeline_phases(root / "fsync-off", opts, sync_always=False)
            (root / "rawpipe").mkdir()
            say(f"4/6 raw pipeline (the gateway's NATS pattern only) for {opts.raw_seconds:g} s")
            frame = run.sealing.frame_bytes
            batch = Settings().fetch_batch
            rawpipe = await raw_pipeline(
                root / "rawpipe", opts.raw_seconds, frame, WINDOW, batch, sync_always=True
            )
        (root / "raw").mkdir()
        say("5/6 raw JetStream baseline (publish + pull/ack only)")
        async with plain_nats_server(root / "raw") as url:
            seconds = await raw_jetstream_baseline(url, opts.messages, frame, WINDOW)
            raw = Raw(opts.messages, frame, seconds, _load1())
    say("6/6 policy decision latency")
    decision = await asyncio.to_thread(decision_latency, DECISIONS)
    return Report(opts, run, raw, rawpipe, decision, off)


def _load1() -> float:
    return os.getloadavg()[0]


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} us"


def render_table(report: Report) -> str:
    run, raw, rp = report.run, report.raw, report.raw_pipeline
    s, t, lat = run.sealing, run.throughput, run.latency
    rows = [
        ("client sealing (pre-sealed, not timed below)", s.messages, s.seconds, s.rate, s.load_1m),
        ("pipeline: first publish -> last receipt", t.accepted, t.seconds, t.rate, t.load_1m),
        (
            "police inbox drain (verify+decrypt+ack)",
            t.delivered_police,
            t.drain_seconds,
            _rate(t.delivered_police, t.drain_seconds),
            t.drain_load_1m,
        ),
    ]
    if report.unsynced:
        off = report.unsynced.throughput
        rows.append(
            (
                "pipeline, fsync off (comparison only)",
                off.accepted,
                off.seconds,
                off.rate,
                off.load_1m,
            )
        )
    rows += [
        (
            "raw pipeline: the gateway's NATS pattern only",
            rp.messages,
            rp.seconds,
            rp.rate,
            rp.load_1m,
        ),
        (
            "raw JetStream publish + pull/ack",
            raw.messages,
            raw.total_seconds,
            raw.rate,
            raw.load_1m,
        ),
    ]
    header = (
        f"s284 bench: {t.messages} messages, ~{PAYLOAD_BYTES} B payload, sealed frame "
        f"{s.frame_bytes} B, {WINDOW} in flight, {report.options.workers} gateway worker(s); "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; load average now {_load()}"
    )
    ratio = report.over_raw_pipeline or 0.0
    summary = (
        f"pipeline / raw pipeline: {ratio:.2f}; pipeline / raw JetStream: "
        f"{t.rate / raw.rate if raw.rate else 0.0:.2f}; accepted {t.accepted}/{t.messages}, "
        f"delivered to police {t.delivered_police}/{t.messages}"
    )
    cpu = (
        f"CPU per message (from /proc, phase 1): gateway process(es) {_us(run.cpu.gateway_us)}, "
        f"nats-server {_us(run.cpu.nats_us)};\n  raw pipeline: raw gateway "
        f"{_us(_per(rp.gateway_cpu_s, rp.messages))}, "
        f"nats-server {_us(_per(rp.nats_cpu_s, rp.messages))}"
        f"\n  gateway resident memory: {_mib(run.cpu.rss_before)} at the first publish, "
        f"{_mib(run.cpu.rss_after)} after the last receipt"
    )
    latency = (
        f"latency at {lat.offered_rate} msg/s offered ({lat.sent} messages): "
        f"p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms "
        f"(load {lat.load_1m:.2f});\n"
        f"  sent at {lat.send_rate:.0f} msg/s, achieved {lat.achieved_rate:.0f} msg/s, "
        f"accepted {lat.accepted}/{lat.sent}"
    )
    if report.unsynced:
        off_lat = report.unsynced.latency
        latency += (
            f"\n  fsync off (comparison only): p50 {off_lat.p50_ms:.1f} ms, "
            f"p99 {off_lat.p99_ms:.1f} ms, achieved {off_lat.achieved_rate:.0f} msg/s"
        )
    verdict = "OK" if report.ok else "NOT OK: some messages were not accepted or not delivered"
    lines = [
        header,
        "",
        f"{'phase':<46} {'messages':>9} {'seconds':>9} {'msg/s':>9} {'load 1m':>8}",
        *(
            f"{name:<46} {n:>9} {sec:>9.2f} {r:>9.0f} {'' if ld is None else f'{ld:.2f}':>8}"
            for name, n, sec, r, ld in rows
        ),
        "",
        summary,
        cpu,
        latency,
        *_profile_lines(run.cpu),
        (
            f"s 284 policy decision ({report.decision['decisions']:.0f} decisions, parse once, "
            f"decide many): Cedar median {report.decision['median_us']:.0f} us, "
            f"p99 {report.decision['p99_us']:.0f} us; remembered median "
            f"{report.decision['memo_median_us']:.1f} us, "
            f"p99 {report.decision['memo_p99_us']:.1f} us"
        ),
        verdict,
    ]
    return "\n".join(lines)


def _mib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:,.0f} MiB"


def _per(seconds: float | None, messages: int) -> float | None:
    return None if seconds is None or messages < 1 else seconds * 1e6 / messages


def _profile_lines(cpu: Cpu) -> list[str]:
    """--profile: the gateway's CPU per message by step (bench/profiled.py says how)."""
    if not cpu.profile_us:
        return []
    total = sum(cpu.profile_us.values())
    lines = ["", f"{'gateway step (--profile, phase 1)':<46} {'CPU us/msg':>10} {'share':>6}"]
    for label, us in sorted(cpu.profile_us.items(), key=lambda kv: _step_order(kv[0])):
        lines.append(f"{label:<46} {us:>10,.0f} {us / total if total else 0:>6.0%}")
    lines.append(f"{'total':<46} {total:>10,.0f}")
    return lines


def _step_order(label: str) -> tuple[int, str]:
    order = [label for _, _, label in STEPS]
    return (order.index(label), label) if label in order else (len(order), label)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def emit(report: Report, as_json: bool, out: TextIO | None = None) -> None:
    text = json.dumps(report.as_dict(), indent=2) if as_json else render_table(report)
    click.echo(text, file=out)


async def run_bench(opts: Options, as_json: bool) -> int:
    """Entry point of `s284 bench`: 0 when every message was accepted and delivered."""
    if opts.messages < 1 or (opts.rate is not None and opts.rate < 1) or opts.workers < 1:
        raise click.UsageError("--messages, --rate and --workers must be at least 1")
    if opts.raw_seconds < 1:
        raise click.UsageError("--raw-seconds must be at least 1")
    report = await measure(opts)
    emit(report, as_json)
    return 0 if report.ok else 1
