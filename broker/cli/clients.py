"""The SDK client a command uses: at once, or (`--follow`) once the broker is up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker.errors import TransportError
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import Sender

_RETRY_S = 2.0


async def open_client(
    settings: Settings, agency: str, agency_home: Path | None, sender: Sender | None = None
) -> AgencyClient:
    """The agency's client; a broker that is down is a TransportError at once."""
    if agency_home is not None:
        return await AgencyClient.from_agency_home(agency_home, sender)
    return await AgencyClient.from_home(settings.home, agency, sender)


async def open_client_waiting(
    settings: Settings, agency: str, agency_home: Path | None
) -> AgencyClient:
    """For `--follow`, where waiting is the point: say once that the broker is not up,
    then retry quietly until it is (Ctrl-C stops)."""
    told = False
    while True:
        try:
            return await open_client(settings, agency, agency_home)
        except TransportError as exc:
            if not told:
                click.echo(f"{exc} Waiting for it (Ctrl-C to stop).", err=True)
                told = True
        await asyncio.sleep(_RETRY_S)
