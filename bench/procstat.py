"""CPU time of a process from /proc (utime + stime, all its threads), not wall clock.

On a shared machine the wall clock of a run depends on what else runs; the CPU seconds a
process spent per message do not (much), so `s284 bench` reports both, side by side.
Linux only: elsewhere the figures are absent (None), never invented.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` in seconds; None if it is gone or /proc is not there."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) may hold spaces: the fields after it follow its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def total_cpu(pids: Iterable[int]) -> float | None:
    """The sum over `pids`; None when any is unreadable (a partial sum would mislead)."""
    total = 0.0
    for pid in pids:
        seconds = cpu_seconds(pid)
        if seconds is None:
            return None
        total += seconds
    return total


def rss_bytes(pids: Iterable[int]) -> int | None:
    """Resident memory (VmRSS) summed over `pids`; None when any is unreadable."""
    total = 0
    for pid in pids:
        try:
            status = (_PROC / str(pid) / "status").read_text(encoding="ascii")
        except OSError:
            return None
        kib = next(
            (line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None
        )
        if kib is None:
            return None
        total += int(kib) * 1024
    return total


def children(pid: int) -> list[int]:
    """The direct children of `pid` (e.g. the nats-server `s284 up` started)."""
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def nats_server_of(pid: int) -> int | None:
    """The nats-server child of an `s284 up` process, if it has one."""
    for child in children(pid):
        if "nats-server" in command(child):
            return child
    return None
