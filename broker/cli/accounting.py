"""`s284 audit accounting OFFENDER`: every disclosure about one offender, delivered and
whether the recipient's system confirmed taking it (the API's
/api/v1/audit/offenders/{offender}/disclosures, for an operator with the log at hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit import AuditStore, StoreUnavailableError, Viewer, accounting
from broker.cli.audit import HOME_HELP, database_url
from broker.errors import ConfigError
from broker.wire.envelope import Agency


@click.command(name="accounting")
@click.argument("offender")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option(
    "--agency",
    type=click.Choice([a.value for a in Agency]),
    default=None,
    help="As that agency's privacy officer sees it (its restricted records included); "
    "default: as an auditor (every unrestricted record).",
)
@click.option("--limit", default=1000, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of lines.")
def accounting_cmd(
    offender: str, home: Path | None, db: str | None, agency: str | None, limit: int,
    as_json: bool,
) -> None:  # fmt: skip
    """Disclosures about OFFENDER, newest first: when, who to whom, purpose, and whether the
    recipient's system confirmed taking it. Exit 1 if the log cannot be read."""
    viewer = Viewer("privacy_officer", agency, "cli") if agency else Viewer("auditor", None, "cli")
    rows = _all(database_url(home, db), viewer, offender, limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        confirmed = f"confirmed {row['confirmed_at']}" if row["confirmed_at"] else "UNCONFIRMED"
        click.echo(
            f"{row['occurred_at']}  {row['record_id']}  {_sender(row)} -> "
            f"{row['recipient_agency']}  {row['purpose']}  delivered, {confirmed}"
        )
    unconfirmed = sum(1 for row in rows if not row["confirmed_at"])
    click.echo(f"{len(rows)} disclosure(s) about {offender}, {unconfirmed} not confirmed")


def _sender(row: dict[str, Any]) -> str:
    """The sending agency, and the funded service that sent it in the agency's name."""
    provider = row.get("sender_provider")
    return f"{row['sender_agency']} ({provider})" if provider else str(row["sender_agency"])


def _all(url: str, viewer: Viewer, offender: str, limit: int) -> list[dict[str, Any]]:
    try:
        store = AuditStore.open(url)
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(f"cannot open the audit log: {exc.__class__.__name__}") from None
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    try:
        while len(rows) < limit:
            page = accounting(store, viewer, offender, cursor, min(500, limit - len(rows)))
            rows += page.rows
            if (cursor := page.next_cursor) is None:
                break
    except StoreUnavailableError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        store.close()
    return rows
