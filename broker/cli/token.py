"""`s284 token`: issue a bearer token for the audit API from the home's local issuer.

The token is printed on the last line of stdout, alone, so scripts can take it with
`tail -n 1`; a line saying who it is for goes to stderr. Exit codes: 0 issued, 2 usage
error (a privacy officer or contact without --agency, a ttl out of range).
"""

from __future__ import annotations

from pathlib import Path

import click

from broker.auth import AGENCY_ROLES, MAX_TTL_S, AuthConfig, LocalIssuer, Role
from broker.home import Home
from broker.settings import Settings
from broker.wire.envelope import Agency


@click.command()
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="S284_HOME",
    default=None,
    help="Deployment home whose local token issuer signs (default ./var/s284). Env: S284_HOME.",
)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--agency",
    type=click.Choice([a.value for a in Agency]),
    default=None,
    help="The caller's agency; required for privacy_officer and contact.",
)
@click.option("--subject", required=True, help='Who the token is for, e.g. "A. Officer".')
@click.option(
    "--ttl",
    type=click.IntRange(1, MAX_TTL_S),
    default=3600,
    show_default=True,
    help="Seconds until the token expires.",
)
def token(home: Path | None, role: str, agency: str | None, subject: str, ttl: int) -> None:
    """Print a bearer token for the audit API (/api/v1/audit), signed by the local issuer.

    \b
    Example:
      s284 token --role privacy_officer --agency health --subject "A. Officer"
    """
    chosen = Role(role)
    if chosen in AGENCY_ROLES and agency is None:
        raise click.UsageError(f"--agency is required for the {role} role")
    if not subject.strip():
        raise click.UsageError("--subject must name someone")
    home_path = home or Settings().home
    Home(home_path).require()  # a mistyped --home would mint a token no API accepts
    config = AuthConfig.from_env_and_home(home_path)
    issuer = LocalIssuer.for_home(home_path)
    if config.jwks != str(issuer.public_path):
        click.echo(
            "warning: S284_AUTH_JWKS points elsewhere; the API will not accept this token",
            err=True,
        )
    issued = issuer.issue(config, subject.strip(), chosen, agency, ttl)
    who = f"{role}" + (f" of {agency}" if agency else "")
    click.echo(f"token for {subject.strip()} ({who}), valid {ttl} s:", err=True)
    click.echo(issued)
