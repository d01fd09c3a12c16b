"""The outbox until confirmed, against a real nats-server: a delivery lost after JetStream
acknowledged it is re-sent by the reconciler and reaches its recipient once; a recipient
offline longer than the re-send interval gets each delivery once when it returns, a copy
re-sent after JetStream's de-duplication window included; confirmed frames leave the
outbox. The interval is a setting: a second here, ten minutes by default. On the twin: a
delivery never confirmed is re-sent up to the bound, then given up with an operator alert
and its frame kept on the dead-letter stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from audit import AuditStore, unconfirmed
from broker.gateway.outbox import GAVE_UP
from broker.nats.config import ADMIN, STREAM_DELIVER, STREAM_DLQ, STREAM_OUTBOX
from broker.runtime import gateway_running, provision
from broker.sdk import AgencyClient
from broker.seen import SEEN_FILE, SeenDeliveries
from broker.settings import Settings
from broker.wire.envelope import Agency, delivery_id_for
from tests.conftest import Deployment, raw_nats
from tests.test_audit_api import Api
from tests.twin import TwinDeployment


@contextlib.asynccontextmanager
async def _gateway(dep: Deployment, **settings: Any) -> AsyncIterator[Settings]:
    """The gateway with the outbox settings of this test."""
    tuned = dep.settings.model_copy(update=settings)
    stop = asyncio.Event()
    async with gateway_running(tuned, stop):
        yield tuned


async def _send(dep: Deployment, to: list[str], n: int = 1) -> list[str]:
    sender = await dep.client("corrections")
    ids = []
    try:
        for i in range(n):
            receipt = await sender.send(
                kind="risk.update", purpose="offender_management", offender="S284-000123",
                to=to, payload={"risk_level": "high", "summary": f"synthetic {i}"},
            )  # fmt: skip
            assert receipt.accepted
            assert receipt.message_id is not None
            ids.append(receipt.message_id)
    finally:
        await sender.close()
    return ids


async def _read(client: AgencyClient, idle: float = 0.3) -> list[str]:
    return [item.delivery_id async for item in client.inbox(idle_timeout=idle)]


async def _stream_messages(dep: Deployment, stream: str) -> int:
    nc = await raw_nats(dep.home, ADMIN)
    try:
        info = await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()
    return int(info.state.messages)


async def _until(check: Any, timeout: float = 15.0) -> Any:
    """Poll `check()` (async) until it returns something truthy."""
    for _ in range(int(timeout / 0.1)):
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    pytest.fail("the expected state never came")


def _events(dep: Deployment, message_id: str) -> list[str]:
    store = AuditStore.open(dep.settings.database_url)
    try:
        return [r["event"] for r in store.records() if r["message_id"] == message_id]
    finally:
        store.close()


async def _lose_deliveries(dep: Deployment) -> None:
    """What a power loss does to writes JetStream acknowledged but never wrote to disk:
    stop the single node, delete the delivery stream's files, restart, and provision again
    (the stream comes back empty, its de-duplication memory gone with it)."""
    await dep.server.stop()
    [stream_dir] = dep.home.jetstream_dir.glob(f"**/streams/{STREAM_DELIVER}")
    shutil.rmtree(stream_dir)
    await dep.restart_nats()
    await provision(dep.settings)


@pytest.mark.nats
@pytest.mark.slow
async def test_a_delivery_lost_after_its_ack_is_resent_and_reaches_the_recipient_once(
    deployment,
):
    """Police's delivery vanishes from the delivery stream after JetStream acknowledged it;
    police's inbox is empty; the reconciler re-sends it from the outbox, police reads it
    exactly once, and the log then holds `disclosed` and `received` for it."""
    dep = deployment
    async with _gateway(dep, outbox_resend_after_s=3.0, outbox_max_resends=5):
        [mid] = await _send(dep, ["police"])
        await _until(lambda: _stream_messages(dep, STREAM_DELIVER))
        await _lose_deliveries(dep)
        police = await dep.client("police")
        try:
            assert await _read(police, idle=0.2) == []  # lost: nothing to read
            got = await _until(lambda: _read(police))
            assert got == [delivery_id_for(mid, Agency.POLICE)]
            await asyncio.sleep(3.5)  # the next look: confirmed, so not re-sent again
            assert await _read(police) == []
        finally:
            await police.close()
        await _until(lambda: asyncio.to_thread(lambda: "received" in _events(dep, mid)))
    assert sorted(_events(dep, mid)) == ["disclosed", "received"]


@pytest.mark.nats
@pytest.mark.slow
async def test_an_offline_recipient_gets_each_delivery_once_and_confirmed_frames_leave(
    deployment,
):
    """Health is offline while three deliveries to it are re-sent (the interval is half a
    second); a fourth copy of one comes after JetStream's de-duplication window (simulated:
    the same frame under another Nats-Msg-Id). When health returns it reads each delivery
    once, a restarted health client does not read the late copy again, and once the
    confirmations are recorded the outbox holds nothing for them."""
    dep = deployment
    async with _gateway(dep, outbox_resend_after_s=0.5, outbox_max_resends=20):
        mids = await _send(dep, ["health"], n=3)
        await _until(lambda: _outbox_holds(dep, 3))
        await asyncio.sleep(2.0)  # several re-send intervals pass while health is away
        await _copy_after_window(dep, seq=1)
        health = await dep.client("health")
        try:
            got = await _read(health)
        finally:
            await health.close()
        assert got == [delivery_id_for(m, Agency.HEALTH) for m in mids]
        await _copy_after_window(dep, seq=1)  # and again, after health restarted
        health = await dep.client("health")
        try:
            assert await _read(health) == []
        finally:
            await health.close()
        await _until(lambda: _outbox_holds(dep, 0))
    for mid in mids:
        assert sorted(_events(dep, mid)) == ["disclosed", "received"]


async def _outbox_holds(dep: Deployment, count: int) -> bool:
    return await _stream_messages(dep, STREAM_OUTBOX) == count


async def _copy_after_window(dep: Deployment, seq: int) -> None:
    """The delivery at `seq` published again under a new Nats-Msg-Id: what a re-send after
    JetStream's de-duplication window looks like to the recipient."""
    nc = await raw_nats(dep.home, ADMIN)
    try:
        js = nc.jetstream()
        msg = await js.get_msg(STREAM_DELIVER, seq)
        await js.publish(msg.subject, msg.data, headers={"Nats-Msg-Id": f"late-{seq}-{id(msg)}"})
    finally:
        await nc.close()


async def test_an_unconfirmed_delivery_is_given_up_after_the_bound_with_an_operator_alert(
    twin_deployment: TwinDeployment,
) -> None:
    """Nobody at police reads: the delivery is re-sent twice (the bound), then the operator
    sees `delivery_unconfirmed_gave_up` naming it, its frame waits on the dead-letter
    stream under `s284.dlq.outbox.police`, and the outbox is empty; the log still lists it
    as not confirmed."""
    dep = twin_deployment
    tuned = dep.settings.model_copy(update={"outbox_resend_after_s": 0.1, "outbox_max_resends": 2})
    with capture_logs() as logs:
        async with dep.gateway(settings=tuned):
            sender = await dep.client("corrections")
            receipt = await sender.send(
                kind="risk.update", purpose="offender_management", offender="S284-000123",
                to=["police"], payload={"risk_level": "high", "summary": "synthetic"},
            )  # fmt: skip
            await sender.close()
            gw = dep.gateway_transport()
            dead = await _until(lambda: gw.last_message(STREAM_DLQ, "s284.dlq.outbox.police"))
            delivered = await gw.last_message(STREAM_DELIVER, "s284.deliver.police.>")
            await _until(lambda: _none(gw.last_message(STREAM_OUTBOX, "s284.outbox.>")))
            await gw.close()
    assert dead == delivered
    assert receipt.message_id is not None
    delivery_id = delivery_id_for(receipt.message_id, Agency.POLICE)
    resent = [e for e in logs if e["event"] == "delivery_resent"]
    assert [e["resend"] for e in resent] == [1, 2]
    [alert] = [e for e in logs if e["event"] == GAVE_UP]
    assert (alert["delivery_id"], alert["log_level"]) == (delivery_id, "error")
    store = AuditStore.open(dep.settings.database_url)
    try:
        listed = unconfirmed(store, datetime.now(UTC))
    finally:
        store.close()
    assert [row["message_id"] for row in listed] == [receipt.message_id]


async def _none(found: Any) -> bool:
    return await found is None


async def test_the_accounting_and_the_unconfirmed_list_show_what_each_recipient_confirmed(
    twin_deployment: TwinDeployment, twin_gateway: object, cli: Any
) -> None:
    """Police reads its inbox, health does not. The privacy officers' accounting (API and
    `s284 audit accounting`) shows both disclosures delivered, police's confirmed with a
    time and health's not; `GET /unconfirmed` lists health's disclosure to health's privacy
    officer and nothing to police's, which may not see it."""
    dep = twin_deployment
    sender = await dep.client("corrections")
    receipt = await sender.send(
        kind="risk.update", purpose="offender_management", offender="S284-000777",
        to=["police", "health"], payload={"risk_level": "high", "summary": "synthetic"},
    )  # fmt: skip
    await sender.close()
    police = await dep.client("police")
    assert len(await _read(police)) == 1
    await police.close()
    await _until(lambda: asyncio.to_thread(lambda: "received" in _events(dep, receipt.message_id)))

    out = await asyncio.to_thread(
        cli, "audit", "accounting", "S284-000777", "--home", str(dep.home.path), "--json"
    )
    assert out.returncode == 0, out.stderr
    confirmed = {r["recipient_agency"]: r["confirmed_at"] for r in json.loads(out.stdout)}
    assert confirmed["health"] is None
    assert confirmed["police"] is not None
    text = await asyncio.to_thread(
        cli, "audit", "accounting", "S284-000777", "--home", str(dep.home.path)
    )
    assert "2 disclosure(s) about S284-000777, 1 not confirmed" in text.stdout
    assert "UNCONFIRMED" in text.stdout

    store = AuditStore.open(dep.settings.database_url)
    api = Api(store, dep.tmp / "issuer")
    try:
        listed = await api.get(
            "/unconfirmed", api.token("privacy_officer", "health"), params={"older_than_s": 0}
        )
        hidden = await api.get(
            "/unconfirmed", api.token("privacy_officer", "police"), params={"older_than_s": 0}
        )
        accounted = await api.get("/offenders/S284-000777/disclosures", api.token("auditor", None))
    finally:
        await api.client.aclose()
        store.close()
    assert listed.status_code == 200, listed.text
    assert [(d["message_id"], d["recipient_agency"]) for d in listed.json()["disclosures"]] == [
        (receipt.message_id, "health")
    ]
    assert hidden.json()["disclosures"] == []
    by_recipient = {d["recipient_agency"]: d for d in accounted.json()["disclosures"]}
    assert by_recipient["police"]["confirmed_at"] == confirmed["police"]
    assert by_recipient["health"]["confirmed_at"] is None


@pytest.mark.nats
async def test_no_agency_can_read_the_outbox(deployment: Deployment) -> None:
    """Police, the frame's own recipient, subscribing to the outbox subjects (or to
    everything), fetching from the outbox consumer and asking JetStream for its messages
    by direct or ordinary get, gets nothing: the outbox is the broker account's alone."""
    dep = deployment
    secret = b"sealed-frame-kept-in-the-outbox"
    admin = await raw_nats(dep.home, ADMIN)
    subject = "s284.outbox.deliver.police.risk.update"
    await admin.jetstream().publish(subject, secret, headers={"Nats-Msg-Id": "outbox:x.police"})
    police = await raw_nats(dep.home, "police", error_cb=_ignore)
    got: list[bytes] = []
    try:
        for pattern in ("s284.outbox.>", ">"):
            with contextlib.suppress(Exception):
                await police.subscribe(pattern, cb=_keep(got))
        requests = [
            (f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_OUTBOX}.gateway", b'{"batch": 1}'),
            (f"$JS.API.DIRECT.GET.{STREAM_OUTBOX}.{subject}", b""),
            (f"$JS.API.DIRECT.GET.{STREAM_OUTBOX}", b'{"seq": 1}'),
            (f"$JS.API.STREAM.MSG.GET.{STREAM_OUTBOX}", b'{"seq": 1}'),
        ]
        for api_subject, body in requests:
            with contextlib.suppress(Exception):
                got.append((await police.request(api_subject, body, timeout=1.0)).data)
        await admin.jetstream().publish(subject, secret, headers={"Nats-Msg-Id": "again"})
        await asyncio.sleep(0.5)
    finally:
        await police.close()
        await admin.close()
    assert not [data for data in got if secret in data]
    assert await _stream_messages(dep, STREAM_OUTBOX) == 2


async def _ignore(_exc: Exception) -> None:
    """Permission violations are what this test expects."""


def _keep(into: list[bytes]) -> Any:
    async def cb(msg: Any) -> None:
        into.append(msg.data)

    return cb


def test_the_seen_deliveries_survive_a_restart_and_stay_bounded(tmp_path: Path) -> None:
    """A restarted agency system still knows the deliveries it took (the file in its home),
    an escalated alert for another contact is not mistaken for one seen, and neither the
    memory nor the file grows past its bound: the oldest ids go first."""
    path = tmp_path / SEEN_FILE
    seen = SeenDeliveries(path, bound=3, sync_every=2)
    for n in range(8):
        seen.add(SeenDeliveries.key(f"m{n}.police", None))
    seen.add(SeenDeliveries.key("m7.police", "duty"))
    seen.close()
    again = SeenDeliveries(path, bound=3)
    assert [k in again for k in ("m7.police", "m6.police", "m7.police duty")] == [True] * 3
    assert "m5.police" not in again
    assert "m7.police officer-2" not in again
    assert len(again) == 3
    assert len(path.read_text().splitlines()) <= 2 * 3
