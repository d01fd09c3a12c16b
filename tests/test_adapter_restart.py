"""Restart without loss or duplication: an adapter that dies mid-stream and is started again
delivers every source record exactly once (real nats-server and gateway)."""

from __future__ import annotations

import pytest

from adapters import SendStatus
from adapters.police import PoliceModule, generate
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
    (path,) = generate(config.source, LOCAL_IDS["police"], EVENTS)
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
