"""`s284 policy`: check, explain and diff s 284 policy bundles.

Exit codes: 0 success (explain: permitted), 3 explain: refused, 1 an invalid bundle or a
failed check (a one-line message naming the file and line, or the field), 2 usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from policies import (
    Change,
    Decision,
    PolicyBundleError,
    PolicyRequest,
    check_bundle,
    diff,
    load_bundle,
)

REFUSED = 3
_BUNDLE_DIR = click.Path(path_type=Path, file_okay=False, exists=True)


@click.group()
def policy() -> None:
    """Check, explain and diff the s 284 policy bundle (policies/README.md).

    A bundle is a directory of Cedar policies, their schema, the relevant-persons and
    minimisation tables, and decision tables in tests/. Without DIR, the bundle shipped
    with the broker.
    """


@policy.command()
@click.argument("bundle", required=False, type=_BUNDLE_DIR)
def check(bundle: Path | None) -> None:
    """Validate a bundle against its schema and run its decision tables (CI runs this).

    Exit 0 when every table row holds and every policy is tested, 1 otherwise.
    """
    try:
        report = check_bundle(bundle)
    except PolicyBundleError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)
    sys.exit(0 if report.ok else 1)


@policy.command()
@click.argument("request_file", metavar="REQUEST.json", type=click.File("r", encoding="utf-8"))
@click.option("--bundle", type=_BUNDLE_DIR, default=None, help="Bundle directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def explain(request_file: Any, bundle: Path | None, as_json: bool) -> None:
    """Decide one request in the documented form (policies/README.md); - reads stdin.

    Prints the decision, the policies that determined it and the reason. Exit 0 when
    permitted, 3 when refused.
    """
    data = _read_json(request_file)
    try:
        engine = load_bundle(bundle)
        decision = engine.explain(data)
    except PolicyBundleError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({**decision.as_dict(), "bundle": engine.version}, indent=2))
    else:
        click.echo(
            f"decision  {decision.outcome}{' (default deny)' if decision.default_deny else ''}"
        )
        for policy_id in decision.policy_ids:
            click.echo(f"policy    {policy_id}  ({engine.where(policy_id)})")
        click.echo(f"reason    {decision.reason}")
        if decision.review_required:
            click.echo("review    required: the disclosure is flagged for privacy review")
        click.echo(f"bundle    {engine.version}  ({engine.path})")
    sys.exit(0 if decision.allowed else REFUSED)


def _read_json(source: Any) -> object:
    try:
        return json.loads(source.read())
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"REQUEST.json is not JSON: line {exc.lineno}: {exc.msg}") from None


@policy.command(name="diff")
@click.argument("old", type=_BUNDLE_DIR)
@click.argument("new", type=_BUNDLE_DIR)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per changed request.")
def diff_command(old: Path, new: Path, as_json: bool) -> None:
    """Every request whose decision differs between the OLD and NEW bundle directories.

    The request space is finite (agencies, roles, recipients, kinds, purposes, order
    statuses, and the presence of a justification, consent or law reference), so the list
    is complete: the artefact a privacy officer signs off before a policy change.
    """
    try:
        changes = diff(old, new)
    except PolicyBundleError as exc:
        raise click.ClickException(str(exc)) from None
    for change in changes:
        click.echo(json.dumps(_change_json(change)) if as_json else _change_line(change))
    click.echo(f"{len(changes)} request(s) change decision from {old} to {new}.", err=as_json)


def _change_line(change: Change) -> str:
    return f"{_request_text(change.request)}:  {_outcome(change.old)}  ->  {_outcome(change.new)}"


def _request_text(r: PolicyRequest) -> str:
    given = [
        f"justification={len(r.justification or '')}",
        f"consent={'yes' if r.consent_reference else 'no'}",
        f"law={'yes' if r.law_reference else 'no'}",
    ]
    return (
        f"{r.sender_agency}/{r.sender_role} -> {r.recipient_agency}  {r.kind}  {r.purpose}  "
        f"order={r.order_status}  {' '.join(given)}"
    )


def _outcome(decision: Decision) -> str:
    review = " (review)" if decision.review_required else ""
    return f"{decision.outcome}{review} [{', '.join(decision.policy_ids)}]"


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "request": change.request.as_dict(),
        "old": change.old.as_dict(),
        "new": change.new.as_dict(),
    }
