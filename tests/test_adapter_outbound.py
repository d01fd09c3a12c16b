"""Outbound writing: acknowledged only after the write, nothing dropped (real nats-server and
gateway)."""

from __future__ import annotations

import asyncio
import json

import pytest

from adapters import Adapter, AdapterState
from adapters.dffh import DffhModule
from tests.adapter_kit import adapter, make_config


async def _send_order_status(deployment) -> None:
    async with await deployment.client("corrections") as corrections:
        receipt = await corrections.send(
            kind="order.status",
            purpose="offender_management",
            offender="S284-000101",
            to=["dffh"],
            payload={"residence_restrictions": ["r1"]},
        )
    assert receipt.accepted


async def test_failed_write_is_not_acknowledged(twin_deployment, twin_gateway, tmp_path):
    """When the destination cannot be written, the delivery stays unacknowledged and is
    written once the destination is usable again (NATS redelivers it)."""
    config = make_config(tmp_path, twin_deployment.home.path, "dffh")
    await _send_order_status(twin_deployment)
    config.destination.write_text("a file where the folder should be")
    async with adapter(config, twin_deployment) as a:
        with pytest.raises(OSError, match="out"):
            await a.drain_outbound()
        config.destination.unlink()
        await asyncio.sleep(twin_deployment.settings.ack_wait_s + 0.5)
        assert await a.drain_outbound() == 1
    assert len(list(config.destination.glob("*.csv"))) == 1


class _BrokenFormat(DffhModule):
    def render(self, _delivery):
        raise ValueError("this format cannot hold it")


async def test_unrenderable_delivery_kept_and_listed(twin_deployment, twin_gateway, tmp_path):
    """A delivery the agency format cannot hold is kept as plain JSON under `unrenderable/`,
    listed in the quarantine, and acknowledged (not redelivered forever)."""
    config = make_config(tmp_path, twin_deployment.home.path, "dffh")
    await _send_order_status(twin_deployment)
    state = AdapterState.open(config.state_dir)
    try:
        async with await twin_deployment.client("dffh") as client:
            broken = Adapter(_BrokenFormat(), config, client, state)
            assert await broken.drain_outbound() == 1
            assert await broken.drain_outbound() == 0
        (row,) = state.quarantined()
    finally:
        state.close()
    assert (row.source, row.reason) == ("outbound", "outbound.unrenderable")
    (path,) = (config.destination / "unrenderable").glob("*.json")
    assert json.loads(path.read_text())["payload"] == {"residence_restrictions": ["r1"]}
