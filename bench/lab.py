"""`s284 bench --lab`: end-to-end throughput and latency on the lab topology (three
clustered nats-servers with R3 streams, PostgreSQL, gateway workers as separate
processes), with one and with two workers, and raw JetStream on the same cluster in the
same run (R3, TLS, fsync always, like the s284 streams).

End to end means: Corrections publishes a sealed frame for two recipients, and the clock
stops when Corrections holds the gateway's signed receipt, which the gateway sends only
after the disclosure records are committed and both deliveries are published. Frames are
published `WINDOW` at a time, so latency is measured under a full queue (a throughput
run), not at a trickle.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from broker.lab import DEFAULT_DB_URL, Lab, LabOptions
from broker.nats.client import raw_jetstream_baseline
from broker.sdk import AgencyClient
from broker.wire.envelope import Agency

WINDOW = 64


@dataclass(frozen=True)
class LabFigures:
    workers: int
    messages: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float


def _payload(index: int) -> dict[str, object]:
    """An invented risk update; no real person."""
    return {"synthetic": True, "sequence": index, "risk_level": ("low", "high")[index % 2]}


async def _end_to_end(lab: Lab, messages: int) -> tuple[LabFigures, int]:
    sender = await AgencyClient.from_agency_home(lab.home.agency_home("corrections").path)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    try:
        frames = []
        for i in range(messages):
            env = sender.envelope(
                kind="risk.update",
                purpose="offender_management",
                offender=f"S284-8{i:05d}",
                to=[Agency.POLICE, Agency.HEALTH],
            )
            frames.append((env.id, sender.seal(env, _payload(i))))

        async def one(mid: str, frame: bytes) -> None:
            sent = loop.time()
            await sender.publish_frame(frame, mid)
            await sender.receipt(mid, timeout=300.0)
            latencies.append(loop.time() - sent)

        start = loop.time()
        for first in range(0, messages, WINDOW):
            await asyncio.gather(*(one(m, f) for m, f in frames[first : first + WINDOW]))
        seconds = loop.time() - start
    finally:
        await sender.close()
    cuts = statistics.quantiles(latencies, n=100)
    figures = LabFigures(len(lab.workers), messages, seconds, messages / seconds,
                         cuts[49] * 1000, cuts[98] * 1000)  # fmt: skip
    return figures, len(frames[0][1])


async def run_lab_bench(messages: int, db_url: str, as_json: bool) -> int:
    results: list[LabFigures] = []
    raw_rate = 0.0
    with tempfile.TemporaryDirectory(prefix="s284-bench-lab-") as tmp:
        for workers in (1, 2):
            click.echo(f"lab with {workers} gateway worker(s): starting", err=True)
            options = LabOptions(Path(tmp) / f"w{workers}", db_url=db_url, workers=workers)
            async with Lab(options) as lab:
                figures, frame_bytes = await _end_to_end(lab, messages)
                results.append(figures)
                if workers == 2:  # noqa: PLR2004 - the last lab: raw JetStream on its cluster
                    admin = lab.home.admin_credentials()
                    seconds = await raw_jetstream_baseline(
                        lab.nats_url, messages, frame_bytes, WINDOW, admin
                    )
                    raw_rate = messages / seconds
    if as_json:
        click.echo(json.dumps({"lab": [asdict(r) for r in results], "raw_msg_s": raw_rate}))
        return 0
    click.echo(f"s284 bench --lab: {messages} messages, two recipients each, window {WINDOW}")
    for r in results:
        click.echo(f"  {r.workers} worker(s): {r.rate:8.0f} msg/s   p50 {r.p50_ms:7.1f} ms   "
                   f"p99 {r.p99_ms:7.1f} ms")  # fmt: skip
    click.echo(f"  raw JetStream (R3, same cluster): {raw_rate:8.0f} msg/s")
    return 0


__all__ = ["DEFAULT_DB_URL", "LabFigures", "run_lab_bench"]
