"""`s284 routing ...` and `s284 csp ...`: the designated-contact table and the register of
coordinated services plans."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from audit import AuditStore
from broker.alerts.admin import import_table
from broker.cli.audit import database_url
from broker.cli.requests import request_line, soct_overdue
from broker.errors import ConfigError
from broker.settings import Settings
from routing import RoutingError, RoutingStore

HOME_HELP = "Deployment home (its audit.db holds the routing table). Env: S284_HOME."
home_option = click.option(
    "--home", type=click.Path(path_type=Path), envvar="S284_HOME", default=None, help=HOME_HELP
)
db_option = click.option("--db", default=None, help="SQLAlchemy URL (default: the home's).")
EXIT_GAPS = 3


def _routing(home: Path | None, db: str | None) -> RoutingStore:
    return RoutingStore.open(database_url(home, db, may_create=True))


@click.group()
def routing() -> None:
    """Who receives routed alerts: import, export, show and check the routing table.

    \b
    s284 routing import table.yaml --as "ops-0001"   a new version; recorded in the log
    s284 routing show                                 contact ids per agency/area/topic
    s284 routing check                                needs nobody covers (exit 3 if any)
    s284 routing export > table.yaml                  the current version, re-importable
    See docs/examples/routing-table.yaml for the format.
    """


@routing.command(name="import")
@home_option
@db_option
@click.argument("table", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "actor", required=True, help="Who makes this change (staff id).")
def import_cmd(home: Path | None, db: str | None, table: Path, actor: str) -> None:
    """Import TABLE (YAML) as the next version of the routing table."""
    try:
        doc = yaml.safe_load(table.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{table} is not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise click.UsageError(f"{table} must hold a mapping (see docs/examples)")
    url = database_url(home, db, may_create=True)
    store, audit = RoutingStore.open(url), AuditStore.open(url)
    try:
        change = import_table(store, audit, doc, actor, Settings().node)
    except RoutingError as exc:
        raise ConfigError(f"routing table refused: {exc}") from None
    finally:
        store.close()
        audit.close()
    click.echo(
        f"routing table v{change.version} imported ({change.added} added, {change.removed} "
        f"removed, {change.changed} changed); recorded in the disclosure log"
    )


@routing.command()
@home_option
@db_option
@click.option("--version", type=int, default=None, help="An earlier version (default: current).")
def export(home: Path | None, db: str | None, version: int | None) -> None:
    """Print the routing table as YAML."""
    store = _routing(home, db)
    try:
        doc = store.export_table() if version is None else store.table_version(version)
    except RoutingError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        store.close()
    click.echo(yaml.safe_dump(doc, sort_keys=False), nl=False)


@routing.command()
@home_option
@db_option
def show(home: Path | None, db: str | None) -> None:
    """One line per (agency, area, topic): contact and deputy ids, deadline, active."""
    store = _routing(home, db)
    try:
        rows = store.rows()
        versions = store.versions()
    finally:
        store.close()
    if not rows:
        click.echo("no routing table imported yet (s284 routing import --help)")
        return
    latest = versions[-1]
    click.echo(f"routing table v{latest.version}, imported {latest.at:%Y-%m-%d %H:%M} UTC")
    for r in sorted(rows, key=lambda r: (r.agency, r.area, r.topic.value)):
        deputy = r.deputy.id if r.deputy else "-"
        state = "active" if r.active else "INACTIVE"
        click.echo(
            f"  {r.agency:<12}{r.area:<22}{r.topic.value:<16}{r.contact.id:<16}"
            f"deputy {deputy:<14}ack {r.ack_within_min:>4} min  {state}"
        )


@routing.command()
@home_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the gaps as JSON.")
def check(home: Path | None, db: str | None, as_json: bool) -> None:
    """Report every (agency, area, topic) the scheme needs with no active contact, and alerts
    parked at a duty inbox by a routing failure. Exit 0 when none, 3 otherwise."""
    store = _routing(home, db)
    try:
        gaps = store.check()
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {
            "agency": g.agency,
            "area": g.area,
            "topic": g.topic.value,
            "reason": g.reason,
            "alert_id": g.alert_id,
        }
        for g in gaps
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("ok: every need the scheme lists has an active designated contact")
    for row in [] if as_json else rows:
        where = f"alert {row['alert_id']}" if row["alert_id"] else "no active contact"
        click.echo(
            f"  {row['agency']:<12}{row['area'] or '-':<22}{row['topic']:<16}"
            f"{row['reason']:<26}{where}"
        )
    if rows:
        raise SystemExit(EXIT_GAPS)


@click.group()
def csp() -> None:
    """Coordinated services plans: the register Corrections' csp.update events feed, and
    the review dates the MAP must keep (every six months from endorsement).

    \b
    s284 csp plans [--offender REF]   every plan: status, since when, next review due
    s284 csp missing                  offenders whose order needs a plan and who have no
                                      current one (exit 3 if any)
    s284 csp overdue                  plans whose review date has passed, and SOCT's
                                      information requests past their deadline and
                                      unanswered (exit 3 if any of either)
    """


@csp.command()
@home_option
@db_option
@click.option("--offender", default=None, help="Only this offender's plans.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plans(home: Path | None, db: str | None, offender: str | None, as_json: bool) -> None:
    """List the plans in the register, by offender."""
    store = _routing(home, db)
    try:
        rows, reviews = store.csp_plans(offender), {r.csp_id: r for r in store.csp_reviews()}
    finally:
        store.close()
    items = [
        {
            "offender": p.offender,
            "csp_id": p.csp_id,
            "status": p.status,
            "since": p.status_on.isoformat(),
            "endorsed_on": p.endorsed_on.isoformat() if p.endorsed_on else None,
            "review_due": reviews[p.csp_id].due.isoformat() if p.csp_id in reviews else None,
            "closed_reason": p.closed_reason,
        }
        for p in rows
    ]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    click.echo(f"{len(items)} plan(s)")
    for item in items:
        due = f"review due {item['review_due']}" if item["review_due"] else ""
        why = f"({item['closed_reason']})" if item["closed_reason"] else ""
        click.echo(
            f"  {item['offender']}  {item['csp_id']}  {item['status']} since {item['since']}"
            f"  {due}{why}".rstrip()
        )


@csp.command()
@home_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def missing(home: Path | None, db: str | None, as_json: bool) -> None:
    """List offenders on a supervision order, an interim one or a pending application with
    no current plan (endorsed or reviewed, not closed). Exit 3 when there are any."""
    store = _routing(home, db)
    try:
        rows = store.csp_missing()
    finally:
        store.close()
    items = [
        {
            "offender": m.offender,
            "order_status": m.order_status,
            "managing_officer": m.managing_officer,
            "in_preparation": list(m.in_preparation),
        }
        for m in rows
    ]
    if as_json:
        click.echo(json.dumps(items, indent=2))
    else:
        click.echo(f"{len(items)} offender(s) without a current plan")
        for item in items:
            pending = ", ".join(item["in_preparation"])
            note = f"  plan {pending} awaits endorsement" if pending else ""
            click.echo(
                f"  {item['offender']}  {item['order_status']}  "
                f"managed by {item['managing_officer']}{note}"
            )
    if items:
        raise SystemExit(EXIT_GAPS)


@csp.command()
@home_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def overdue(home: Path | None, db: str | None, as_json: bool) -> None:
    """List CSPs whose review is overdue, oldest due date first, then SOCT's information
    requests past their deadline and unanswered. Exit 3 when there are any."""
    store = _routing(home, db)
    try:
        rows = store.overdue(datetime.now(UTC).date())
        requests = soct_overdue(store, datetime.now(UTC))
    finally:
        store.close()
    items = [
        {
            "offender": r.offender,
            "csp_id": r.csp_id,
            "last_review": r.last_review.isoformat(),
            "due": r.due.isoformat(),
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps({"reviews": items, "requests": requests}, indent=2))
    else:
        click.echo(f"{len(items)} CSP review(s) overdue")
        for item in items:
            click.echo(
                f"  {item['offender']}  {item['csp_id']}  due {item['due']} "
                f"(last reviewed {item['last_review']})"
            )
        click.echo(f"{len(requests)} information request(s) overdue")
        for request in requests:
            click.echo(request_line(request))
    if items or requests:
        raise SystemExit(EXIT_GAPS)
