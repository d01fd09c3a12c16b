"""`s284 audit ...`: verify the disclosure log, sign a checkpoint, expire personal fields,
list disclosures no recipient has confirmed."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from audit import (
    Announcement,
    AuditError,
    AuditStore,
    StoreUnavailableError,
    parse_verifier_key,
    signed_checkpoint,
    unconfirmed,
    verify_log,
)
from broker.errors import BrokerError, ConfigError
from broker.home import Home
from broker.ids import new_id
from broker.settings import Settings
from broker.signer import signer_running
from broker.witness import load_policy, policy_path

HOME_HELP = "Deployment home (audit.db; the log key is in <home>.signer/). Env: S284_HOME."
EXIT_TAMPERED = 4


class LogVerificationError(BrokerError):
    """`s284 audit verify` found a record or checkpoint that does not check out."""

    exit_code = EXIT_TAMPERED


def database_url(home: Path | None, db: str | None, *, may_create: bool = False) -> str:
    """--db, else the home's SQLite file. It must exist unless `may_create` (then the home
    folder must): verifying a log that is not there would only report an empty one."""
    if db is not None:
        return db
    settings = Settings(home=home) if home is not None else Settings()
    present = settings.home.is_dir() if may_create else (settings.home / "audit.db").is_file()
    if not present:
        raise ConfigError(f"no deployment database in {settings.home}; pass --home DIR or --db URL")
    return settings.database_url


def _store(home: Path | None, db: str | None) -> AuditStore:
    url = database_url(home, db)
    try:
        return AuditStore.open(url)
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(f"cannot open the audit log: {exc.__class__.__name__}") from None


def _home(home: Path | None) -> Home:
    return Home(home if home is not None else Settings().home)


@click.group()
def audit() -> None:
    """The disclosure log: verify it, sign a checkpoint, erase expired personal fields.

    \b
    s284 audit verify --home var/s284        re-hash everything, check every checkpoint
    s284 audit verify --db postgresql+psycopg://... --log-key audit-log.vkey
    s284 audit expire --before 2019-01-01 --yes
    s284 audit unconfirmed --older-than 15m   disclosures no recipient confirmed taking
    s284 audit accounting S284-000123         disclosures about one offender, confirmed or not
    """


@audit.command()
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option(
    "--log-key",
    default=None,
    help="The log's verifier key (text or a file holding it); default: the home's.",
)
@click.option(
    "--checkpoint",
    "held",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed checkpoint held elsewhere (e.g. by an agency) to check too; repeatable.",
)
@click.option(
    "--witnesses",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The witness list to trust (default: the home's witnesses.json, if any).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    home: Path | None,
    db: str | None,
    log_key: str | None,
    held: tuple[Path, ...],
    witnesses: Path | None,
    as_json: bool,
) -> None:
    """Re-hash every record, rebuild the Merkle tree, check every signed checkpoint.

    Exit 0 when the log checks out; 4 naming the first bad record or checkpoint
    (altered, missing, inserted or reordered records, a truncated log, a forged
    checkpoint, a log inconsistent with a checkpoint a registered witness cosigned);
    1 when the log cannot be read. Prints the largest size each witness cosigned.
    """
    verifier = parse_verifier_key(_vkey(home, log_key))
    policy = load_policy(witnesses or policy_path(_home(home).path))
    store = _store(home, db)
    try:
        report = verify_log(store, verifier, [p.read_text() for p in held], policy)
    finally:
        store.close()
    summary = {
        "ok": report.ok,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "root": report.root.hex(),
        "seconds": round(report.seconds, 3),
        "problem": None if report.problem is None else report.problem.__dict__,
        "witnessed": report.witnessed,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif report.ok:
        rate = report.records / report.seconds if report.seconds else 0.0
        click.echo(
            f"ok: {report.records} records and {report.checkpoints} signed checkpoints verified "
            f"in {report.seconds:.2f} s ({rate:,.0f} records/s); root {report.root.hex()}"
        )
    if not as_json:
        for name, size in report.witnessed.items():
            click.echo(f"witness {name}: largest cosigned size {size}")
    if report.problem is not None:
        problem = report.problem
        at = f"record {problem.seq}: " if problem.seq is not None else ""
        raise LogVerificationError(f"log verification FAILED: {at}{problem.code}: {problem.detail}")


def _vkey(home: Path | None, log_key: str | None) -> str:
    if log_key is None:
        return _home(home).log_vkey()
    path = Path(log_key)
    return path.read_text().strip() if path.is_file() else log_key


@audit.command(name="checkpoint")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
def checkpoint_cmd(home: Path | None) -> None:
    """Sign a checkpoint of the log as it is now (the gateway also does this on its own),
    through the log signer (served from <home>.signer/ here if none is running)."""
    h = _home(home)
    h.require()
    settings = Settings(home=h.path)
    store = _store(home, None)

    async def sign() -> Announcement | None:
        socket = h.signer_socket(settings)
        async with signer_running(h.signer_home().path, socket, embedded=True) as signer:
            return await asyncio.to_thread(signed_checkpoint, store, signer)

    try:
        store.seal_access(settings.node, new_id())  # the access log's head, covered too
        made = asyncio.run(sign())
    finally:
        store.close()
    if made is None:
        click.echo("no new records since the last checkpoint")
    else:
        click.echo(made.note, nl=False)  # verbatim: the signed note ends with its newline


@audit.command()
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option(
    "--before",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Erase personal fields of records that occurred before this date (UTC).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def expire(home: Path | None, db: str | None, before: datetime, yes: bool) -> None:
    """Erase the personal fields and salts of records past their retention period.

    Every record stays in the log with its commitment to those fields, so every proof
    and checkpoint stays valid; the erasure is itself recorded in the log.
    """
    cutoff = before.replace(tzinfo=UTC)
    if not yes:
        click.confirm(
            f"Erase personal fields of every record before {cutoff.date()}? This cannot be undone",
            abort=True,
        )
    store = _store(home, db)
    try:
        erased = store.expire(cutoff, Settings().node, new_id(), by=_operator())
    except AuditError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        store.close()
    click.echo(f"erased personal fields of {erased} record(s) before {cutoff.date()}")


def _operator() -> str:
    """Who ran the expiry, for its record: the login name (no secret), else `operator`."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGE = re.compile(r"^(\d+)([smhd])$")


def _age(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    """`15m`, `2h`, `7d`, `0s`: a clear usage error for anything else."""
    match = _AGE.match(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r}: give a number and a unit (s, m, h, d), e.g. 15m")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@audit.command(name="unconfirmed")
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option("--db", default=None, help="SQLAlchemy URL of the log (default: the home's).")
@click.option(
    "--older-than",
    "age",
    default="15m",
    show_default=True,
    callback=_age,
    help="Only disclosures at least this old (s, m, h, d), e.g. 15m.",
)
@click.option("--limit", default=1000, show_default=True, help="At most this many, oldest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of lines.")
def unconfirmed_cmd(
    home: Path | None, db: str | None, age: timedelta, limit: int, as_json: bool
) -> None:
    """Disclosures whose recipient's system has not confirmed taking them (no `received`
    record), oldest first. Exit 0 whether or not there are any; 1 if the log cannot be read.
    """
    store = _store(home, db)
    try:
        rows = unconfirmed(store, datetime.now(UTC) - age, limit)
    except StoreUnavailableError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['occurred_at']}  {row['record_id']}  {row['message_id']}  "
            f"{row['sender_agency']} -> {row['recipient_agency']}  {row['kind']}"
        )
    click.echo(f"{len(rows)} unconfirmed disclosure(s) older than {age}")
