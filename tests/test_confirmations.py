"""Every disclosure confirmed received: a recipient's SDK confirms each delivery it takes,
the gateway records `received` against the disclosure, and a confirmation by the wrong
agency, for another agency's delivery, for nothing, or replayed is refused and recorded,
marking nothing received. `s284 audit unconfirmed` lists what no recipient confirmed."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from audit import AuditStore
from broker.gateway.confirmations import ConfirmationContext, Confirmations
from broker.ids import new_id
from broker.nats.config import confirm_subject
from broker.nats.transport import Inbound
from broker.sdk import AgencyClient
from broker.wire.confirmations import Confirmation, sign_confirmation
from broker.wire.envelope import Agency, delivery_id_for
from tests.twin import TwinDeployment


async def _records(dep: TwinDeployment, want: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The log's records once `want(records)` holds (the gateway records asynchronously)."""
    store = AuditStore.open(dep.settings.database_url)
    try:
        for _ in range(int(timeout / 0.05)):
            rows = await asyncio.to_thread(store.records)
            if want(rows):
                return rows
            await asyncio.sleep(0.05)
    finally:
        store.close()
    pytest.fail(f"the log never showed what was expected: {[r['event'] for r in rows]}")


def _events(rows: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["event"] == event]


async def _send(dep: TwinDeployment, to: list[str]) -> str:
    sender = await dep.client("corrections")
    try:
        receipt = await sender.send(
            kind="risk.update", purpose="offender_management", offender="S284-000123",
            to=to, payload={"risk_level": "high", "summary": "synthetic"},
        )  # fmt: skip
    finally:
        await sender.close()
    assert receipt.accepted
    assert receipt.message_id is not None
    return receipt.message_id


async def _drain(client: AgencyClient) -> list[str]:
    return [item.delivery_id async for item in client.inbox(idle_timeout=0.3)]


async def test_reading_the_inbox_confirms_each_delivery(twin_deployment, twin_gateway):
    """Police reads its inbox; the log then holds, for police's disclosure, a `received`
    record that refers to it, signed by police's key; health's stays unconfirmed."""
    mid = await _send(twin_deployment, ["police", "health"])
    police = await twin_deployment.client("police")
    assert await _drain(police) == [delivery_id_for(mid, Agency.POLICE)]
    await police.close()
    rows = await _records(twin_deployment, lambda rs: _events(rs, "received"))
    disclosed = {r["recipient_agency"]: r for r in _events(rows, "disclosed")}
    [received] = _events(rows, "received")
    assert received["refers_to"] == disclosed["police"]["record_id"]
    assert (received["recipient_agency"], received["message_id"]) == ("police", mid)
    assert received["ingress_agency"] == "police"
    assert not [r for r in rows if r["refers_to"] == disclosed["health"]["record_id"]]


async def _publish(dep: TwinDeployment, on: str, frame: bytes) -> None:
    conn = dep.connect(on)
    try:
        await conn.publish(confirm_subject(on), frame, new_id())
    finally:
        await conn.close()


async def test_forged_misaddressed_unknown_and_replayed_confirmations_are_refused(
    twin_deployment, twin_gateway
):
    """Each bad confirmation is a `refused` record with its `confirm.*` code and nothing is
    marked received beyond police's own confirmation: health confirming police's delivery,
    health's key on police's subject, a confirmation of a message never disclosed, and
    police's genuine confirmation sent a second time."""
    dep = twin_deployment
    mid = await _send(dep, ["police", "health"])
    police_id, health_id = dep.home.identity("police"), dep.home.identity("health")
    genuine = sign_confirmation(delivery_id_for(mid, Agency.POLICE), mid, police_id)
    await _publish(dep, "police", genuine)
    await _records(dep, lambda rs: _events(rs, "received"))
    never = new_id()
    bad = [
        ("health", sign_confirmation(delivery_id_for(mid, Agency.POLICE), mid, health_id)),
        ("police", sign_confirmation(delivery_id_for(mid, Agency.HEALTH), mid, health_id)),
        ("police", sign_confirmation(delivery_id_for(never, Agency.POLICE), never, police_id)),
        ("police", genuine),
        ("police", b"not a confirmation"),
    ]
    for on, frame in bad:
        await _publish(dep, on, frame)

    def refused(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in _events(rows, "refused") if r["reason_code"].startswith("confirm.")]

    rows = await _records(dep, lambda rs: len(refused(rs)) == len(bad))
    assert [r["reason_code"] for r in refused(rows)] == [
        "confirm.not_addressed",
        "confirm.bad_signature",
        "confirm.unknown_delivery",
        "confirm.replayed",
        "confirm.malformed",
    ]
    assert all(r["decision"] == "deny" for r in refused(rows))
    [received] = _events(rows, "received")
    assert received["recipient_agency"] == "police"


async def test_a_confirmation_redelivered_after_a_crash_records_nothing_twice(
    twin_deployment, twin_gateway
):
    """The gateway recording the same confirmation again (its ack was lost) writes neither a
    second `received` nor a replay refusal."""
    dep = twin_deployment
    mid = await _send(dep, ["police"])
    police = await dep.client("police")
    await _drain(police)
    await police.close()
    rows = await _records(dep, lambda rs: _events(rs, "received"))
    store = AuditStore.open(dep.settings.database_url)
    try:
        [received] = _events(rows, "received")
        again = Confirmations(
            ConfirmationContext(dep.connect("gateway"), store, dep.home.directory(), "n1")
        )
        frame = sign_confirmation(
            delivery_id_for(mid, Agency.POLICE), mid, dep.home.identity("police")
        )
        assert again.record_for(_inbound(frame, received["ingress_seq"])) is None
        replayed = again.record_for(_inbound(frame, received["ingress_seq"] + 1))
        assert replayed is not None
        assert replayed.reason_code == "confirm.replayed"
    finally:
        store.close()


def _inbound(frame: bytes, seq: int) -> Inbound:
    """The confirmation as the gateway's consumer hands it over (second delivery)."""
    return Inbound(frame, confirm_subject("police"), {}, seq, 2, datetime.now(UTC), None)  # type: ignore[arg-type]


async def test_audit_unconfirmed_lists_what_no_recipient_confirmed(
    twin_deployment, twin_gateway, cli
):
    """An operator running `s284 audit unconfirmed --older-than 0s` sees health's
    disclosure (health never read its inbox) and not police's (confirmed); with the
    default 15 minutes, a fresh disclosure is not listed yet; a bad age is a usage error."""
    dep = twin_deployment
    mid = await _send(dep, ["police", "health"])
    police = await dep.client("police")
    await _drain(police)
    await police.close()
    await _records(dep, lambda rs: _events(rs, "received"))
    home = str(dep.home.path)
    out = await asyncio.to_thread(
        cli, "audit", "unconfirmed", "--home", home, "--older-than", "0s", "--json"
    )
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert (row["message_id"], row["recipient_agency"]) == (mid, "health")
    fresh = await asyncio.to_thread(cli, "audit", "unconfirmed", "--home", home)
    assert fresh.returncode == 0
    assert "0 unconfirmed disclosure(s)" in fresh.stdout
    bad = await asyncio.to_thread(
        cli, "audit", "unconfirmed", "--home", home, "--older-than", "soon"
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "15m" in bad.stderr


def test_the_documented_confirmation_is_the_one_the_gateway_reads():
    """The example in docs/wire-format.md section 3.7, which a Java or .NET agency copies,
    parses as the Confirmation the gateway verifies, with every member the table lists."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "wire-format.md").read_text()
    section = doc.split("### 3.7 Confirmation of receipt", 1)[1].split("\n## ", 1)[0]
    example = section.split("```json\n", 1)[1].split("\n```", 1)[0]
    found = Confirmation.model_validate_json(example)
    assert found.delivery_id == delivery_id_for(found.message_id, found.agency)
    for member in Confirmation.model_fields:
        assert f"| `{member}` |" in section


@pytest.mark.nats
async def test_a_real_server_carries_the_confirmation_to_the_gateway(deployment, gateway):
    """On a real nats-server, across the account boundary (police's account exports its
    confirmation subject to the broker's), police reading its inbox is recorded as
    `received` for its disclosure."""
    async with await deployment.client("corrections") as sender:
        receipt = await sender.send(
            kind="risk.update", purpose="offender_management", offender="S284-000123",
            to=["police"], payload={"risk_level": "high"},
        )  # fmt: skip
    async with await deployment.client("police") as police:
        assert len(await _drain(police)) == 1
    store = AuditStore.open(deployment.settings.database_url)
    try:
        for _ in range(200):
            rows = store.records(receipt.message_id)
            if _events(rows, "received"):
                break
            await asyncio.sleep(0.05)
    finally:
        store.close()
    [disclosed], [received] = _events(rows, "disclosed"), _events(rows, "received")
    assert received["refers_to"] == disclosed["record_id"]
