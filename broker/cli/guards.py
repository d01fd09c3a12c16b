"""`s284 audit restore-guards`: re-create the log's append-only triggers, deliberately.

Nothing else re-creates a trigger (opening the store or verifying would erase the evidence
of its removal), so an operator who has investigated a `guard.trigger_missing` or
`guard.trigger_altered` finding, or upgraded a log made before a guard existed, restores
them here.
"""

from __future__ import annotations

from pathlib import Path

import click

from audit import AuditStore
from broker.cli.audit import HOME_HELP, database_url
from broker.errors import ConfigError


@click.command(name="restore-guards")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_guards(home: Path | None, db: str | None, yes: bool) -> None:
    """Re-create missing append-only triggers (after `s284 audit verify` reported them).

    Run `s284 audit verify` first and keep its report: once restored, the finding is gone.
    """
    if not yes:
        click.confirm(
            "Re-create the log's append-only triggers? Keep verify's report first", abort=True
        )
    try:
        store = AuditStore.open(database_url(home, db))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(f"cannot open the audit log: {exc.__class__.__name__}") from None
    try:
        store.install_guards()
    finally:
        store.close()
    click.echo("append-only triggers restored; run s284 audit verify")
