"""`s284 bench --lab` runs end to end on the lab topology and reports what it measured
(figures are not asserted: a benchmark, not a performance test)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require_pg, s284


@pytest.mark.nats
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_bench_lab_reports_one_and_two_workers_and_raw_jetstream() -> None:
    require_pg()
    done = s284("bench", "--lab", "-n", "40", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["workers"] for r in report["lab"]] == [1, 2]
    assert all(r["messages"] == 40 and r["rate"] > 0 and r["p99_ms"] >= r["p50_ms"]
               for r in report["lab"])  # fmt: skip
    assert report["raw_msg_s"] > 0
