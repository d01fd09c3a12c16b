"""`s284 directory`: the operator admits, rotates and revokes agencies' public keys.

Each change verifies the current directory, writes the next version signed with the
directory key (`<home>/keys/directory.*`), and running gateways publish it on
`s284.directory` within a second. Exit 1 with a one-line reason on a refused request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from broker.errors import RegistrationError
from broker.home import AGENCY_NAMES, Home, read_request
from broker.settings import Settings
from broker.wire import directory as keydir
from broker.wire.keys import KeyDirectory

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

home_option = click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="S284_HOME",
    default=None,
    help="The broker's home, holding the directory key. Env: S284_HOME.",
)
request_arg = click.argument("request", type=click.Path(path_type=Path, dir_okay=False))


def _overlap(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter("a duration like 7d, 12h, 30m or 0s", param_hint="--overlap")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _change(home_path: Path | None, make: Callable[[KeyDirectory, datetime], KeyDirectory]) -> None:
    home = Home(home_path or Settings().home)
    current = home.directory()
    new = make(current, datetime.now(UTC))
    home.write_directory(home.directory_key().sign(new))
    click.echo(
        f"key directory version {new.version} written to {home.directory_path}; "
        "running gateways publish it within a second"
    )


def _registration(path: Path, home: Path | None = None) -> keydir.Registration:
    """An agency's request; with `home`, also an admitted funded service's (to rotate)."""
    reg = read_request(path)
    admitted = {p.identity for p in Home(home).providers()} if home else set()
    if reg.identity not in AGENCY_NAMES and reg.identity not in admitted:
        raise RegistrationError(
            f"{reg.identity!r} is not an agency ({', '.join(AGENCY_NAMES)}) nor an admitted "
            "funded service (admit one with `s284 provider admit`)"
        )
    return reg


@click.group()
def directory() -> None:
    """The signed key directory: admit, rotate, revoke and show agencies' public keys."""


@directory.command()
@home_option
@request_arg
def add(home: Path | None, request: Path) -> None:
    """Admit an agency's keys from its registration request (`s284 agency init`)."""
    reg = _registration(request)
    _change(home, lambda cur, now: keydir.add(cur, reg, now))


@directory.command()
@home_option
@request_arg
@click.option(
    "--overlap",
    default="7d",
    show_default=True,
    help="How long the agency's old keys keep verifying (7d, 12h, 30m, 0s).",
)
def rotate(home: Path | None, request: Path, overlap: str) -> None:
    """Admit an agency's new keys (`s284 agency rotate`); its old keys verify what was
    signed before their not_after = now + overlap, then are refused (auth.key_expired)."""
    reg, window = _registration(request, home or Settings().home), _overlap(overlap)
    _change(home, lambda cur, now: keydir.rotate(cur, reg, now, window))


@directory.command()
@home_option
@click.option("--kid", default=None, help="Revoke this one key.")
@click.option(
    "--agency", default=None, type=click.Choice(AGENCY_NAMES), help="Revoke all its keys."
)
def revoke(home: Path | None, kid: str | None, agency: str | None) -> None:
    """Revoke a key at once: every message signed with it is refused (auth.key_revoked)."""
    if (kid is None) == (agency is None):
        raise click.UsageError("give exactly one of --kid or --agency")

    def change(cur: KeyDirectory, now: datetime) -> KeyDirectory:
        entry = cur.entry(kid) if kid else None
        if entry is not None and entry.identity not in AGENCY_NAMES:
            raise RegistrationError(f"key {kid} is the {entry.identity}'s, not an agency's")
        return keydir.revoke(cur, now, kid=kid, identity=agency)

    _change(home, change)


@directory.command()
@home_option
@click.option("--json", "as_json", is_flag=True, help="The verified directory document.")
def show(home: Path | None, as_json: bool) -> None:
    """Print the current directory, after verifying its signature."""
    current = Home(home or Settings().home).directory()
    if as_json:
        click.echo(json.dumps(keydir.to_document(current), indent=2))
        return
    click.echo(f"key directory version {current.version}, issued {current.issued_at.isoformat()}")
    now = datetime.now(UTC)
    for e in current.entries:
        state = e.status if e.status != "active" or e.usable_at(now) else "expired"
        until = e.not_after.isoformat() if e.not_after else "-"
        click.echo(f"  {e.identity:<12} {e.use:<4} {e.kid}  {state:<8} until {until}")
