"""`s284 bench`: the benchmarks, a subcommand contributed through the `s284.commands`
entry point so the library never imports them (bench/README.md says what each measures)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

import click


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    return asyncio.run(coro) or 0


@click.group(invoke_without_command=True)
@click.option("--messages", "-n", default=5000, show_default=True, help="Messages to send.")
@click.option(
    "--rate",
    type=int,
    default=None,
    help="Offered rate (msg/s) for the latency run [default: half the measured throughput].",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Gateway worker processes (the first is `s284 up`'s; they share one consumer).",
)
@click.option("--profile", is_flag=True, help="Also a per-step CPU breakdown of the gateway.")
@click.option(
    "--raw-seconds",
    default=10.0,
    show_default=True,
    help="How long the raw-pipeline yardstick publishes (>= 10 s for stable figures).",
)
@click.option(
    "--fsync-comparison/--no-fsync-comparison",
    default=True,
    show_default=True,
    help="Run phases 1-2 again without fsync before acknowledgement (doubles their time).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--lab", is_flag=True, help="On the lab topology instead (bench/lab.py).")
@click.pass_context
def bench(
    ctx: click.Context,
    messages: int,
    rate: int | None,
    workers: int,
    profile: bool,
    raw_seconds: float,
    fsync_comparison: bool,
    as_json: bool,
    lab: bool,
) -> None:
    """Measure the full pipeline against the raw pipeline and raw JetStream in the same run
    (not a test); `--lab` on the three-node cluster with PostgreSQL, 1 and 2 workers.

    \b
    s284 bench                  the pipeline (these options)
    s284 bench audit            the disclosure log: append, verify, search
    s284 bench alerts           routed alert latency, send -> the contact's subject
    s284 bench memory           the gateway's resident memory over a long run
    """
    if ctx.invoked_subcommand is not None:
        return
    if lab:
        from bench.lab import DEFAULT_DB_URL, run_lab_bench  # noqa: PLC0415

        sys.exit(_run(run_lab_bench(messages, DEFAULT_DB_URL, as_json)))
    from bench.pipeline import Options, run_bench  # noqa: PLC0415
    from bench.progress import plan_pipeline  # noqa: PLC0415

    plan_pipeline(messages, rate, raw_seconds)
    opts = Options(messages, rate, workers, profile, raw_seconds, fsync_comparison)
    sys.exit(_run(run_bench(opts, as_json)))


@bench.command("audit")
@click.option(
    "--records", default=1_000_000, show_default=True, help="Records to append, then search."
)
@click.option(
    "--db",
    default=None,
    help="SQLAlchemy URL of an empty log (default: a temporary SQLite file).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary SQLite file (its path is printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_audit(records: int, db: str | None, keep: bool, as_json: bool) -> None:
    """Measure the disclosure log: append rate, verify rate, search latency (not a test)."""
    from bench.audit import run_bench_audit  # noqa: PLC0415 - keeps `s284 --help` fast
    from bench.progress import plan_audit  # noqa: PLC0415

    plan_audit(records, sqlite=db is None or db.startswith("sqlite"))
    sys.exit(run_bench_audit(records, db, keep, as_json))


@bench.command("alerts")
@click.option("--rate", default=100, show_default=True, help="Offered rate (alerts/s).")
@click.option("--seconds", default=20.0, show_default=True, help="How long to offer alerts.")
@click.option("--offenders", default=50, show_default=True, help="Synthetic offenders placed.")
@click.option(
    "--batch",
    default=64,
    show_default=True,
    help="Alerts per fetch for the subscribers (AgencyClient.alerts' default).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_alerts(rate: int, seconds: float, offenders: int, batch: int, as_json: bool) -> None:
    """Measure routed alert latency, send -> the designated contact's subject (not a test)."""
    from bench.alerts import run_bench_alerts  # noqa: PLC0415 - keeps `s284 --help` fast
    from bench.progress import plan_alerts  # noqa: PLC0415

    plan_alerts(rate, seconds)
    sys.exit(_run(run_bench_alerts(rate, seconds, offenders, batch, as_json)))


@bench.command("memory")
@click.option("--messages", "-n", default=100_000, show_default=True, help="Messages to send.")
@click.option(
    "--interval", default=2.0, show_default=True, help="Seconds between two RSS samples."
)
@click.option(
    "--warmup",
    default=0.1,
    show_default=True,
    help="Share of the messages before the RSS must stay within ±10 %.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_memory(messages: int, interval: float, warmup: float, as_json: bool) -> None:
    """Sample the gateway's resident memory over a long run (not a test): first, peak, last,
    and whether it stayed within ±10 % after the warm-up."""
    from bench.memory import run_bench_memory  # noqa: PLC0415 - keeps `s284 --help` fast

    if messages < 1 or interval <= 0 or not 0 <= warmup < 1:
        raise click.UsageError("--messages >= 1, --interval > 0 and 0 <= --warmup < 1")
    sys.exit(run_bench_memory(messages, interval, warmup, as_json))
