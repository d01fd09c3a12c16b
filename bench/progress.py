"""What a benchmark tells the person waiting for it. Always on stderr, terminal or not:
stdout keeps only the table or the JSON, so `s284 bench --json > figures.json` stays
clean while a log of the run (or the terminal) shows where it is."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Self

import click

# Rates measured on the reference machine (2 cores; bench/README.md), used only to say
# roughly how long a run will take before it starts.
PIPELINE_SETUP_S = 15.0
PIPELINE_MSG_S = 250.0
ALERTS_SETUP_S = 25.0
AUDIT_RECORDS_S = 4_200.0
AUDIT_BYTES_PER_RECORD = 2_150


def say(text: str) -> None:
    click.echo(text, err=True)


def duration(seconds: float) -> str:
    """`about 40 s`, `about 4 min`: a rough figure, rounded as a person would say it."""
    if seconds < 90:  # noqa: PLR2004 - below a minute and a half, seconds read better
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {round(seconds / 60):.0f} min"


def size(nbytes: float) -> str:
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{max(1, round(nbytes / 2**20)):.0f} MiB"


def plan_pipeline(messages: int, rate: int | None, raw_seconds: float = 10.0) -> None:
    offered = rate or PIPELINE_MSG_S / 2
    seconds = PIPELINE_SETUP_S + messages / PIPELINE_MSG_S + 5 + offered * 5 / PIPELINE_MSG_S
    at = f"{rate} msg/s" if rate else "half the measured throughput"
    say(
        f"s284 bench: {messages:,} messages through a temporary embedded broker, then "
        f"{at} for 5 s, then the raw pipeline for {raw_seconds:g} s and raw JetStream; "
        f"{duration(seconds + raw_seconds + 10)} on 2 cores (up to twice that on a busy machine)"
    )


def plan_alerts(rate: int, seconds: float) -> None:
    total = ALERTS_SETUP_S + 2 * seconds
    say(
        f"s284 bench alerts: {rate} alerts/s for {seconds:g} s through a temporary embedded "
        f"broker, then raw JetStream; {duration(total)} on 2 cores"
    )


def plan_audit(records: int, sqlite: bool) -> None:
    """The log benchmark is the long one: say the time and, for the default SQLite file,
    the disk it takes (about 2 GiB for the default million records)."""
    seconds = records / AUDIT_RECORDS_S + records / 20_000 + 30
    disk = (
        f"about {size(records * AUDIT_BYTES_PER_RECORD)} of disk in a temporary SQLite file"
        if sqlite
        else "its records in the --db you named"
    )
    say(
        f"s284 bench audit: {records:,} records, appended, verified and searched; "
        f"{duration(seconds)} on 2 cores (up to twice that on a busy machine) and {disk}. "
        "Ctrl-C stops it."
    )


class Ticker:
    """`async with Ticker("receipts", count)`: on a terminal, the count so far on one line,
    redrawn twice a second; off a terminal (a log, a pipe), nothing: the phase lines say it."""

    def __init__(self, label: str, count: Callable[[], int], total: int | None = None) -> None:
        self._label, self._count, self._total = label, count, total
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if sys.stderr.isatty():
            self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            click.echo("\r\033[K", err=True, nl=False)

    async def _tick(self) -> None:
        start = time.perf_counter()
        while True:
            of = f"/{self._total:,}" if self._total else ""
            elapsed = time.perf_counter() - start
            click.echo(
                f"\r    {self._label}: {self._count():,}{of}, {elapsed:.0f} s", err=True, nl=False
            )
            await asyncio.sleep(0.5)
