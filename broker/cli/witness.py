"""`s284 witness ...`: run a witness of the disclosure log (an agency, on its own machine),
and register witnesses and the quorum (the broker's operator).

\b
Agency:    s284 witness init DIR --name witness.police.example/w1 --log-key audit-log.vkey
           s284 witness run DIR --api https://broker:8284   (token in S284_WITNESS_TOKEN)
Operator:  s284 witness register 'witness.police.example/w1+1a2b3c4d+BA...'
           s284 witness quorum 2 --within 10
           s284 witness status
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import httpx

from audit import AuditError, AuditStore, WitnessKey, WitnessPolicy, quorum_overdue, witness_status
from broker.cli.audit import database_url
from broker.errors import ConfigError
from broker.settings import Settings
from broker.witness import WitnessHome, load_policy, policy_path, save_policy, witness_once

HOME_HELP = "The broker's deployment home (holds witnesses.json). Env: S284_HOME."


def _text_or_file(value: str) -> str:
    path = Path(value)
    return path.read_text().strip() if path.is_file() else value.strip()


def _broker_home(home: Path | None) -> Path:
    path = home if home is not None else Settings().home
    if not path.is_dir():
        raise ConfigError(f"no deployment home at {path}; pass --home DIR")
    return path


@click.group()
def witness() -> None:
    """Witnesses cosign the log's checkpoints (C2SP tlog-witness), so nobody holding the
    broker's host can truncate or rewrite the log unseen."""


@witness.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--name", required=True, help="The witness's key name, e.g. witness.police.example/w1"
)
@click.option("--log-key", required=True, help="The log's verifier key (text or a file).")
def init(directory: Path, name: str, log_key: str) -> None:
    """Create a witness: its own Ed25519 key (0600) and empty state; print the public key
    (a vkey of type 0x04) for the broker's operator to register."""
    home = WitnessHome.create(directory, name, _text_or_file(log_key))
    click.echo(home.signer().public.vkey)


@witness.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--api", required=True, help="The broker's HTTP API, e.g. https://broker:8284")
@click.option(
    "--token",
    envvar="S284_WITNESS_TOKEN",
    required=True,
    help="Bearer token. Env: S284_WITNESS_TOKEN.",
)
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="CA to verify the API.")
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--every", default=30.0, show_default=True, help="Seconds between rounds.")
def run(directory: Path, api: str, token: str, ca: str | None, once: bool, every: float) -> None:
    """Fetch each new checkpoint and its consistency proof, check, cosign, hand it back.

    Exit 1 with the reason when the log's checkpoint does not extend the one this witness
    cosigned (a truncated or rewritten log): the witness's state is left as it was.
    """
    home = WitnessHome(directory)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, verify=ca or True, timeout=30) as http:
        while True:
            try:
                outcome = witness_once(home, http)
            except AuditError as exc:
                raise ConfigError(f"witness refused the log's checkpoint: {exc}") from None
            word = "cosigned" if outcome.cosigned else "nothing new at"
            click.echo(f"{word} size {outcome.size}")
            if once:
                return
            time.sleep(every)


@witness.command()
@click.argument("vkey")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
def register(vkey: str, home: Path | None) -> None:
    """Register a witness's public key (text or a file) with this broker."""
    path = policy_path(_broker_home(home))
    held = load_policy(path)
    try:
        key = WitnessKey.parse(_text_or_file(vkey))
    except AuditError as exc:
        raise ConfigError(str(exc)) from None
    if held.key(key.name) is not None:
        raise ConfigError(f"a witness named {key.name} is already registered")
    keys = (*held.witnesses, key)
    save_policy(path, WitnessPolicy(keys, held.quorum, held.within_s))
    click.echo(f"registered {key.name} ({len(keys)} witness(es), quorum {held.quorum})")


@witness.command()
@click.argument("count", type=click.IntRange(min=0))
@click.option("--within", default=10.0, show_default=True, help="Minutes a checkpoint may wait.")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
def quorum(count: int, within: float, home: Path | None) -> None:
    """COUNT registered witnesses must cosign each checkpoint within --within minutes, or
    the gateway logs `witness_quorum_missed` (an operator alert)."""
    path = policy_path(_broker_home(home))
    held = load_policy(path)
    if count > len(held.witnesses):
        raise ConfigError(
            f"quorum {count} exceeds the {len(held.witnesses)} registered witness(es)"
        )
    save_policy(path, WitnessPolicy(held.witnesses, count, within * 60))
    click.echo(f"quorum {count} of {len(held.witnesses)} within {within:g} minute(s)")


@witness.command()
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(home: Path | None, db: str | None, as_json: bool) -> None:
    """Each witness's largest cosigned size and the age of its newest cosignature."""
    path = _broker_home(home)
    held = load_policy(policy_path(path))
    store = AuditStore.open(database_url(path, db))
    try:
        rows = witness_status(store, held)
        late = quorum_overdue(store, held)
    finally:
        store.close()
    if as_json:
        out = [{"witness": r.witness, "size": r.size, "age_s": r.age_s} for r in rows]
        click.echo(json.dumps({"witnesses": out, "overdue_size": late.size if late else None}))
        return
    for r in rows:
        age = "never" if r.age_s is None else f"{r.age_s:.0f} s ago"
        click.echo(f"{r.witness}  cosigned size {r.size}  ({age})")
    if late is not None:
        click.echo(
            f"quorum missed: checkpoint {late.size} has {late.cosigned_by} of "
            f"{late.quorum} cosignatures after {late.waited_s:.0f} s"
        )
