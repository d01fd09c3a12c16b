"""`s284 audit explain RECORD_ID`: re-run a logged decision with the bundle version that
made it, and say whether the outcome, policies and reason are the same (docs/oversight.md).

Exit 0 when they are; 4 when they differ (the log and the archived bundle disagree, which
an auditor must look into); 1 when the record carries no decision inputs or its bundle is
not archived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit import AuditStore, Viewer, record_by_id
from broker.cli.audit import EXIT_TAMPERED, HOME_HELP, database_url
from broker.errors import BrokerError, ConfigError
from broker.settings import Settings
from policies import BundleArchive, RecordedDecision, replay


class DecisionDiffersError(BrokerError):
    """A logged decision re-run with its own bundle version decides otherwise."""

    exit_code = EXIT_TAMPERED


@click.command()
@click.argument("record_id")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option(
    "--bundles",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The policy bundle archive (default: the home's bundles/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def explain(
    record_id: str, home: Path | None, db: str | None, bundles: Path | None, as_json: bool
) -> None:
    """Re-run the decision of RECORD_ID with the archived bundle version that made it.

    \b
    s284 audit explain 01JBXR3TBZ5EED00A100000001 --home var/s284
    """
    record = _record(record_id, home, db)
    archive = BundleArchive(bundles) if bundles else BundleArchive.in_home(_home(home))
    answer = replay(RecordedDecision.from_record(record), archive).as_dict()
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo("\n".join(_lines(answer)))
    if not answer["same"]:
        raise DecisionDiffersError(
            f"record {record_id}: the re-run DIFFERS from the log ("
            + "; ".join(answer["differences"])
            + ")"
        )


def _home(home: Path | None) -> Path:
    return home if home is not None else Settings().home


def _record(record_id: str, home: Path | None, db: str | None) -> dict[str, Any]:
    """The record as an auditor sees it (restricted records are a privacy officer's)."""
    try:
        store = AuditStore.open(database_url(home, db))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(f"cannot open the audit log: {exc.__class__.__name__}") from None
    try:
        record = record_by_id(store, Viewer("auditor", None, "cli"), record_id)
    finally:
        store.close()
    if record is None:
        raise ConfigError(f"no record {record_id} in the log (or it is restricted)")
    return record


def _lines(answer: dict[str, Any]) -> list[str]:
    i, rec, rerun = answer["inputs"], answer["recorded"], answer["rerun"]
    inputs = (
        f"inputs:   {i['sender_agency']}/{i['sender_role']} -> {i['recipient_agency']}: "
        f"{i['kind']} for {i['purpose']}, order status {i['order_status']}; justification "
        f"{i['justification_length']} chars, consent reference "
        f"{_yes(i['has_consent_reference'])}, law reference {_yes(i['has_law_reference'])}"
    )
    recorded = ", ".join(rec["policy_ids"]) or "(none)"
    lines = [
        f"record {answer['record_id']}, decided by policy bundle {answer['policy_version']}",
        inputs,
        f"recorded: {rec['outcome']} by {recorded}: {rec['reason']}",
        f"re-run:   {rerun['outcome']} by {', '.join(rerun['policy_ids'])}: {rerun['reason']}",
        *(f"          {pid}: {where}" for pid, where in rerun["where"].items()),
    ]
    if answer["same"]:
        lines.append("same: the re-run gives the recorded outcome, policies and reason")
    else:
        lines += [f"DIFFERS: {difference}" for difference in answer["differences"]]
    return lines


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
