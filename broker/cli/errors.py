"""The CLI's one error boundary: every error becomes one line on stderr and an exit code.

Exit codes, here and nowhere else: 0 success / accepted, 1 an error (the line says what
is wrong and what to do), 2 a usage error, 3 refused (by the gateway or the policy),
4 the disclosure log does not verify (or a logged decision does not re-run the same), 130
interrupted. A user never sees a traceback;
`--log-level DEBUG` adds it for a developer.
"""

from __future__ import annotations

import sys
import traceback

import click
from pydantic import ValidationError

from audit import AuditError
from broker import logs
from broker.errors import BrokerError
from policies import PolicyBundleError
from routing import RoutingError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _validation_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "value"
    return f"{where}: {first.get('msg', 'invalid')}"


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, the one line a user sees) for any error that reaches the boundary."""
    if isinstance(exc, BrokerError):
        return exc.exit_code, f"error: {exc}"
    if isinstance(exc, AuditError | RoutingError | PolicyBundleError):
        return EXIT_ERROR, f"error: {exc}"
    if isinstance(exc, ValidationError):
        return EXIT_USAGE, f"error: invalid input: {_validation_line(exc)}"
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return EXIT_ERROR, f"error: {exc.strerror}: {exc.filename}"
    if isinstance(exc, OSError):
        return EXIT_ERROR, f"error: {exc.__class__.__name__}: {exc.strerror or exc}"
    return EXIT_ERROR, (
        f"internal error ({exc.__class__.__name__}); nothing sent was lost. "
        "Rerun with --log-level DEBUG for details and report it."
    )


def run_guarded(cli: click.Group) -> None:
    """Run the click group; map whatever escapes to one line and an exit code."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback reaches a user
        code, line = describe(exc)
        click.echo(line, err=True)
        if logs.is_debug():
            traceback.print_exception(exc)
        sys.exit(code)
