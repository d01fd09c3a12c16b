"""NATS permissions: an agency cannot read another's deliveries nor publish into another's
ingress, and nobody can delete or purge the streams."""

from __future__ import annotations

import asyncio

import nats
import pytest

from broker.nats.config import (
    CHECKPOINT_SUBJECT,
    STREAM_CHECKPOINTS,
    STREAM_DELIVER,
    deliver_consumer,
    ingress_stream,
)
from broker.runtime import gateway_running
from tests.conftest import raw_nats

pytestmark = pytest.mark.nats


async def _raw(dep, user):
    errors: list[Exception] = []

    async def on_error(exc):
        errors.append(exc)

    nc = await raw_nats(dep.home, user, error_cb=on_error, max_reconnect_attempts=0)
    return nc, errors


async def test_agency_cannot_publish_into_another_agencys_ingress(deployment, gateway):
    """Police publishing on DFFH's ingress subject gets no acknowledgement and nothing is stored."""
    nc, errors = await _raw(deployment, "police")
    js = nc.jetstream()
    with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
        await js.publish("s284.ingress.dffh", b"forged", timeout=1.5)
    await nc.close()
    assert any("permissions violation" in str(e).lower() for e in errors)
    gw = await raw_nats(deployment.home, "gateway")
    info = await gw.jetstream().stream_info(ingress_stream("dffh"))
    await gw.close()
    assert info.state.messages == 0


async def test_agency_cannot_read_another_agencys_deliveries(deployment, gateway):
    """A message delivered to DFFH is invisible to Police by subscription and by consumer."""
    nc, errors = await _raw(deployment, "police")
    seen: list[bytes] = []

    async def snoop(msg):
        seen.append(msg.data)

    await nc.subscribe("s284.deliver.dffh.>", cb=snoop)
    await nc.subscribe("_INBOX_dffh.>", cb=snoop)
    psub = await nc.jetstream().pull_subscribe_bind(
        durable=deliver_consumer("dffh"), stream=STREAM_DELIVER
    )
    async with await deployment.client("corrections") as sender:
        receipt = await sender.send(
            kind="service.progress",
            purpose="csp_service_delivery",
            offender="S284-000200",
            to=["dffh"],
            payload={"step": 1},
            order_status="supervision_order",
        )
    assert receipt.accepted
    with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
        await psub.fetch(1, timeout=1.5)
    await asyncio.sleep(0.5)
    await nc.close()
    assert seen == []
    assert sum("permissions violation" in str(e).lower() for e in errors) >= 2
    async with await deployment.client("dffh") as dffh:
        assert [d.envelope.id async for d in dffh.inbox()] == [receipt.message_id]


@pytest.mark.parametrize("user", ["police", "gateway"])
@pytest.mark.parametrize("stream", [STREAM_DELIVER, STREAM_CHECKPOINTS])
async def test_nobody_can_delete_or_purge_streams(deployment, gateway, user, stream):
    """Neither an agency nor the gateway itself may delete or purge a stream, the log's
    checkpoints included."""
    nc, _ = await _raw(deployment, user)
    js = nc.jetstream()
    for call in (js.delete_stream, js.purge_stream):
        with pytest.raises((nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError)):
            await asyncio.wait_for(call(stream), 2)
    await nc.close()


async def test_agencies_cannot_publish_log_checkpoints(deployment, gateway):
    """Only the gateway announces checkpoints: an agency's forged one is refused by NATS."""
    nc, errors = await _raw(deployment, "police")
    with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
        await nc.jetstream().publish(CHECKPOINT_SUBJECT, b"{}", timeout=1.5)
    await nc.close()
    assert any("permissions violation" in str(e).lower() for e in errors)


async def test_gateway_runs_without_the_admin_credentials(deployment):
    """Once provisioned, the admin identity can leave the machine: a gateway started
    without it delivers a message end to end (it never reads the admin file)."""
    deployment.home.admin_creds_path.unlink()
    stop = asyncio.Event()
    async with gateway_running(deployment.settings, stop):
        async with await deployment.client("corrections") as sender:
            receipt = await sender.send(
                kind="risk.update",
                purpose="offender_management",
                offender="S284-000321",
                to=["police"],
                payload={"risk_level": "low"},
            )
        async with await deployment.client("police") as police:
            delivered = [d.envelope.id async for d in police.inbox()]
    assert receipt.accepted
    assert delivered == [receipt.message_id]


async def test_provision_command(deployment, cli, tmp_path):
    """`s284 provision` re-provisions a running deployment (idempotent) and says so; on a
    directory with no deployment it exits 1 with a one-line error, not a traceback."""
    done = await asyncio.to_thread(cli, "provision", "--home", str(deployment.home.path))
    assert done.returncode == 0, done.stderr
    assert "provisioned" in done.stdout
    missing = await asyncio.to_thread(cli, "provision", "--home", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no s284 deployment")
    assert "Traceback" not in missing.stderr
