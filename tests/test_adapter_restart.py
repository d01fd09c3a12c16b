"""Restart without loss or duplication: an adapter that dies mid-stream and is started again
delivers every source record exactly once (real nats-server and gateway)."""

from __future__ import annotations

import pytest

from adapters import SendStatus
from adapters._run import module_for
from adapters.corrections import generate as corrections_generate
from adapters.dffh import generate as dffh_generate
from adapters.health import generate as health_generate
from adapters.police import PoliceModule
from adapters.police import generate as police_generate
from broker.wire.envelope import Agency
from tests.adapter_kit import LOCAL_IDS, adapter, drain, make_config

pytestmark = pytest.mark.nats
EVENTS = 12


class SimulatedCrashError(RuntimeError):
    """The adapter process dying at a chosen point."""


def _crash_on(client, method: str, call: int) -> None:
    original = getattr(client, method)
    calls = 0

    async def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == call:
            raise SimulatedCrashError(method)
        return await original(*args, **kwargs)

    setattr(client, method, wrapper)


@pytest.mark.parametrize(
    ("method", "where"),
    [
        ("receipt", "after the frame was published, before its receipt arrived"),
        ("publish_frame", "after the key was recorded, before the frame was published"),
    ],
)
async def test_crash_mid_stream_then_restart_delivers_each_record_once(
    deployment, gateway, tmp_path, method, where
):
    """Killed mid-stream (`where`), restarted: each of the 12 events reaches Corrections
    exactly once, under the message id recorded for its source record."""
    config = make_config(tmp_path, deployment.home.path, "police")
    (path,) = police_generate(config.source, LOCAL_IDS["police"], EVENTS)
    async with adapter(config) as a:
        _crash_on(a.client, method, 5)
        with pytest.raises(SimulatedCrashError):
            await a.poll_once()
        assert len(a.state.pending()) == 1, where
    async with adapter(config) as a:
        await a.poll_once()
        keys = [r.key for r in PoliceModule().records(path)]
        rows = [a.state.sent(k) for k in keys]
    assert all(r is not None and r.status is SendStatus.SENT for r in rows)
    async with await deployment.client("corrections") as corrections:
        items = await drain(corrections)
    delivered = sorted(i.envelope.id for i in items)
    assert delivered == sorted(r.message_id for r in rows if r is not None)
    assert len(delivered) == EVENTS


GENERATORS = {"police": police_generate, "corrections": corrections_generate,
              "dffh": dffh_generate, "health": health_generate}  # fmt: skip


@pytest.mark.parametrize("agency", ["corrections", "dffh", "health", "police"])
async def test_every_adapter_survives_a_crash_between_record_and_publish(
    deployment, gateway, tmp_path, agency
):
    """Each agency's adapter, killed after recording a record's key but before publishing
    it, sends every mappable record exactly once after a restart: every sent row is
    settled, each reaches its recipients, and no agency receives any message twice."""
    config = make_config(tmp_path, deployment.home.path, agency)
    paths = GENERATORS[agency](config.source, LOCAL_IDS[agency], 6)
    async with adapter(config) as a:
        _crash_on(a.client, "publish_frame", 3)
        with pytest.raises(SimulatedCrashError):
            await a.poll_once()
        assert len(a.state.pending()) == 1
    async with adapter(config) as a:
        await a.poll_once()
        module = module_for(Agency(agency))
        keys = [r.key for p in paths for r in module.records(p)]
        rows = [row for k in keys if (row := a.state.sent(k)) is not None]
    assert rows
    assert all(r.status is SendStatus.SENT for r in rows)
    delivered = []  # (recipient, message id): a message may go to several agencies
    for other in sorted({"corrections", "dffh", "health", "police"} - {agency}):
        async with await deployment.client(other) as client:
            delivered += [(other, i.envelope.id) for i in await drain(client)]
    assert sorted({mid for _, mid in delivered}) == sorted(r.message_id for r in rows)
    assert len(delivered) == len(set(delivered))  # none twice to the same agency
