"""The gateway's housekeeping (issue 14): once tuned, a running gateway sweeps on its event
loop's timer, a full collection that frees garbage in reference cycles, then the C
allocator's trim; and `S284_HOUSEKEEPING_S=0` turns the sweep off."""

from __future__ import annotations

import asyncio
import gc

import pytest

from broker.gateway import tuning


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_a_sweep_frees_garbage_in_cycles_and_trims():
    trims: list[int] = []
    gc.disable()
    try:
        for _ in range(100):
            _Cycle()
        found = tuning.housekeep(lambda: trims.append(1))
    finally:
        gc.enable()
    assert found >= 100
    assert trims == [1]


def test_the_trim_is_glibcs_where_there_is_one():
    trim = tuning._malloc_trim()
    if trim is None:
        pytest.skip("no malloc_trim in this C library")
    assert trim() in (0, 1)


def test_a_tuned_gateway_sweeps_on_its_loop_again_and_again(monkeypatch):
    sweeps: list[int] = []
    monkeypatch.setenv("S284_HOUSEKEEPING_S", "0.01")

    async def main() -> None:
        third = asyncio.Event()

        def sweep(trim: object = None) -> int:
            sweeps.append(1)
            if len(sweeps) == 3:  # the timer re-arms itself after each sweep
                third.set()
            return 0

        monkeypatch.setattr(tuning, "housekeep", sweep)
        tuning.tune_gc()
        await asyncio.wait_for(third.wait(), timeout=30)

    asyncio.run(main())
    assert len(sweeps) >= 3


def test_zero_turns_the_sweep_off(monkeypatch):
    started: list[float] = []
    monkeypatch.setenv("S284_HOUSEKEEPING_S", "0")
    monkeypatch.setattr(tuning, "start_housekeeping", lambda loop, period: started.append(period))

    async def main() -> None:
        tuning.tune_gc()

    asyncio.run(main())
    assert started == []


def test_the_default_period_applies_when_the_setting_is_not_a_number(monkeypatch):
    monkeypatch.setenv("S284_HOUSEKEEPING_S", "often")
    assert tuning._housekeeping_period() == tuning.HOUSEKEEPING_S
    monkeypatch.delenv("S284_HOUSEKEEPING_S")
    assert tuning._housekeeping_period() == tuning.HOUSEKEEPING_S
