"""`s284 stats --from --to`: the oversight counts for a period, as the API's
`GET /api/v1/oversight/statistics` gives them (each figure defined in docs/oversight.md).

Counts only, from the log's structured members: it never reads personal fields or
payloads, so an operator can hand its output to the Post Sentence Authority as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit import AuditStore, Period, PeriodError, statistics
from broker.cli.audit import HOME_HELP, database_url
from broker.errors import ConfigError
from broker.http.oversight import with_requests
from routing import RoutingStore


@click.command()
@click.option("--from", "start", required=True, help="First day (YYYY-MM-DD) or RFC 3339 time.")
@click.option("--to", "end", required=True, help="Last day, included (YYYY-MM-DD), or a time.")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats(start: str, end: str, home: Path | None, db: str | None, as_json: bool) -> None:
    """Oversight statistics for a period, from the disclosure log.

    \b
    s284 stats --from 2026-01-01 --to 2026-03-31 --home var/s284
    s284 stats --from 2026-01-01 --to 2026-03-31 --json > q1.json
    """
    try:
        period = Period.parse(start, end)
    except PeriodError as exc:
        raise click.UsageError(str(exc)) from None
    url = database_url(home, db)
    try:
        store = AuditStore.open(url)
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(f"cannot open the audit log: {exc.__class__.__name__}") from None
    try:
        figures = statistics(store, period)
    finally:
        store.close()
    register = RoutingStore.open(url)
    try:
        figures = with_requests(figures, register.requests, period)
    finally:
        register.close()
    click.echo(json.dumps(figures, indent=2) if as_json else "\n".join(_lines(figures)))


def _lines(figures: dict[str, Any], indent: str = "") -> list[str]:
    """Nested figures as indented `name: value` lines, in the API's order."""
    lines = []
    for name, value in figures.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{name}:" + ("" if value else " (none)"))
            lines += _lines(value, indent + "  ")
        else:
            lines.append(f"{indent}{name}: {'n/a' if value is None else value}")
    return lines
