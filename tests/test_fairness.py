"""One agency's flood cannot stall another's messages (issue 17 item 4).

Against a real nats-server and the real gateway: police publishes thousands of frames on
its own ingress, then corrections sends one legitimate message. Corrections' receipt must
come while police's frames are still queued: the gateway takes at most a per-agency quota
from each ingress stream per batch (broker/nats/fanin.py), so a flood costs another agency
at most a batch or two, not the whole backlog. No timer is asserted: the backlog left when
the receipt arrives is the evidence (the delay is printed, for the reader).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from audit import AuditStore
from broker.nats.config import ingress_stream
from tests.conftest import Deployment, raw_nats
from tests.frames import craft, envelope_dict

pytestmark = [pytest.mark.nats, pytest.mark.slow]

FLOOD = 4000  # measured: accepted after 0.44 s with 2,461 of 4,000 still queued
VALID_FLOOD = 1500


async def _flood(dep: Deployment, count: int) -> None:
    """`count` distinct garbage frames on police's ingress, each stored by JetStream."""
    nc = await raw_nats(dep.home, "police")
    try:
        js = nc.jetstream()
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    js.publish(
                        "s284.ingress.police",
                        f"garbage frame {i} ".encode() * 8,
                        headers={"Nats-Msg-Id": f"flood-{i}"},
                    )
                    for i in range(start, min(start + 500, count))
                )
            )
    finally:
        await nc.close()


async def _backlog(dep: Deployment) -> int:
    nc = await raw_nats(dep.home, "admin")
    try:
        info = await nc.jetstream().stream_info(ingress_stream("police"))
        return int(info.state.messages)
    finally:
        await nc.close()


async def _corrections_served_during_flood(dep: Deployment) -> tuple[float, int]:
    """Corrections sends one message; its receipt must be an acceptance and arrive while
    police's flood is still queued. Returns the delay and the backlog left."""
    async with await dep.client("corrections") as sender:
        start = time.perf_counter()
        receipt = await sender.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000124",
            to=["police"],
            payload={"level": "high"},
            timeout=60,
        )
        delay = time.perf_counter() - start
    left = await _backlog(dep)
    assert receipt.accepted, receipt.detail
    assert left > 0, (
        f"corrections' receipt came only after police's whole flood was drained "
        f"({delay:.2f} s): it waited behind another agency's backlog"
    )
    return delay, left


async def test_a_flood_from_one_agency_does_not_stall_another(deployment, gateway):
    """Corrections' message is accepted while police's garbage is still queued."""
    await _flood(deployment, FLOOD)
    delay, left = await _corrections_served_during_flood(deployment)
    print(f"fairness: corrections accepted {delay:.3f} s after sending; {left} flood frames left")  # noqa: T201


async def _valid_flood(dep: Deployment, count: int) -> None:
    """`count` well-formed, permitted messages from police to corrections."""
    police = dep.home.identity("police")
    directory = dep.home.directory()
    frames = [
        craft(police, directory, envelope_dict("police", recipients=["corrections"]))
        for _ in range(count)
    ]
    nc = await raw_nats(dep.home, "police")
    try:
        js = nc.jetstream()
        for start in range(0, count, 250):
            chunk = frames[start : start + 250]
            await asyncio.gather(
                *(
                    js.publish("s284.ingress.police", frame, headers={"Nats-Msg-Id": mid})
                    for mid, frame in chunk
                )
            )
    finally:
        await nc.close()


async def test_a_flood_of_valid_messages_does_not_stall_another_agency(deployment, gateway):
    """The same when the flood is of real messages, each decided, recorded and delivered
    (the costlier case per message)."""
    await _valid_flood(deployment, VALID_FLOOD)
    delay, left = await _corrections_served_during_flood(deployment)
    store = AuditStore.open(deployment.settings.database_url)
    flood = [r for r in store.records() if r["ingress_agency"] == "police"]
    store.close()
    assert flood, "no police message processed yet"
    assert {r["event"] for r in flood} == {"disclosed"}  # a flood of permitted messages
    print(f"fairness (valid flood): accepted after {delay:.3f} s; {left} left")  # noqa: T201
