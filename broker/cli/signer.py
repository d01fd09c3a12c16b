"""`s284 signer`: the log signer as its own process, holding the checkpoint key.

Run it as its own user in production, with S284_SIGNER_SOCKET pointing the gateway (and
`s284 audit checkpoint`) at its socket; the embedded `s284 up` serves the same directory
in-process when no signer answers on the default socket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker.home import Home
from broker.sdk import stop_event_on_signals
from broker.settings import Settings
from broker.signer import SignerHome, serve

HOME_HELP = "The deployment home; the key is in <home>.signer/. Env: S284_HOME."


@click.command()
@click.option("--home", type=click.Path(path_type=Path), envvar="S284_HOME", help=HOME_HELP)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    envvar="S284_SIGNER_SOCKET",
    help="Unix socket to serve (default: <home>.signer/signer.sock). Env: S284_SIGNER_SOCKET.",
)
@click.option(
    "--dir",
    "signer_dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="S284_SIGNER_DIR",
    help="The signer's own folder (audit-log.private.json and its state), instead of "
    "<home>.signer/: a signer container then needs the key and nothing of the home. "
    "Needs --socket. Env: S284_SIGNER_DIR.",
)
def signer(home: Path | None, socket_path: Path | None, signer_dir: Path | None) -> None:
    """Sign the disclosure log's checkpoints for the gateway, over a Unix socket (0600).

    Signs a checkpoint only if it extends the last one signed (consistency proof), so a
    rewritten database cannot obtain a signature. Stops on SIGINT or SIGTERM.

    \b
    On the deployment's host:   s284 signer --home /var/lib/s284
    As its own container:       s284 signer --dir /var/lib/s284.signer \\
                                  --socket /run/s284-signer/signer.sock
    (the gateways then get S284_SIGNER_SOCKET=/run/s284-signer/signer.sock)
    """
    if signer_dir is not None:
        if socket_path is None:
            raise click.UsageError("--dir needs --socket (or S284_SIGNER_SOCKET)")
        signer_home = SignerHome(signer_dir)
        path = socket_path
    else:
        settings = Settings(home=home) if home is not None else Settings()
        h = Home(settings.home)
        h.require()
        signer_home = h.signer_home()
        path = socket_path or h.signer_socket(settings)
    signer_home.signer()  # a missing or unreadable key: one clear line, before serving
    click.echo(f"log signer serving {path}")

    async def main() -> None:
        await serve(signer_home, path, stop_event_on_signals())

    asyncio.run(main())
