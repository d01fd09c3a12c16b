"""The request register on the command line (docs/notices.md): SOCT's overdue information
requests (beside the overdue CSP reviews, `s284 csp overdue`) and `s284 psa notices`, the
Authority's notices and requests with their answers. Exit 3 when any is overdue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from broker.cli.audit import database_url
from routing import RoutingStore, request_summary

EXIT_OVERDUE = 3
HOME_HELP = "Deployment home (its audit.db holds the request register). Env: S284_HOME."
SOCT_PURPOSE = "csp_preparation"  # SOCT's requests to services, ahead of MAP meetings


def soct_overdue(store: RoutingStore, now: datetime) -> list[dict[str, Any]]:
    """Information requests for preparing or reviewing a plan, past due and unanswered."""
    rows = store.requests.overdue(now, purpose=SOCT_PURPOSE)
    return [request_summary(r, now) for r in rows if r.kind == "info.request"]


def request_line(item: dict[str, Any]) -> str:
    state = (
        f"answered {item['answered_at'][:10]}"
        if item["answered_at"]
        else ("OVERDUE" if item["overdue"] else "open")
    )
    late = f", {item['late_days']} day(s) late" if item["late_days"] else ""
    return (
        f"  {item['request_id']}  {item['kind']}  {item['from']} -> {item['to']}  "
        f"{item['offender']}  respond by {item['respond_by'][:16]}  {state}{late}"
    )


@click.group()
def psa() -> None:
    """The Post Sentence Authority's notices and information requests (the request register).

    \b
    s284 psa notices              every notice and request the Authority issued, answered
                                  or not, oldest deadline first (exit 3 if any is overdue)
    s284 psa notices --overdue    only those past their deadline and unanswered
    """


@psa.command()
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL (default: the home's).")
@click.option("--overdue", "only_overdue", is_flag=True, help="Only overdue ones.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def notices(home: Path | None, db: str | None, only_overdue: bool, as_json: bool) -> None:
    """List the Authority's notices and information requests with their answers."""
    store = RoutingStore.open(database_url(home, db, may_create=True))
    now = datetime.now(UTC)
    try:
        rows = store.requests.rows(from_agency="psa")
    finally:
        store.close()
    items = [request_summary(r, now) for r in rows if r.overdue(now) or not only_overdue]
    overdue = sum(1 for item in items if item["overdue"])
    if as_json:
        click.echo(json.dumps(items, indent=2))
    else:
        click.echo(f"{len(items)} notice(s) and request(s) of the Authority, {overdue} overdue")
        for item in items:
            click.echo(request_line(item))
    if overdue:
        raise SystemExit(EXIT_OVERDUE)
