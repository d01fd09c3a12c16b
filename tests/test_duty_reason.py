"""An alert parked at a duty inbox tells its reader why (issue 15 leftover).

The sender's receipt always named the route reason; now the alert frame the duty inbox
receives carries it too, signed by the gateway, and `s284 inbox --alerts` prints it as
"for duty (designated contact), because ...". Other deliveries are unchanged on the wire.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from broker.sdk import AgencyClient
from broker.wire.jose import b64u_decode
from broker.wire.sealing import with_route_reason
from tests.conftest import s284
from tests.frames import fresh_id
from tests.test_routing_e2e import OFFICER, _alert, _load_table, _place


async def _alerts(client: AgencyClient) -> list:
    return [item async for item in client.alerts()]


async def test_the_duty_inbox_reads_why_an_alert_was_parked_there(twin_deployment):
    """No known area: Police's duty inbox gets the alert with `routing.no_area`; an alert
    that reached its designated contact carries no reason."""
    _load_table(twin_deployment.settings)
    async with (
        twin_deployment.gateway(),
        await twin_deployment.client("corrections", OFFICER) as officer,
    ):
        parked = await _alert(officer, offender="S284-000901")
        await _place(officer)
        routed = await _alert(officer)
        async with await twin_deployment.client("police") as police:
            got = {a.envelope.id: a for a in await _alerts(police)}
    assert parked.deliveries[0].route_reason == "routing.no_area"
    duty, contact = got[parked.message_id], got[routed.message_id]
    assert (duty.contact, duty.route_reason) == ("duty", "routing.no_area")
    assert contact.contact != "duty"
    assert contact.route_reason is None


def test_a_delivery_without_a_route_reason_has_no_such_member(twin_deployment):
    """Older readers forbid unknown members: only a re-signed duty alert has the member."""
    from broker.wire.envelope import Agency, DeliveredContent, DisclosureDecision, Envelope
    from broker.wire.keys import GATEWAY
    from broker.wire.sealing import seal_delivery
    from tests.frames import envelope_dict

    home = twin_deployment.home
    gateway, directory = home.identity(GATEWAY), home.directory()
    content = DeliveredContent(
        envelope=Envelope.model_validate(envelope_dict()),
        payload={},
        withheld=[],
        decision=DisclosureDecision(policy_ids=[], reason="test", policy_version="v"),
        origin="a.b.c",
    )
    frame = seal_delivery(fresh_id(), Agency.POLICE, content, gateway, directory)
    resigned = with_route_reason(frame, "routing.no_contact", gateway)

    def claims(f: bytes) -> dict:
        return json.loads(b64u_decode(f.decode().split(".")[1]))

    assert "route_reason" not in claims(frame)
    assert claims(resigned)["route_reason"] == "routing.no_contact"
    assert claims(resigned)["sealed"] == claims(frame)["sealed"]


@pytest.mark.nats
async def test_s284_inbox_alerts_prints_the_route_reason(deployment, gateway):
    """On a real nats-server, the duty inbox's reader sees who the alert is for and why."""
    _load_table(deployment.settings)
    officer = await AgencyClient.from_home(deployment.home.path, "corrections", OFFICER)
    async with officer:
        parked = await _alert(officer, offender="S284-000901")
    assert parked.accepted
    out = await asyncio.to_thread(
        s284, "inbox", "--alerts", "--home", str(deployment.home.path), "--as", "police"
    )
    assert out.returncode == 0, out.stderr
    assert (
        "for      duty (designated contact), because the offender has no known area "
        "(no order.status with an area yet) (routing.no_area)"
    ) in out.stdout
    assert "Traceback" not in out.stderr
