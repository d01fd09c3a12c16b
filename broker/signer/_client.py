"""The gateway's and the CLI's side: ask the signer over its socket (a `CheckpointSigner`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

from audit import Checkpoint
from broker.errors import ConfigError
from broker.signer._core import SignerHome
from broker.signer._server import serve

log = structlog.get_logger("s284.signer")

_SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less the terminating NUL


class SignerClient:
    """Blocking client (checkpoints are made in a worker thread); one connection a request."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        if len(str(socket_path)) > _SUN_PATH_MAX:
            raise ConfigError(f"signer socket path too long for a Unix socket: {socket_path}")
        self.socket_path = socket_path
        self._timeout = timeout

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self._timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = sock.makefile("rb").readline()
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the log signer at {self.socket_path}: {exc.__class__.__name__}"
            ) from None
        data: dict[str, Any] = json.loads(reply) if reply else {"error": "no answer"}
        if "error" in data:
            raise ConfigError(f"the log signer refused: {data['error']}")
        return data

    def answers(self) -> bool:
        try:
            self.call({"op": "state"})
        except ConfigError:
            return False
        return True

    @cached_property
    def origin(self) -> str:
        return str(self.call({"op": "state"})["origin"])

    def sign_checkpoint(self, checkpoint: Checkpoint, prove: Callable[[int], list[bytes]]) -> str:
        old = int(self.call({"op": "state"})["size"])
        proof = prove(old) if 0 < old <= checkpoint.size else []
        request = {
            "op": "sign",
            "old": old,
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
            "proof": [h.hex() for h in proof],
        }
        return str(self.call(request)["note"])


@contextlib.asynccontextmanager
async def signer_running(
    signer_dir: Path, socket_path: Path, *, embedded: bool, wait_s: float = 30.0
) -> AsyncIterator[SignerClient]:
    """A client of the signer at `socket_path`. `embedded` (`s284 up`, the default socket):
    if none answers, serve the signer's directory from this process for as long as the
    context lasts, still through the socket; otherwise one that does not answer within
    `wait_s` (a sidecar still starting) is an error."""
    client = SignerClient(socket_path)
    if await asyncio.to_thread(client.answers):
        yield client
        return
    if not embedded:
        # a signer container started beside this one (a Kubernetes sidecar) may still be
        # coming up: wait for it a while before giving up
        log.info("signer_waiting", socket=str(socket_path), wait_s=wait_s)
        for _ in range(int(wait_s / 0.25)):
            await asyncio.sleep(0.25)
            if await asyncio.to_thread(client.answers):
                yield client
                return
        raise ConfigError(
            f"no log signer answers at {socket_path} (waited {wait_s:.0f} s); "
            "start `s284 signer`"
        )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(SignerHome(signer_dir), socket_path, stop))
    for _ in range(100):
        if task.done() or await asyncio.to_thread(client.answers):
            break
        await asyncio.sleep(0.02)
    if task.done():
        task.result()  # raises what stopped it (e.g. no key in the signer's directory)
    try:
        yield client
    finally:
        stop.set()
        await task
