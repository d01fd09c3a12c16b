"""`s284 adapter`: run an agency adapter, list its quarantine, generate synthetic sources.

The `adapters` package is imported inside each command, so `broker` does not depend on it
at import time. Exit codes as for `s284`: 0 success, 1 an error (one line), 2 usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from broker import MAP_AGENCIES, Agency, stop_event_on_signals

if TYPE_CHECKING:
    from adapters import AdapterConfig

_CONFIG = click.Path(path_type=Path, dir_okay=False, exists=True)
_EXAMPLE = """\b
Config (YAML or JSON; relative paths are relative to the config file):
  agency: {agency}
  home: ../var/s284        # the broker deployment home
  source: in               # the agency system drops files here
  destination: out         # deliveries are written here, in the agency's format
  state_dir: state         # the adapter's SQLite state (positions, sent keys, quarantine)
  mapping: offenders.csv   # local_id,offender_ref  (agency id -> S284-NNNNNN)
  webhook_port: 8290       # police only: POST /events"""


def _example(agency: Agency) -> str:
    text = _EXAMPLE.format(agency=agency.value)
    return text if agency is Agency.POLICE else text.rsplit("\n", 1)[0]


def _load(config: Path, agency: Agency) -> AdapterConfig:
    from adapters import AdapterConfig, AdapterError  # noqa: PLC0415 - lazy by design

    loaded = AdapterConfig.load(config)
    if loaded.agency is not agency:
        raise AdapterError(f"{config} configures the {loaded.agency.value} adapter, not {agency}")
    return loaded


@click.group()
def adapter() -> None:
    """Agency adapters: speak the broker's envelope for an agency's own system.

    \b
      s284 adapter health --config health.yaml              run it (Ctrl-C stops it)
      s284 adapter health quarantine --config health.yaml   records that could not be sent
      s284 adapter health requeue --config health.yaml      retry them once their cause is fixed
      s284 adapter health generate --config health.yaml     synthetic source files
      s284 adapter corrections counts --config corr.yaml    new cases per month and program

    Inbound, the adapter reads the files the agency system drops into its source folder
    (write a dot-file, then rename it), maps each record to a message and sends it once,
    even across restarts. Outbound, it writes each delivery to its destination folder in
    the agency's format before acknowledging it. A record that cannot be mapped, or whose
    offender is not in the offender map, is quarantined with a reason and never guessed.
    """


async def _run_adapter(config: AdapterConfig) -> int:
    from adapters._run import run_until_stopped  # noqa: PLC0415 - adapters load on demand

    return await run_until_stopped(config, stop_event_on_signals())


def _agency_group(agency: Agency) -> click.Group:
    @click.group(
        name=agency.value,
        invoke_without_command=True,
        epilog=_example(agency),
        short_help=f"The {agency.value} adapter: run it, list its quarantine, generate data.",
    )
    @click.option("--config", type=_CONFIG, default=None, help="The adapter's config file.")
    @click.pass_context
    def group(ctx: click.Context, config: Path | None) -> None:
        if ctx.invoked_subcommand is not None:
            return
        if config is None:
            raise click.UsageError("--config FILE is required to run the adapter")
        sys.exit(asyncio.run(_run_adapter(_load(config, agency))))

    group.help = (
        f"Run the {agency.value} adapter until Ctrl-C or SIGTERM: inbound from its source "
        "folder, outbound to its destination folder."
    )

    @group.command()
    @click.option("--config", type=_CONFIG, required=True, help="The adapter's config file.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    def quarantine(config: Path, as_json: bool) -> None:
        """List the quarantined records: source file, record key, reason code, what to fix."""
        from adapters import AdapterState  # noqa: PLC0415

        state = AdapterState.open(_load(config, agency).state_dir)
        try:
            rows = state.quarantined()
        finally:
            state.close()
        for row in rows:
            record = {
                "at": row.at.isoformat(),
                "source": row.source,
                "record": row.record_key,
                "reason": row.reason,
                "detail": row.detail,
            }
            click.echo(json.dumps(record) if as_json else "  ".join(map(str, record.values())))
        click.echo(f"{len(rows)} record(s) in quarantine.", err=True)

    @group.command()
    @click.option("--config", type=_CONFIG, required=True, help="The adapter's config file.")
    def requeue(config: Path) -> None:
        """Give every quarantined record another try, once you have fixed its cause (e.g.
        added the offender to the mapping file). Stop the adapter first; records already
        sent are never sent again."""
        from adapters import AdapterState  # noqa: PLC0415

        state = AdapterState.open(_load(config, agency).state_dir)
        try:
            released = state.requeue()
        finally:
            state.close()
        click.echo(f"{released} record(s) released; the adapter retries them when it next runs.")

    @group.command()
    @click.option("--config", type=_CONFIG, required=True, help="The adapter's config file.")
    @click.option("--count", default=12, show_default=True, help="Records to generate.")
    @click.option("--seed", default=284, show_default=True, help="Same seed, same records.")
    def generate(config: Path, count: int, seed: int) -> None:
        """Write synthetic source files (invented people) to the source folder, and an
        offender map for them if the config's mapping file does not exist yet."""
        from adapters._run import generate_sources  # noqa: PLC0415

        for path in generate_sources(_load(config, agency), count, seed):
            click.echo(str(path))

    if agency is Agency.CORRECTIONS:
        group.add_command(_counts)
    return group


@click.command(name="counts")
@click.option("--config", type=_CONFIG, required=True, help="The adapter's config file.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def _counts(config: Path, as_json: bool) -> None:
    """New perpetrator-intervention cases per month, provider and program, from the
    attendance exports in the source folder (the rule, with its one-hour minimum of a
    service: adapters/counting.py)."""
    from adapters.corrections import new_case_counts_in  # noqa: PLC0415

    counts = new_case_counts_in(_load(config, Agency.CORRECTIONS).source)
    rows: list[dict[str, Any]] = [
        {"month": m, "provider": who, "program": p, "new_cases": n}
        for (m, who, p), n in counts.items()
    ]
    for row in rows:
        click.echo(
            json.dumps(row)
            if as_json
            else f"{row['month']}  {row['provider'] or '-':<24} {row['program']:<5} "
            f"{row['new_cases']}"
        )


for _agency in MAP_AGENCIES:
    adapter.add_command(_agency_group(_agency))
