"""`s284 bench memory`: does the gateway's resident memory stay flat over a long run?
(issue 14: "the gateway's RSS flat (± 10 %) over a 100,000-message run").

Not a test: it prints figures. A fresh embedded deployment (`s284 up` in its own process,
fsync on, as phase 1 of `s284 bench`); Corrections seals the messages in chunks (so the
client never holds 100,000 frames at once) and publishes each chunk pipelined, waiting for
every receipt. Meanwhile the gateway's VmRSS is read from /proc every `interval` seconds.
The first `warmup` share of the messages fills what is meant to fill (the decision memo,
the header caches, the database's page cache, a larger generation 0); after it, every
sample must stay within ±10 % of the RSS at the end of the warm-up.
Each sample also splits the RSS by kind of mapping (`mappings`), which names what grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from bench import procstat
from bench.deployment import Deployment, deployment
from bench.pipeline import Counter, _client, _logs_to, pipeline_throughput, seal_messages
from bench.progress import Ticker, duration, say
from broker.wire.envelope import Agency

CHUNK = 2_000  # messages sealed, then published, at a time
TOLERANCE = 0.10  # ± 10 % of the RSS at the end of the warm-up


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the first publish
    answered: int  # receipts so far
    rss: int  # bytes, the gateway process
    load_1m: float
    heap: int | None = None  # resident bytes of the [heap] mapping (glibc's main arena)
    anon: int | None = None  # resident anonymous bytes elsewhere (mmap'd arenas, Rust, ...)
    file: int | None = None  # resident file-backed bytes (libraries, SQLite's WAL index)
    threads: int | None = None


def mappings(pid: int) -> tuple[int, int, int, int] | None:
    """Which kind of mapping holds the RSS, from /proc/<pid>/smaps: heap, other anonymous,
    file-backed; and the thread count. Growth in [heap] names the C allocator's main heap
    (fragmentation, or memory not given back), growth in other anonymous memory mmap'd
    arenas or an extension's own allocator, growth in file-backed memory a mapped file."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text(encoding="utf-8", errors="replace")
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    heap = anon = file = 0
    name, is_anon = "", False
    for line in text.splitlines():
        field = line.split(maxsplit=1)[0]
        if not field.endswith(":"):  # a mapping's header: address perms offset dev inode [path]
            parts = line.split(maxsplit=5)
            name = parts[5].strip() if len(parts) > 5 else ""  # noqa: PLR2004
            is_anon = parts[4] == "0" if len(parts) > 4 else True  # noqa: PLR2004
        elif field == "Rss:":
            kib = int(line.split()[1]) * 1024
            if name == "[heap]":
                heap += kib
            elif is_anon:
                anon += kib
            else:
                file += kib
    threads = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("Threads:")), 0)
    return heap, anon, file, threads


@dataclass(frozen=True)
class MemoryReport:
    messages: int
    accepted: int
    seconds: float
    warmup_messages: int
    samples: tuple[Sample, ...]

    @property
    def first(self) -> int:
        return self.samples[0].rss

    @property
    def peak(self) -> int:
        return max(s.rss for s in self.samples)

    @property
    def last(self) -> int:
        return self.samples[-1].rss

    @property
    def after_warmup(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.answered >= self.warmup_messages)

    @property
    def baseline(self) -> int | None:
        """The RSS at the end of the warm-up (the first sample past it)."""
        later = self.after_warmup
        return later[0].rss if later else None

    @property
    def flat(self) -> bool | None:
        """Every sample after the warm-up within ±10 % of `baseline`; None: no such sample."""
        base = self.baseline
        if base is None:
            return None
        return all(abs(s.rss - base) <= TOLERANCE * base for s in self.after_warmup)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "accepted": self.accepted,
            "seconds": self.seconds,
            "warmup_messages": self.warmup_messages,
            "rss_first": self.first,
            "rss_baseline": self.baseline,
            "rss_peak": self.peak,
            "rss_last": self.last,
            "flat_within_10_percent": self.flat,
            "samples": [asdict(s) for s in self.samples],
        }


def flat_verdict(report: MemoryReport) -> str:
    base, flat = report.baseline, report.flat
    if base is None or flat is None:
        return "no sample after the warm-up: run more messages"
    lo = min(s.rss for s in report.after_warmup)
    hi = max(s.rss for s in report.after_warmup)
    spread = f"{_mib(lo)}-{_mib(hi)} after it, {(hi - base) / base:+.1%} at most"
    verdict = "within" if flat else "NOT within"
    return f"{verdict} ±10 % of {_mib(base)} (the RSS after the warm-up): {spread}"


def render(report: MemoryReport) -> str:
    head = (
        f"s284 bench memory: {report.messages:,} messages, {report.accepted:,} accepted in "
        f"{report.seconds:.0f} s; warm-up {report.warmup_messages:,} messages; "
        f"load average now {_load()}"
    )
    rss = (
        f"gateway RSS: first {_mib(report.first)}, peak {_mib(report.peak)}, "
        f"last {_mib(report.last)}"
    )
    lines = [
        head,
        "",
        rss,
        f"  {flat_verdict(report)}",
        "",
        "receipts    seconds   RSS MiB   load 1m   [heap]  other anon  file-backed  threads",
    ]
    lines += [
        f"{s.answered:>8,}  {s.seconds:>9.0f}  {s.rss / 2**20:>8.1f}  {s.load_1m:>8.2f}"
        f"  {_opt_mib(s.heap):>7}  {_opt_mib(s.anon):>10}  {_opt_mib(s.file):>11}"
        f"  {'' if s.threads is None else s.threads:>7}"
        for s in _tenths(report.samples)
    ]
    return "\n".join(lines)


def _opt_mib(nbytes: int | None) -> str:
    return "" if nbytes is None else f"{nbytes / 2**20:.1f}"


def _tenths(samples: Sequence[Sample]) -> list[Sample]:
    """About eleven samples, evenly spread over the run, first and last included."""
    if len(samples) <= 11:  # noqa: PLR2004
        return list(samples)
    step = (len(samples) - 1) / 10
    return [samples[round(i * step)] for i in range(11)]


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MiB"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.asynccontextmanager
async def _sampling(
    running: Deployment, seen: Counter, interval: float, into: list[Sample]
) -> AsyncIterator[None]:
    start = time.perf_counter()

    def sample() -> None:
        rss = procstat.rss_bytes(running.gateway_pids[:1])
        if rss is not None:
            now, load = time.perf_counter() - start, os.getloadavg()[0]
            kinds = mappings(running.gateway_pids[0])
            into.append(Sample(now, seen.n, rss, load, *(kinds or (None,) * 4)))

    async def every() -> None:
        while True:
            sample()
            await asyncio.sleep(interval)

    task = asyncio.create_task(every())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sample()


async def memory_run(messages: int, interval: float, warmup: float) -> MemoryReport:
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="s284-bench-memory-") as tmp:
        root = Path(tmp)
        with _logs_to(root / "bench.log"):
            say("1/2 starting a temporary embedded broker (fsync on)")
            async with deployment(root) as running:
                sender = await _client(running.started.home.path, Agency.CORRECTIONS)
                seen, accepted = Counter(), 0
                say(f"2/2 {messages:,} messages in chunks of {CHUNK:,}; RSS every {interval:g} s")
                start = time.perf_counter()
                try:
                    async with (
                        _sampling(running, seen, interval, samples),
                        Ticker("receipts", lambda: seen.n, messages),
                    ):
                        for offset in range(0, messages, CHUNK):
                            sealed = seal_messages(sender, min(CHUNK, messages - offset), offset)
                            done, _ = await pipeline_throughput(sender, sealed, seen)
                            accepted += done
                finally:
                    await sender.close()
                seconds = time.perf_counter() - start
    return MemoryReport(messages, accepted, seconds, round(messages * warmup), tuple(samples))


def run_bench_memory(messages: int, interval: float, warmup: float, as_json: bool) -> int:
    """Entry point of `s284 bench memory`: 0 when every message was accepted and the RSS
    stayed within ±10 % after the warm-up."""
    say(
        f"s284 bench memory: {messages:,} messages through a temporary embedded broker, the "
        f"gateway's RSS sampled every {interval:g} s; {duration(15 + messages / 250)} on 2 "
        "cores (up to twice that on a busy machine)"
    )
    report = asyncio.run(memory_run(messages, interval, warmup))
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else render(report))
    return 0 if report.accepted == messages and report.flat else 1
