"""The lab's OS processes: each started with its own log file, stopped with SIGTERM (then
SIGKILL if it lingers), or killed with SIGKILL when a fault test asks for a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog

from broker.errors import ConfigError

log = structlog.get_logger("s284.lab")


def s284_command(*args: str) -> list[str]:
    """The real CLI, from this Python: what an operator would run."""
    return [sys.executable, "-m", "broker.cli", *args]


@dataclass
class Proc:
    """One child process the lab owns; `start` again after a stop or a kill."""

    name: str
    argv: list[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    _proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )
        log.info("lab_process_started", name=self.name, pid=self._proc.pid)

    async def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or closed."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGKILL)
            await self._proc.wait()

    async def stop(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.returncode is not None:
            raise ConfigError(f"{self.name} exited ({self._proc.returncode}); see {self.log_file}")


async def wait_http_ok(url: str, proc: Proc, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    """Until `url` answers 200 (a node's /healthz, the API's /readyz)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=1.0) as client:
        while loop.time() < deadline:
            proc.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:  # noqa: PLR2004 - HTTP OK
                    return
            await asyncio.sleep(0.2)
    raise ConfigError(f"{proc.name} not ready at {url} within {timeout:.0f} s; see {proc.log_file}")
