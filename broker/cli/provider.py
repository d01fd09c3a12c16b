"""`s284 provider`: funded services as parties of their own.

`init` runs on the provider's side: it creates the provider's home (its own keys, never
the funder's) and a registration request naming its identity `<funder>/<slug>` and its
service type. `admit` runs on the broker operator's side: the keys join the signed key
directory and the provider gets its own NATS login and account. The provider then records
the connection with `s284 agency trust --dir <its home>`, as an agency does.
"""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.agency import _report
from broker.cli.directory import home_option, request_arg
from broker.funded import admit_provider
from broker.home import AgencyHome, Home
from broker.settings import Settings
from broker.wire.envelope import MAP_AGENCIES
from broker.wire.providers import ProviderId, ServiceType

_FUNDERS = [a.value for a in MAP_AGENCIES]  # the Authority funds no service
_SERVICES = [s.value for s in ServiceType]


@click.group()
def provider() -> None:
    """Funded services (housing, disability, AOD, mental health, perpetrator-intervention
    providers) as parties with their own identity under the agency that funds them.

    \b
    On the provider's machine:
      s284 provider init --funder dffh --provider hearth-housing --service housing --dir DIR
      (send DIR/registration-1.json, public keys only, to the broker's operator)
    On the broker:
      s284 provider admit --home HOME DIR/registration-1.json
      (hand back the NATS login it prints, the CA and the directory public key; reload NATS)
    On the provider's machine again:
      s284 agency trust --dir DIR --nats-url ... --creds ... --ca ... --directory-key ...

    The provider then publishes only on s284.ingress.p.<funder>.<slug> and reads only its
    own receipts: the NATS server enforces it (an account of its own), and the gateway
    refuses its key on the funder's subject and the funder's key on its subject.
    """


@provider.command()
@click.option("--funder", required=True, type=click.Choice(_FUNDERS), help="The funding agency.")
@click.option(
    "--provider",
    "slug",
    required=True,
    help="The provider's short name: 2-40 of a-z, 0-9 and '-' (e.g. hearth-housing).",
)
@click.option("--service", required=True, type=click.Choice(_SERVICES), help="Its service type.")
@click.option(
    "--dir",
    "path",
    required=True,
    type=click.Path(path_type=Path),
    help="The provider's home: where its private keys live (on its own machine).",
)
def init(funder: str, slug: str, service: str, path: Path) -> None:
    """Create a funded service's own keys in DIR and its registration request."""
    identity = ProviderId.parse(f"{funder}/{slug}").identity
    _, request = AgencyHome.create(path, identity, service)
    click.echo(f"provider {identity} ({service})")
    _report(request)


@provider.command()
@home_option
@request_arg
def admit(home: Path | None, request: Path) -> None:
    """Admit a funded service from its registration request (operator side)."""
    done = admit_provider(Home(home or Settings().home), request)
    click.echo(
        f"{done.provider.identity} ({done.service}) admitted: key directory version "
        f"{done.version}; its own NATS account {done.provider.account}"
    )
    click.echo(f"  NATS login (hand over, secret): {done.creds}")
    click.echo("  reload the NATS server (nats-server --signal reload, or restart s284 up),")
    click.echo("  then `s284 provision` creates its receipt consumer")
