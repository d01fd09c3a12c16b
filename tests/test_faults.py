"""Faults the production shape must survive, each against the lab topology (three
clustered nats-servers with R3 streams, PostgreSQL, two `s284 gateway` processes, the
API, four agency homes): 1,000 messages from Corrections in flight, two recipients each,
then one fault while the gateways are working through them. Afterwards each recipient's
own system reads its inbox and the disclosure log is read from PostgreSQL: 0 lost,
0 duplicated, 0 unaudited (a delivery with no committed disclosure record), and
`s284 audit verify` passes. The counts come from the inboxes and the log, never from the
gateways' own counters. About a minute per test on a 2-core machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker.lab import Lab, LabOptions
from broker.nats.config import ingress_stream
from broker.nats.server import free_loopback_ports
from tests import labtraffic
from tests.conftest import PG_URL, require_pg
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

MESSAGES = 1000
Fault = Callable[[Lab], Awaitable[None]]


@pytest.fixture
def pg_url() -> str:
    require_pg()
    return PG_URL


async def _survives(lab: Lab, fault: Fault) -> None:
    """Publish MESSAGES, inject `fault` while the gateways work, then count and verify."""
    sender = await labtraffic.client(lab, labtraffic.SENDER)
    try:
        frames = await labtraffic.sealed(sender, MESSAGES)
        await labtraffic.publish(sender, frames)
        await fault(lab)
    finally:
        await sender.close()
    counts = await labtraffic.count(lab, {mid for mid, _ in frames}, timeout=180.0)
    assert counts == labtraffic.Counts(lost=0, duplicated=0, unaudited=0, logged_twice=0)
    assert (await labtraffic.verify_log(lab)).startswith("ok:")


@pytest.fixture
async def lab(tmp_path: Path, pg_url: str) -> AsyncIterator[Lab]:
    async with Lab(LabOptions(tmp_path / "lab", db_url=pg_url)) as running:
        yield running


async def test_kill_9_the_ingress_leader_node_and_bring_it_back(lab: Lab) -> None:
    """The node leading Corrections' ingress stream dies mid-traffic and returns 5 s later:
    a new leader is elected, clients reconnect to the other nodes, nothing is lost."""

    async def fault(lab: Lab) -> None:
        victim = await labtraffic.leader_of(lab, ingress_stream(labtraffic.SENDER))
        await lab.kill_node(victim)
        await asyncio.sleep(5.0)
        await lab.start_node(victim)

    await _survives(lab, fault)


async def test_kill_9_one_gateway_worker(lab: Lab) -> None:
    """One worker dies holding unacknowledged messages; the other carries on, and takes
    the dead one's messages once their ack wait runs out (records and deliveries are
    idempotent, so whatever the dead one had half done is not done twice)."""

    async def fault(lab: Lab) -> None:
        await asyncio.sleep(1.0)  # it is mid-batch
        await lab.kill_worker(0)

    await _survives(lab, fault)
    assert lab.workers[1].running


async def test_rolling_restart_of_every_nats_node(lab: Lab) -> None:
    """A rolling upgrade: each node stopped and started in turn, the next only once the
    restarted one reports JetStream current."""

    async def fault(lab: Lab) -> None:
        for index in range(len(lab.nodes)):
            await lab.restart_node(index)

    await _survives(lab, fault)


async def test_postgresql_unreachable_for_10_s(tmp_path: Path, pg_url: str) -> None:
    """The gateways' database connections are cut for 10 s (a proxy in between: the
    shared PostgreSQL itself keeps running): they stop consuming, then resume."""
    host_port = pg_url.rsplit("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy(free_loopback_ports(1)[0], (host, int(port)))
    await proxy.start()
    options = LabOptions(tmp_path / "lab", db_url=pg_url, gateway_db_port=proxy.port)

    async def fault(_lab: Lab) -> None:
        await asyncio.sleep(0.5)
        await proxy.stop()
        await asyncio.sleep(10.0)
        await proxy.start()

    try:
        async with Lab(options) as lab:
            await _survives(lab, fault)
    finally:
        await proxy.stop()
