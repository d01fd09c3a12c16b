"""`s284`: run the broker, send and read messages, run the demo and the benchmark.

Exit codes and error lines are mapped in one place: broker/cli/errors.py.

Over the ~400-line norm: `up`, `gateway`, `provision`, `send`, `inbox` and `demo` with
their options and help text; the next split is send/inbox into their own module.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Coroutine
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from broker import logs
from broker.cli.accounting import accounting_cmd
from broker.cli.agency import agency
from broker.cli.api import api
from broker.cli.audit import audit
from broker.cli.clients import open_client, open_client_waiting
from broker.cli.directory import directory
from broker.cli.errors import run_guarded
from broker.cli.explain import explain
from broker.cli.guards import restore_guards
from broker.cli.lab import lab
from broker.cli.policy import policy
from broker.cli.provider import provider
from broker.cli.requests import psa
from broker.cli.routing import csp, routing
from broker.cli.signer import signer
from broker.cli.stats import stats
from broker.cli.token import token
from broker.cli.witness import witness
from broker.errors import ConfigError
from broker.gateway.tuning import run_server
from broker.home import AgencyHome, Home
from broker.runtime import Started, run_embedded, run_gateway
from broker.runtime import provision as run_provision
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import (
    OFFENDER_PATTERN,
    Agency,
    Kind,
    OrderStatus,
    Purpose,
    Sender,
    Topic,
)
from broker.wire.routes import because

AGENCIES = [a.value for a in Agency]
_BACKGROUND: set[asyncio.Task[None]] = set()
HOME_HELP = "Deployment home (keys, NATS config, audit.db). Env: S284_HOME."


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    return asyncio.run(coro) or 0


def _settings(home: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        values["home"] = home
    return Settings(**values)


home_option = click.option(
    "--home", type=click.Path(path_type=Path), envvar="S284_HOME", default=None, help=HOME_HELP
)
agency_home_option = click.option(
    "--agency-home",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="A real agency's own home (`s284 agency init`): its keys and connection; "
    "replaces --as and --home.",
)


def _agency_of(agency: str | None, agency_home: Path | None) -> str:
    if agency_home is not None:
        return AgencyHome(agency_home).agency
    if agency is None:
        raise click.UsageError("give --as AGENCY (embedded) or --agency-home DIR")
    return agency


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
)
@click.version_option(package_name="s284-broker", prog_name="s284")
def cli(log_level: str) -> None:
    """s284-broker: secure information sharing under s 284 of the Serious Offenders Act 2018.

    \b
    Quick start (embedded: nats-server, gateway, API and SQLite on this machine):
      s284 up                      start everything in ./var/s284
      s284 send --as corrections --kind risk.update --purpose offender_management \\
                --offender S284-000123 --to police --payload update.json
      s284 inbox --as police       read what was delivered to Police
      s284 demo                    run the scripted multi-agency scenario
    """
    logs.configure(log_level)


@cli.command()
@home_option
@click.option(
    "--http-port", type=click.IntRange(1, 65535), default=None, help="HTTP API port (default 8284)."
)
@click.option(
    "--nats-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Embedded NATS port, used when the home is first created (default 4284).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Once up, run the demo scenario, then the four agency adapters on synthetic data.",
)
def up(home: Path | None, http_port: int | None, nats_port: int | None, demo: bool) -> None:
    """Start the embedded broker: nats-server, policy gateway and HTTP API, on loopback.

    On first start it creates the home: the gateway's keys, the signed key directory and
    its key, a local TLS CA, the NATS config with one account per agency, and the SQLite
    audit database; for the demo, four agency homes beside it (<home>.agencies/<agency>),
    each holding only its own agency's private keys, admitted to the directory from their
    requests; then it provisions the streams with the admin identity.
    Stop with Ctrl-C (or SIGTERM): everything, nats-server included, shuts down.
    """
    settings = _settings(home, http_port=http_port, nats_port=nats_port)
    _check_home_agrees(settings.home, nats_port)

    def announce(started: Started) -> None:
        click.echo(f"s284 broker up (home {started.home.path.resolve()})")
        click.echo(f"  NATS        {started.nats_url}  (config {started.home.nats_conf})")
        click.echo(f"  TLS CA      {started.home.tls_files.ca}")
        click.echo(f"  HTTP API    {started.http_url}  (/healthz, /readyz, /docs)")
        click.echo(f"  audit API   {started.http_url}/api/v1/audit  (token: s284 token --help)")
        click.echo(f"  web inbox   {started.http_url}/inbox  (designated contacts)")
        click.echo(f"  audit log   {started.database_url}  (check: s284 audit verify)")
        click.echo(f"  keys        {started.home.path / 'keys'}  (directory: s284 directory show)")
        click.echo(f"  agencies    {started.home.agencies_path}  (each agency's own keys)")
        click.echo("Press Ctrl-C to stop.")
        if demo:
            from broker.demo import play_all  # noqa: PLC0415 - only when asked

            async def both(home: Path) -> None:
                await play_all(home)

            task = asyncio.get_running_loop().create_task(both(started.home.path))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    sys.exit(run_server(run_embedded(settings, announce)) or 0)


def _check_home_agrees(home_path: Path, nats_port: int | None) -> None:
    """A flag that disagrees with how the home was made is an error, not silently ignored."""
    home = Home(home_path)
    if nats_port is None or not home.exists:
        return
    made_with = urlsplit(home.nats_url).port
    if made_with != nats_port:
        raise ConfigError(
            f"the home {home_path} was created with NATS port {made_with}, not {nats_port}: "
            f"drop --nats-port, or start a new home with --home NEW_DIR (delete {home_path} "
            "only if nothing in it is needed)"
        )


@cli.command()
@home_option
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve /metrics, /healthz and /readyz on this port (env S284_METRICS_PORT; bind "
    "address S284_METRICS_HOST, default 127.0.0.1).",
)
@click.option(
    "--inbox-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve the designated contacts' web inbox (/inbox) and alert API (/api/v1/alerts) "
    "on this port, beside the alert flow that acts on them (env S284_INBOX_PORT; bind "
    "address S284_INBOX_HOST, default 127.0.0.1; HTTPS off loopback: S284_TLS_CERT/KEY).",
)
def gateway(home: Path | None, metrics_port: int | None, inbox_port: int | None) -> None:
    """Run one policy gateway worker against an existing deployment (NATS already running,
    streams provisioned: see `s284 provision`). It never reads the admin credentials.

    \b
    s284 gateway --home /var/lib/s284 --metrics-port 9284 --inbox-port 8285
    """
    settings = _settings(home, metrics_port=metrics_port, inbox_port=inbox_port)
    sys.exit(run_server(run_gateway(settings)) or 0)


def _offender_ref(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not re.fullmatch(OFFENDER_PATTERN, value):
        raise click.BadParameter(
            f"{value!r} is not an offender reference: use the register's id, e.g. S284-000123 "
            "(capitals, digits and hyphens, 3-32 characters; never a person's name)"
        )
    return value


@cli.command()
@home_option
def provision(home: Path | None) -> None:
    """Create or update the JetStream streams and consumers with the admin identity
    (<home>/nats/admin/admin.json). Run it once per deployment, and after an upgrade."""
    _run(run_provision(_settings(home)))
    click.echo("streams and consumers provisioned")


def _read_payload(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise click.BadParameter(f"cannot read {source}: {why}", param_hint="--payload") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--payload is not JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(payload, dict):
        raise click.UsageError("--payload must be a JSON object")
    return payload


@cli.command()
@home_option
@agency_home_option
@click.option("--as", "agency", type=click.Choice(AGENCIES), help="Sending agency (embedded).")
@click.option("--kind", required=True, type=click.Choice([k.value for k in Kind]))
@click.option(
    "--purpose",
    required=True,
    type=click.Choice([p.value for p in Purpose]),
    help="The s 284 ground for this disclosure.",
)
@click.option(
    "--offender",
    required=True,
    callback=_offender_ref,
    help="Offender reference, e.g. S284-000123 (capitals, digits, hyphens; never a name).",
)
@click.option(
    "--to",
    "recipients",
    required=True,
    multiple=True,
    type=click.Choice(AGENCIES),
    help="Recipient agency; repeat for several.",
)
@click.option("--payload", "payload_src", required=True, help="JSON file, or - for stdin.")
@click.option("--justification", default=None, help="Reasonable grounds (risk_reduction).")
@click.option("--consent-reference", default=None, help="Consent record reference (consent).")
@click.option(
    "--law-reference", default=None, help="Citation of the other law (authorised_by_law)."
)
@click.option(
    "--order-status",
    default="none",
    show_default=True,
    type=click.Choice([s.value for s in OrderStatus]),
    help="The offender's order (csp_preparation/csp_service_delivery need one).",
)
@click.option(
    "--topic",
    default=None,
    type=click.Choice([t.value for t in Topic]),
    help="What a risk.alert or needs.notification is about; picks the designated contact.",
)
@click.option(
    "--restricted",
    is_flag=True,
    help="Covert or sensitive: only the involved agencies' privacy officers see the record.",
)
@click.option(
    "--in-reply-to", default=None, help="The id of the notice or request an info.response answers."
)
@click.option("--person", default="cli-user", show_default=True, help="Sender's staff id.")
@click.option("--role", default="case_manager", show_default=True, help="Sender's role.")
@click.option("--unit", default="hq", show_default=True, help="Sender's unit.")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for a receipt.")
def send(
    home: Path | None,
    agency_home: Path | None,
    agency: str | None,
    kind: str,
    purpose: str,
    offender: str,
    recipients: tuple[str, ...],
    payload_src: str,
    justification: str | None,
    consent_reference: str | None,
    law_reference: str | None,
    order_status: str,
    topic: str | None,
    restricted: bool,
    in_reply_to: str | None,
    person: str,
    role: str,
    unit: str,
    timeout: float,
) -> None:
    """Seal and send one message as an agency system would; print the gateway's receipt.

    Exit 0 when accepted, 3 when refused (the receipt names the reason code), 1 otherwise.
    """
    payload = _read_payload(payload_src)
    settings = _settings(home)
    name = _agency_of(agency, agency_home)

    async def go() -> int:
        sender = Sender(agency=Agency(name), unit=unit, person_id=person, role=role)
        async with await open_client(settings, name, agency_home, sender) as client:
            receipt = await client.send(
                kind=kind,
                purpose=purpose,
                offender=offender,
                to=list(recipients),
                payload=payload,
                timeout=timeout,
                justification=justification,
                consent_reference=consent_reference,
                law_reference=law_reference,
                order_status=order_status,
                restricted=restricted,
                topic=topic,
                in_reply_to=in_reply_to,
            )
        click.echo(receipt.model_dump_json(indent=2, exclude_none=True))
        return 0 if receipt.accepted else 3

    sys.exit(_run(go()))


@cli.command()
@home_option
@agency_home_option
@click.option("--as", "agency", type=click.Choice(AGENCIES), help="Receiving agency (embedded).")
@click.option("--follow", is_flag=True, help="Keep waiting for new messages (Ctrl-C to stop).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--alerts", "box", flag_value="alerts", help="Routed alerts for the designated contacts."
)
@click.option(
    "--notices",
    "box",
    flag_value="notices",
    help="What the broker reports on your alerts: acknowledged, escalated, replies.",
)
def inbox(
    home: Path | None,
    agency_home: Path | None,
    agency: str | None,
    follow: bool,
    as_json: bool,
    box: str | None,
) -> None:
    """Print the messages delivered to an agency, verified and decrypted, and acknowledge them.

    With --alerts: routed alerts (risk.alert, needs.notification), each naming the designated
    contact (or `duty`) it is for. With --notices: the broker's signed notices about alerts
    this agency sent (acknowledged, escalated, the contact's reply) and CSP review reminders.
    """
    settings = _settings(home)
    name = _agency_of(agency, agency_home)

    async def go() -> int:
        count = 0
        opening = open_client_waiting if follow else open_client
        async with await opening(settings, name, agency_home) as client:
            async for record in _records(client, box, follow):
                count += 1
                click.echo(json.dumps(record) if as_json else _DESCRIBE[box](record))
        if not as_json:
            one, many = _NOUNS[box]
            click.echo(f"{count} {one if count == 1 else many} for {name}.", err=True)
        return 0

    sys.exit(_run(go()))


_NOUNS = {
    None: ("message", "messages"),
    "alerts": ("alert", "alerts"),
    "notices": ("notice", "notices"),
}


async def _records(
    client: AgencyClient, box: str | None, follow: bool
) -> AsyncIterator[dict[str, Any]]:
    if box == "notices":
        async for notice in client.notices(follow=follow):
            yield notice.model_dump(mode="json", exclude_none=True)
        return
    items = client.alerts(follow=follow) if box == "alerts" else client.inbox(follow=follow)
    async for item in items:
        env = item.envelope
        yield {
            "delivery_id": item.delivery_id,
            "message_id": env.id,
            "from": env.sender.model_dump(),
            "kind": env.kind.value,
            "purpose": env.purpose.value,
            "offender": env.offender,
            "created_at": env.created_at.isoformat(),
            "payload": item.payload,
            "withheld": item.withheld,
            **({"contact": item.contact} if item.contact else {}),
            **({"route_reason": item.route_reason} if item.route_reason else {}),
        }


def _describe_notice(record: dict[str, Any]) -> str:
    """A notice as text, like the other inbox modes (`--json` gives the JSON line)."""
    fields = {k: v for k, v in record.items() if k not in {"event", "at"}}
    lines = [f"--- {record['event']}  {record['at']}"]
    lines += [f"{key:<9}{value}" for key, value in fields.items()]
    return "\n".join(lines)


def _describe(record: dict[str, Any]) -> str:
    sender = record["from"]
    why = f", because {because(record['route_reason'])}" if "route_reason" in record else ""
    contact = f"for      {record.get('contact')} (designated contact){why}\n"
    contact = contact if "contact" in record else ""
    return (
        f"--- {record['message_id']}  {record['created_at']}\n"
        f"{contact}"
        f"from     {sender['agency']} / {sender['unit']} / {sender['person_id']}"
        f" ({sender['role']})\n"
        f"kind     {record['kind']}   purpose {record['purpose']}   offender {record['offender']}\n"
        f"payload  {json.dumps(record['payload'], indent=2)}"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(as_json: bool) -> None:
    """Run the scripted multi-agency scenario on a fresh embedded deployment (temporary home).

    Exits 0 only if every expectation held.
    """
    from broker.demo.scenario import run_demo  # noqa: PLC0415 - keeps `s284 --help` fast

    sys.exit(_run(run_demo(as_json)))


cli.add_command(policy)
audit.add_command(restore_guards)
cli.add_command(audit)
audit.add_command(accounting_cmd)
cli.add_command(token)
cli.add_command(routing)
cli.add_command(csp)
cli.add_command(psa)
cli.add_command(agency)
cli.add_command(directory)
cli.add_command(provider)
cli.add_command(witness)
cli.add_command(signer)
cli.add_command(stats)
audit.add_command(explain)
cli.add_command(api)
cli.add_command(lab)


def _add_plugin_commands() -> None:
    """Subcommands from packages broker may not import (`s284 adapter`, `s284 bench`)."""
    for entry in entry_points(group="s284.commands"):
        if entry.name not in cli.commands:
            cli.add_command(entry.load(), entry.name)


_add_plugin_commands()


_DESCRIBE = {None: _describe, "alerts": _describe, "notices": _describe_notice}


def main() -> None:
    run_guarded(cli)


if __name__ == "__main__":
    main()
