"""`s284 agency`: an agency's own keys, run on the agency's side, never the broker's.

`init` creates the agency home (keys 0600 in a 0700 folder) and a registration request
holding only public keys, signed by the new signing key; `rotate` adds a new key
generation (the old one keeps decrypting); `trust` records what the broker's operator
hands over: the NATS URL, the agency's NATS credentials and the directory public key.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import SecretStr

from broker.errors import ConfigError
from broker.home import AgencyHome, read_request
from broker.nats.config import Credentials
from broker.wire.envelope import Agency

DIR_HELP = "The agency home: where this agency's private keys live (on its own machine)."


def _report(request_path: Path) -> None:
    reg = read_request(request_path)  # the same check the operator's `directory add` runs
    click.echo(f"registration request: {request_path}")
    click.echo(f"  signing key     {reg.sig.kid}")
    click.echo(f"  encryption key  {reg.enc.kid}")
    click.echo("Send the request (public keys only) to the broker's operator.")


@click.group()
def agency() -> None:
    """An agency's own keys: create, rotate, connect (run on the agency's side)."""


@agency.command()
@click.option("--agency", "name", required=True, type=click.Choice([a.value for a in Agency]))
@click.option("--dir", "path", required=True, type=click.Path(path_type=Path), help=DIR_HELP)
def init(name: str, path: Path) -> None:
    """Create this agency's signing and encryption keys in DIR and a registration request."""
    _, request = AgencyHome.create(path, name)
    _report(request)


@agency.command()
@click.option("--dir", "path", required=True, type=click.Path(path_type=Path), help=DIR_HELP)
def rotate(path: Path) -> None:
    """Create new keys beside the current ones and a registration request for them; the
    operator admits it with `s284 directory rotate`, the SDK then signs with the new key."""
    _report(AgencyHome(path).rotate())


@agency.command()
@click.option("--dir", "path", required=True, type=click.Path(path_type=Path), help=DIR_HELP)
@click.option("--nats-url", required=True, help="The broker's NATS URL.")
@click.option(
    "--creds",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help='This agency\'s NATS credentials: JSON {"user": ..., "password": ...}.',
)
@click.option(
    "--ca",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="The CA (PEM) the broker's TLS listener is verified against, from the operator.",
)
@click.option(
    "--cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="With mutual TLS: this agency's client certificate (PEM); --key its private key.",
)
@click.option("--key", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None)
@click.option(
    "--directory-key",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The directory public key (JWK) from the operator, checked out of band.",
)
def trust(
    path: Path,
    nats_url: str,
    creds: Path,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    directory_key: Path,
) -> None:
    """Record how this agency reaches the broker (copying the CA and any client certificate
    into the agency home), and pin the directory key."""
    try:
        data = json.loads(creds.read_text())
        pinned = json.loads(directory_key.read_text())
        credentials = Credentials(data["user"], SecretStr(data["password"]), ca, cert, key)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"unreadable --creds or --directory-key ({exc.__class__.__name__})"
        ) from None
    AgencyHome(path).trust(nats_url, credentials, pinned)
    click.echo(f"{path}: connects to {nats_url}, directory key {pinned.get('kid')} pinned")
