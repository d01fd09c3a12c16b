"""Crash and restart against a real nats-server: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from audit import AuditStore

pytestmark = [pytest.mark.nats, pytest.mark.slow]

TOTAL = 1000


def _start_gateway(dep, log_path):
    env = {
        **os.environ,
        "S284_HOME": str(dep.home.path),
        "S284_ACK_WAIT_S": "3",
        "S284_FETCH_BATCH": "64",
    }
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "gateway"], env=env, stdout=out, stderr=out
        )


async def _publish_all(sender, frames):
    for i in range(0, len(frames), 100):
        await asyncio.gather(*(sender.publish_frame(f, mid) for mid, f in frames[i : i + 100]))


async def _drain(dep, agency):
    async with await dep.client(agency) as client:
        return Counter([d.envelope.id async for d in client.inbox(idle_timeout=2.0)])


async def test_kill_9_gateway_mid_stream_loses_and_duplicates_nothing(deployment, tmp_path):
    """kill -9 the gateway while 1,000 messages flow, start it again: every accepted message
    is delivered exactly once to each recipient and recorded exactly once."""
    log = tmp_path / "gateway.log"
    gw = _start_gateway(deployment, log)
    try:
        async with await deployment.client("corrections") as sender:
            frames = []
            for n in range(TOTAL):
                env = sender.envelope(
                    kind="risk.update",
                    purpose="offender_management",
                    offender=f"S284-{n:06d}",
                    to=["police", "health"],
                )
                frames.append((env.id, sender.seal(env, {"seq": n, "level": "moderate"})))
            publishing = asyncio.create_task(_publish_all(sender, frames))
            first = frames[150][0]
            await sender.receipt(first, timeout=60)  # the gateway is mid-stream
            gw.send_signal(signal.SIGKILL)
            gw.wait()
            gw = _start_gateway(deployment, log)
            await publishing
            receipts = await asyncio.gather(
                *(sender.receipt(mid, timeout=120) for mid, _ in frames[151:])
            )
        assert all(r.accepted for r in receipts)
        ids = {mid for mid, _ in frames}
        for agency in ("police", "health"):
            delivered = await _drain(deployment, agency)
            assert set(delivered) == ids, f"{agency} missing {len(ids - set(delivered))}"
            assert max(delivered.values()) == 1, f"{agency} got duplicates"
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=30)
    store = AuditStore.open(deployment.settings.database_url)
    records = store.records(limit=10 * TOTAL)
    disclosed = Counter(
        (r["message_id"], r["recipient_agency"]) for r in records if r["event"] == "disclosed"
    )
    assert len(disclosed) == 2 * TOTAL
    assert set(disclosed.values()) == {1}
    assert store.count("refused") == 0


async def test_gateway_carries_on_after_nats_server_restart(deployment, gateway):
    """Restart nats-server under a running gateway and client: both reconnect and carry on."""
    async with await deployment.client("corrections") as sender:
        before = await sender.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000300",
            to=["police"],
            payload={"n": 1},
        )
        await deployment.restart_nats()
        after = await sender.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000301",
            to=["police"],
            payload={"n": 2},
            timeout=30,
        )
    assert before.accepted
    assert after.accepted
    delivered = await _drain(deployment, "police")
    assert set(delivered) == {before.message_id, after.message_id}
