"""`s284 bench memory` (issue 14): the gateway's RSS over a long run, and the verdict whether
it stayed within ±10 % after the warm-up. The verdict on made-up samples, and one short real
run through the CLI: a real gateway's RSS read from /proc, a report a person can read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.memory import MemoryReport, Sample, flat_verdict, mappings, render

MIB = 2**20
pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux /proc only")


def _report(rss_mib: list[float], warmup: int = 200) -> MemoryReport:
    samples = tuple(Sample(float(i), i * 100, int(r * MIB), 1.0) for i, r in enumerate(rss_mib))
    return MemoryReport(1_000, 1_000, 10.0, warmup, samples)


def test_flat_after_the_warm_up_even_if_it_grew_during_it():
    report = _report([100, 130, 150, 155, 160, 158, 164, 150, 149, 160, 161])
    assert (report.first, report.baseline, report.peak, report.last) == (
        100 * MIB,
        150 * MIB,
        164 * MIB,
        161 * MIB,
    )
    assert report.flat is True
    assert flat_verdict(report).startswith("within ±10 % of 150 MiB")


def test_growth_past_ten_percent_after_the_warm_up_is_reported():
    report = _report([100, 130, 150, 155, 160, 166, 170, 175, 180, 190, 200])
    assert report.flat is False
    assert flat_verdict(report).startswith("NOT within ±10 % of 150 MiB")
    assert "+33.3%" in flat_verdict(report)


def test_no_sample_after_the_warm_up_gives_no_verdict():
    report = _report([100, 110], warmup=10_000)
    assert report.flat is None
    assert "run more messages" in flat_verdict(report)
    assert "gateway RSS: first 100 MiB, peak 110 MiB, last 110 MiB" in render(report)


@pytest.mark.timeout(300)
def test_a_short_memory_run_reads_a_real_gateways_rss():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "memory", "-n", "300", "--interval", "0.2", "--json"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    figures = json.loads(done.stdout)
    assert figures["accepted"] == 300, done.stderr[-2000:]
    assert len(figures["samples"]) >= 2
    assert 20 * MIB < figures["rss_first"] <= figures["rss_peak"]
    assert figures["samples"][-1]["answered"] == 300
    assert figures["flat_within_10_percent"] in (True, False)
    assert done.returncode == (0 if figures["flat_within_10_percent"] else 1)


def test_the_rss_is_split_by_kind_of_mapping():
    kinds = mappings(os.getpid())
    assert kinds is not None
    _heap, anon, file, threads = kinds
    assert file > 0  # the interpreter and its libraries are mapped from files
    assert anon > 0  # CPython's object arenas are anonymous mmaps
    assert threads >= threading.active_count()


def test_a_process_that_is_gone_has_no_mappings():
    assert mappings(2**22 + 1) is None  # above Linux's largest pid
