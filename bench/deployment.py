"""The deployment a benchmark measures: `s284 up` in its own process (as in production, the
gateway does not share a core with the agency system), optionally with more gateway
workers (`s284 gateway` processes on the same home: they share the pull consumer) and the
per-step profile (bench/profiled.py); its CPU read from /proc, not the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procstat
from broker.errors import BrokerError
from broker.home import Home
from broker.nats.server import free_loopback_ports
from broker.runtime import Started
from broker.settings import Settings


@dataclass(frozen=True)
class CpuSnapshot:
    gateway_s: float | None  # every gateway process (the first also runs the idle API)
    nats_s: float | None
    profile: dict[str, float] = field(default_factory=dict)  # label -> CPU s (--profile)
    gateway_rss: int | None = None  # bytes, every gateway process


@dataclass(frozen=True)
class Cpu:
    """CPU spent during a phase, per message; None where /proc could not tell."""

    messages: int
    gateway_us: float | None
    nats_us: float | None
    profile_us: dict[str, float]
    rss_before: int | None = None  # the gateway processes' resident memory, bytes
    rss_after: int | None = None

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot, messages: int) -> Cpu:
        def per(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None or messages < 1 else (b - a) * 1e6 / messages

        steps = {
            label: (after.profile[label] - before.profile.get(label, 0.0)) * 1e6 / max(messages, 1)
            for label in after.profile
        }
        return cls(
            messages,
            per(before.gateway_s, after.gateway_s),
            per(before.nats_s, after.nats_s),
            steps,
            before.gateway_rss,
            after.gateway_rss,
        )


@dataclass
class Deployment:
    started: Started
    gateway_pids: list[int]
    nats_pid: int | None
    profile_dir: Path | None

    async def snapshot(self) -> CpuSnapshot:
        profile = await self._profile() if self.profile_dir is not None else {}
        gateway = procstat.total_cpu(self.gateway_pids)
        nats = procstat.cpu_seconds(self.nats_pid) if self.nats_pid else None
        return CpuSnapshot(gateway, nats, profile, procstat.rss_bytes(self.gateway_pids))

    async def _profile(self) -> dict[str, float]:
        """Ask every gateway process for its step totals (SIGUSR1) and add them up."""
        assert self.profile_dir is not None  # noqa: S101 - checked by the caller
        files = [self.profile_dir / f"{pid}.json" for pid in self.gateway_pids]
        for path in files:
            path.unlink(missing_ok=True)
        for pid in self.gateway_pids:
            os.kill(pid, signal.SIGUSR1)
        for _ in range(200):
            if all(p.exists() for p in files):
                break
            await asyncio.sleep(0.025)
        totals: dict[str, float] = {}
        for path in files:
            with contextlib.suppress(OSError, ValueError):
                for label, seconds in json.loads(path.read_text())["seconds"].items():
                    totals[label] = totals.get(label, 0.0) + seconds
        return totals


def _command(profile: bool) -> list[str]:
    return [sys.executable, "-m", "bench.profiled" if profile else "broker.cli"]


@contextlib.asynccontextmanager
async def deployment(
    root: Path, *, sync_always: bool = True, workers: int = 1, profile: bool = False
) -> AsyncIterator[Deployment]:
    """`s284 up` (+ workers-1 `s284 gateway`) on free ports in root/home; every process
    SIGTERM-ed and reaped on exit. `sync_always=False`: nats-server without fsync."""
    nats_port, http_port = free_loopback_ports(2)
    home = root / "home"
    profile_dir = root / "profile" if profile else None
    env = {**os.environ, "S284_NATS_SYNC_ALWAYS": "true" if sync_always else "false"}
    if profile_dir is not None:
        profile_dir.mkdir()
        env["S284_BENCH_PROFILE_DIR"] = str(profile_dir)
    procs: list[asyncio.subprocess.Process] = []
    try:
        procs.append(
            await _spawn(
                [
                    *_command(profile),
                    "up",
                    "--home",
                    str(home),
                    "--nats-port",
                    str(nats_port),
                    "--http-port",
                    str(http_port),
                ],
                root / "deployment.log",
                env,
            )
        )
        http_url = f"http://127.0.0.1:{http_port}"
        await _wait_ready(procs[0], http_url)
        for index in range(1, workers):
            log = root / f"gateway-{index}.log"
            procs.append(
                await _spawn([*_command(profile), "gateway", "--home", str(home)], log, env)
            )
            await _wait_started(procs[-1], log)
        h = Home(home)
        started = Started(h, h.nats_url, http_url, Settings(home=home).database_url)
        yield Deployment(
            started, [p.pid for p in procs], procstat.nats_server_of(procs[0].pid), profile_dir
        )
    finally:
        for proc in reversed(procs):  # the workers first: `up` stops nats-server
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)


@contextlib.asynccontextmanager
async def embedded(root: Path, *, sync_always: bool = True) -> AsyncIterator[Started]:
    """`s284 up` as its own process, one gateway, no profile (what `bench alerts` needs)."""
    async with deployment(root, sync_always=sync_always) as running:
        yield running.started


async def _spawn(args: list[str], log: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    with log.open("wb") as log_file:
        return await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env
        )


async def _wait_ready(proc: asyncio.subprocess.Process, http_url: str) -> None:
    for _ in range(600):
        if proc.returncode is not None:
            raise BrokerError(f"`s284 up` exited at start (code {proc.returncode})")
        if await asyncio.to_thread(_ready, f"{http_url}/readyz"):
            return
        await asyncio.sleep(0.05)
    raise BrokerError("the embedded deployment was not ready within 30 s")


async def _wait_started(proc: asyncio.subprocess.Process, log: Path) -> None:
    """A worker is consuming once it logged `gateway_started`."""
    for _ in range(1200):
        if proc.returncode is not None:
            raise BrokerError(f"`s284 gateway` exited at start (code {proc.returncode})")
        if b"gateway_started" in await asyncio.to_thread(log.read_bytes):
            return
        await asyncio.sleep(0.05)
    raise BrokerError("a gateway worker did not start within 60 s")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our loopback URL
            return bool(resp.status == 200)  # noqa: PLR2004
    except OSError:
        return False


def as_dict(cpu: Cpu | None) -> dict[str, Any] | None:
    if cpu is None:
        return None
    return {
        "messages": cpu.messages,
        "gateway_cpu_us_per_msg": cpu.gateway_us,
        "nats_server_cpu_us_per_msg": cpu.nats_us,
        "profile_us_per_msg": cpu.profile_us or None,
        "gateway_rss_bytes_before": cpu.rss_before,
        "gateway_rss_bytes_after": cpu.rss_after,
    }
