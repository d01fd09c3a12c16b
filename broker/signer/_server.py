"""`s284 signer`: serve `SignerCore` on a Unix socket (0600), one JSON line each way.

A Unix socket, not loopback TCP: who may ask for a signature is decided by file
permissions on the socket, with no shared token to leak; nothing is reachable off the host.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import structlog

from audit import AuditError
from broker.signer._core import SignerCore, SignerHome

log = structlog.get_logger("s284.signer")

_MAX_REQUEST = 1 << 20  # a consistency proof is at most 64 hashes


async def serve(home: SignerHome, socket_path: Path, stop: asyncio.Event) -> None:
    """Answer requests until `stop`; the socket file is removed on the way out."""
    core = SignerCore(home)
    lock = asyncio.Lock()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            async with lock:  # one signature at a time: each extends the one before
                reply = _handle(core, line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    await asyncio.to_thread(_remove, socket_path)
    server = await asyncio.start_unix_server(answer, path=str(socket_path), limit=_MAX_REQUEST)
    await asyncio.to_thread(socket_path.chmod, 0o600)  # connecting needs write permission
    log.info("signer_started", socket=str(socket_path))
    try:
        async with server:
            await stop.wait()
    finally:
        await asyncio.to_thread(_remove, socket_path)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _handle(core: SignerCore, line: bytes) -> dict[str, object]:
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            return {"error": "a request is a JSON object"}
        reply = core.handle(request)
    except ValueError:
        return {"error": "a request is one line of JSON"}
    except AuditError as exc:
        log.warning("signer_refused", reason=str(exc))
        return {"error": str(exc)}
    if "note" in reply:
        log.info("signer_signed", size=request.get("size"))
    return reply
