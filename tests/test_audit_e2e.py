"""The disclosure log behind the real gateway: every decision recorded and verifiable, signed
checkpoints reaching agencies who notice a rewritten log, and the gateway failing closed
while its database is unreachable."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import Announcement, AuditStore, Checkpoint
from audit._note import sign_checkpoint
from broker.errors import LogIntegrityError
from broker.home import GATEWAY
from broker.nats.config import CHECKPOINT_SUBJECT
from broker.runtime import gateway_running
from tests.auditlog import untrigger
from tests.conftest import free_port, pg_schema, s284
from tests.tcpproxy import TcpProxy

UPDATE = {"risk_level": "moderate", "summary": "synthetic"}


async def _send(client, offender="S284-000501", purpose="offender_management", **kw):
    return await client.send(
        kind="risk.update",
        purpose=purpose,
        offender=offender,
        to=["police", "health"],
        payload=UPDATE,
        **kw,
    )


@pytest.mark.slow  # five `s284 audit` runs as subprocesses; the gateway part is on the twin
async def test_every_decision_is_recorded_and_the_log_verifies(twin_deployment, tmp_path):
    """Accepted and refused messages land in the log; `s284 audit verify` passes, still
    passes after `s284 audit expire` erased the personal fields, then fails naming the
    record once someone edits it in the database."""
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop),
        await twin_deployment.client("corrections") as sender,
    ):
        accepted = await _send(sender)
        refused = await _send(sender, purpose="consent")  # no consent reference: refused
    assert accepted.accepted
    assert refused.reason == "policy.denied"
    store = AuditStore.open(twin_deployment.settings.database_url)
    events = [(r["event"], r["recipient_agency"]) for r in store.records()]
    assert sorted(events[:2]) == [("disclosed", "health"), ("disclosed", "police")]
    assert events[2] == ("refused", None)
    assert store.latest_checkpoint().size == 3  # signed when the gateway stopped
    store.close()

    home = str(twin_deployment.home.path)
    ok = s284("audit", "verify", "--home", home)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: 3 records and 1 signed checkpoints verified")

    expired = s284("audit", "expire", "--home", home, "--before", "2999-01-01", "--yes")
    assert expired.stdout.strip() == "erased personal fields of 3 record(s) before 2999-01-01"
    assert s284("audit", "checkpoint", "--home", home).returncode == 0
    still = s284("audit", "verify", "--home", home)
    assert still.returncode == 0, still.stderr
    assert still.stdout.startswith("ok: 4 records and 2 signed checkpoints verified")
    store = AuditStore.open(twin_deployment.settings.database_url)
    assert [r.get("offender") for r in store.records()] == [None, None, None, None]
    store.close()

    engine = untrigger(twin_deployment.settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_log SET canonical = replace(canonical, 'police', 'dffh')")
        )
    engine.dispose()
    bad = s284("audit", "verify", "--home", home)
    assert bad.returncode == 4
    assert "record 0" in bad.stderr
    assert "record.altered" in bad.stderr


async def test_agencies_keep_checkpoints_and_notice_a_rewritten_log(twin_deployment, tmp_path):
    """Each agency's SDK checks every new checkpoint extends the last one it holds; one over a
    different tree, even signed with the log's own key, is refused as a fork."""
    settings = twin_deployment.settings.model_copy(update={"checkpoint_every_records": 1})
    state = tmp_path / "police-checkpoints.json"
    vkey = twin_deployment.home.log_vkey()
    stop = asyncio.Event()
    async with twin_deployment.gateway(stop, settings):
        async with await twin_deployment.client("corrections") as sender:
            assert (await _send(sender)).accepted
            assert (await _send(sender, offender="S284-000502")).accepted
        async with await twin_deployment.client("police") as police:
            assert await police.sync_checkpoints(state, vkey) == 2
            held = {int(k): v for k, v in json.loads(state.read_text()).items()}
            assert sorted(held) == [2, 4]
            store = AuditStore.open(settings.database_url)
            assert held[4] == store.root(4)[1].hex()
            store.close()

            signer = twin_deployment.home.signer_home().signer()
            rewritten = sign_checkpoint(
                Checkpoint(signer.origin, 5, bytes(32)), signer.key
            )  # e.g. an operator with the key re-signing an edited log
            await _announce(twin_deployment, Announcement(rewritten, 4, [bytes(32)] * 3))
            with pytest.raises(LogIntegrityError, match="not an extension of checkpoint 4"):
                await police.sync_checkpoints(state, vkey)

            forged = sign_checkpoint(
                Checkpoint(signer.origin, 6, bytes(32)), Ed25519PrivateKey.generate()
            )
            health_state = tmp_path / "health.json"
        async with await twin_deployment.client("health") as health:
            await _announce(twin_deployment, Announcement(forged, 4, []))
            with pytest.raises(LogIntegrityError):
                await health.sync_checkpoints(health_state, vkey)


async def _announce(deployment, announcement):
    conn = deployment.connect(GATEWAY)
    size = announcement.note.split("\n")[1]
    await conn.publish(CHECKPOINT_SUBJECT, announcement.to_json(), f"checkpoint:{size}")
    await conn.close()


@pytest.mark.nats
@pytest.mark.postgres
@pytest.mark.slow
async def test_gateway_fails_closed_while_the_database_is_unreachable(deployment):
    """With PostgreSQL cut off, nothing is delivered and messages wait in JetStream; when it
    returns, each is recorded and delivered exactly once."""
    with pg_schema() as url:
        proxy = TcpProxy(free_port(), ("127.0.0.1", 5432))
        await proxy.start()
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        settings = deployment.settings.model_copy(update={"db_url": proxied})
        stop = asyncio.Event()
        try:
            async with (
                gateway_running(settings, stop),
                await deployment.client("corrections") as sender,
            ):
                assert (await _send(sender)).accepted
                await proxy.stop()
                waiting = [
                    sender.envelope(
                        kind="risk.update",
                        purpose="offender_management",
                        offender=f"S284-00060{i}",
                        to=["police"],
                    )
                    for i in range(5)
                ]
                for env in waiting:
                    await sender.publish_frame(sender.seal(env, UPDATE), env.id)
                await asyncio.sleep(4)
                async with await deployment.client("police") as police:
                    before = [d.envelope.id async for d in police.inbox()]
                assert len(before) == 1  # only the message sent before the outage
                await proxy.start()
                receipts = [await sender.receipt(env.id, timeout=60) for env in waiting]
                assert all(r.accepted for r in receipts)
                async with await deployment.client("police") as police:
                    after = [d.envelope.id async for d in police.inbox()]
                assert sorted(after) == sorted(env.id for env in waiting)
        finally:
            await proxy.stop()
        store = AuditStore.open(url)
        ids = [
            r["message_id"]
            for r in store.records()
            if r["recipient_agency"] == "police" and r["event"] == "disclosed"
        ]
        store.close()
        assert len(ids) == len(set(ids)) == 6
