"""On a real nats-server: 300 frames whose JWS header is nested 20,000 deep give 300
`frame.malformed` receipts, each frame delivered to the gateway exactly once (JetStream's
own count), and no traceback in the logs. Before issue 17 each was delivered ten times,
with a traceback each, and dead-lettered."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from broker.nats.config import GATEWAY_CONSUMER, ingress_stream
from tests.conftest import Deployment, raw_nats
from tests.frames import fresh_id
from tests.test_malformed import nested_header_frame

pytestmark = [pytest.mark.nats, pytest.mark.slow]


async def _deliveries(dep: Deployment, agency: str) -> tuple[int, int]:
    """(messages JetStream delivered to the gateway's consumer, messages left unacked)."""
    nc = await raw_nats(dep.home, "admin")
    try:
        info = await nc.jetstream().consumer_info(ingress_stream(agency), GATEWAY_CONSUMER)
        return int(info.delivered.consumer_seq), int(info.num_ack_pending or 0)
    finally:
        await nc.close()


async def test_300_nested_headers_are_delivered_once_and_refused(deployment, gateway):
    frame = nested_header_frame()
    # the gateway's own log events, whatever stream an earlier test configured logs to
    with capture_logs() as events:
        async with await deployment.client("health") as sender:
            ids = [fresh_id() for _ in range(300)]
            for mid in ids:
                await sender.publish_unchecked(frame, {"Nats-Msg-Id": mid})
            receipts = await asyncio.gather(*(sender.receipt(mid, timeout=60) for mid in ids))
        for _ in range(50):  # the acks went out before the receipts; let the server apply them
            delivered, pending = await _deliveries(deployment, "health")
            if pending == 0:
                break
            await asyncio.sleep(0.1)
    logged = [e["event"] for e in events]
    assert [r.reason for r in receipts] == ["frame.malformed"] * 300
    assert (delivered, pending) == (300, 0)  # no redelivery, nothing left unacked
    assert not [e for e in events if e.get("exc_info")], "a traceback was logged"
    assert "step_failed" not in logged
    assert "refusals_counted" in logged  # beyond the first 20, counted in the log
