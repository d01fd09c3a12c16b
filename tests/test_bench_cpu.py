"""`s284 bench` reads CPU time from /proc, not the wall clock: the figures it prints per
message must be the processes' own, and absent (never invented) when /proc cannot say."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import procstat
from bench.deployment import Cpu, CpuSnapshot

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux /proc only")


def test_cpu_seconds_grow_with_work_done():
    """A process that computes for a while shows more CPU seconds than before."""
    before = procstat.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        sum(range(1000))
    after = procstat.cpu_seconds(os.getpid())
    assert before is not None
    assert after is not None
    assert after - before >= 0.2


def test_a_child_is_found_and_a_gone_process_reads_as_unknown():
    """The nats-server `s284 up` starts is found as its child; a process that has exited
    gives None, so a total over it is None rather than a partial sum."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in procstat.children(os.getpid())
        assert procstat.nats_server_of(os.getpid()) is None
    finally:
        child.kill()
        child.wait()
    assert procstat.cpu_seconds(child.pid) is None
    assert procstat.total_cpu([os.getpid(), child.pid]) is None


def test_cpu_per_message_is_the_difference_over_the_messages():
    """Two snapshots around a phase give microseconds per message, per step too."""
    before = CpuSnapshot(1.0, 0.5, {"2 verify signature": 0.1})
    after = CpuSnapshot(3.0, 1.0, {"2 verify signature": 0.3, "logging": 0.01})
    cpu = Cpu.between(before, after, 1000)
    assert cpu.gateway_us == pytest.approx(2000)
    assert cpu.nats_us == pytest.approx(500)
    assert cpu.profile_us == pytest.approx({"2 verify signature": 200, "logging": 10})
    assert Cpu.between(CpuSnapshot(None, 0.5), after, 1000).gateway_us is None


def test_resident_memory_is_read_and_unknown_for_a_gone_process():
    """The gateway's RSS is read from /proc; a process that has exited makes it unknown."""
    mine = procstat.rss_bytes([os.getpid()])
    assert mine is not None
    assert mine > 1024 * 1024  # a Python process with pytest loaded holds megabytes
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert procstat.rss_bytes([os.getpid(), child.pid]) is None
