"""The gateway keeps the key directory it holds current, and publishes each version.

The operator's `s284 directory add|rotate|revoke` writes a new signed version into the
home; within a second every running gateway verifies it against the directory key,
adopts it (a lower version or a bad signature is logged and the held one kept) and
publishes it on `s284.directory` (stream S284_DIRECTORY, `Nats-Msg-Id`
`directory-v<version>`, so several gateways publishing it store it once).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from broker.errors import BrokerError, DirectoryError
from broker.home import Home
from broker.nats.config import DIRECTORY_SUBJECT
from broker.nats.transport import Transport
from broker.wire.directory import offer
from broker.wire.keys import DirectoryHolder

log = structlog.get_logger("s284.directory")


def held_directory(home: Home) -> DirectoryHolder:
    """The home's current directory, verified, in a holder that later versions replace."""
    signed = home.signed_directory()
    return DirectoryHolder(home.directory_verifier().verify(signed), signed)


async def publish_directory(conn: Transport, holder: DirectoryHolder) -> None:
    await conn.publish(DIRECTORY_SUBJECT, holder.signed, f"directory-v{holder.version}")
    log.info("directory_published", version=holder.version)


def refresh_from_home(home: Home, holder: DirectoryHolder) -> bool:
    """Adopt the home's directory if it is a newer, correctly signed version."""
    try:
        if not offer(holder, home.directory_verifier(), home.signed_directory()):
            return False
    except DirectoryError as exc:
        log.warning("directory_refused", held=holder.version, reason=str(exc))
        return False
    log.info("directory_adopted", version=holder.version)
    return True


async def keep_directory(
    home: Home, holder: DirectoryHolder, conn: Transport, stop: asyncio.Event, every: float = 1.0
) -> None:
    """Publish the held version, then follow the home's until `stop`."""
    published = False
    while not stop.is_set():
        try:
            if refresh_from_home(home, holder) or not published:
                await publish_directory(conn, holder)
                published = True
        except BrokerError as exc:  # NATS down, file unreadable: try again next round
            log.warning("directory_not_published", reason=str(exc)[:200])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
