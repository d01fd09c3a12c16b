"""Designated-contact routing through the gateway (on the in-memory twin of NATS, held to
nats-server's behaviour by tests/test_transport_contract.py): an alert reaches the
contact for the offender's area and topic, the acknowledgement and the contact's reply reach
the managing officer, an unacknowledged alert escalates (also after a restart), and an
alert nobody can take is parked at the duty inbox, recorded and reported."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from audit import AuditStore
from broker.alerts.admin import import_table
from broker.auth import Principal, Role
from broker.wire.envelope import Sender
from routing import RoutingStore
from tests.conftest import s284

TABLE = Path(__file__).parent.parent / "docs" / "examples" / "routing-table.yaml"
OFFENDER = "S284-000900"
OFFICER = Sender(agency="corrections", unit="ccs-nwm", person_id="cm-0042", role="case_manager")
POLICE_CONTACT = Principal("pol-nwm-017", Role.CONTACT, "police")


def _load_table(settings) -> None:
    routing, audit = (
        RoutingStore.open(settings.database_url),
        AuditStore.open(settings.database_url),
    )
    import_table(routing, audit, yaml.safe_load(TABLE.read_text()), "ops-0001", "test")
    routing.close()
    audit.close()


async def _place(officer_client, offender=OFFENDER, area="north-west-metro"):
    """Corrections tells the scheme where the offender lives and who manages them."""
    receipt = await officer_client.send(
        kind="order.status",
        purpose="offender_management",
        offender=offender,
        to=["police"],
        payload={"order_status": "supervision_order", "area": area, "managing_officer": "cm-0042"},
        order_status="supervision_order",
    )
    assert receipt.accepted


async def _alert(officer_client, offender=OFFENDER, topic="risk"):
    return await officer_client.send(
        kind="risk.alert",
        purpose="offender_management",
        offender=offender,
        to=["police"],
        payload={"alert_level": "high", "summary": "synthetic"},
        topic=topic,
    )


async def _create_streams(deployment):
    await deployment.provision()


async def _drain(client, box):
    return [item async for item in getattr(client, box)()]


async def test_alert_reaches_the_designated_contact_who_acknowledges_and_replies(twin_deployment):
    """Routed by the offender's area and topic: the receipt names the contact, Police get the
    alert for that contact, and the managing officer (Corrections) is told of the
    acknowledgement and gets the contact's reply, each step in the disclosure log."""
    _load_table(twin_deployment.settings)
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop) as running,
        await twin_deployment.client("corrections", OFFICER) as officer,
    ):
        await _place(officer)
        receipt = await _alert(officer)
        assert receipt.accepted
        assert [(d.recipient, d.contact) for d in receipt.deliveries] == [("police", "pol-nwm-017")]
        async with await twin_deployment.client("police") as police:
            alerts = await _drain(police, "alerts")
            assert [(a.envelope.id, a.contact) for a in alerts] == [
                (receipt.message_id, "pol-nwm-017")
            ]
        alert_id = receipt.deliveries[0].delivery_id
        acked = await running.alerts.acknowledge(alert_id, POLICE_CONTACT)
        assert acked.acknowledged_by == "pol-nwm-017"
        await running.alerts.reply(alert_id, POLICE_CONTACT, "Visited the address; all quiet.")
        notices = await _drain(officer, "notices")
    assert [(n.event, n.contact, n.alert_id, n.officer) for n in notices] == [
        ("acknowledged", "pol-nwm-017", alert_id, "cm-0042"),
        ("reply", "pol-nwm-017", alert_id, "cm-0042"),
    ]
    assert notices[1].text == "Visited the address; all quiet."
    store = AuditStore.open(twin_deployment.settings.database_url)
    events = [(r["event"], r.get("recipient_contact")) for r in store.records()]
    store.close()
    assert ("routing_changed", None) in events
    assert ("alert_routed", "pol-nwm-017") in events
    assert ("acknowledged", "pol-nwm-017") in events
    assert events.count(("disclosed", None)) >= 2  # the order.status and the contact's reply


async def test_unacknowledged_alert_escalates_to_the_deputy_even_after_a_restart(twin_deployment):
    """The deadline is kept in the database: a gateway started after the one that routed
    the alert escalates it to the deputy once the deadline passes, and the managing
    officer is told."""
    _load_table(twin_deployment.settings)
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop),
        await twin_deployment.client("corrections", OFFICER) as officer,
    ):
        await _place(officer)
        receipt = await _alert(officer)
    alert_id = receipt.deliveries[0].delivery_id

    later = datetime.now(UTC) + timedelta(days=3)  # well past two working hours
    async with twin_deployment.gateway() as running:
        await running.alerts.tick(later)
        await running.alerts.tick(later)  # a second pass changes nothing
        escalated = running.routing.alert(alert_id)
        async with await twin_deployment.client("police") as police:
            contacts = [a.contact for a in await _drain(police, "alerts")]
        async with await twin_deployment.client("corrections") as corrections:
            notices = await _drain(corrections, "notices")
    assert (escalated.level, escalated.contact_id) == (1, "pol-nwm-022")
    assert contacts == ["pol-nwm-017", "pol-nwm-022"]
    assert [(n.event, n.level, n.contact) for n in notices] == [("escalated", 1, "pol-nwm-022")]


async def test_alert_for_an_offender_with_no_known_area_goes_to_the_duty_inbox(twin_deployment):
    """Never silently dropped: it reaches Police's duty inbox with a reason, is recorded,
    and `s284 routing check` reports it."""
    _load_table(twin_deployment.settings)
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop),
        await twin_deployment.client("corrections", OFFICER) as officer,
    ):
        receipt = await _alert(officer, offender="S284-000901")
        assert receipt.accepted
        assert receipt.deliveries[0].contact == "duty"
        assert receipt.deliveries[0].route_reason == "routing.no_area"
        async with await twin_deployment.client("police") as police:
            assert [a.contact for a in await _drain(police, "alerts")] == ["duty"]
    store = AuditStore.open(twin_deployment.settings.database_url)
    routed = [r for r in store.records() if r["event"] == "alert_routed"]
    store.close()
    assert [(r["recipient_contact"], r["reason_code"]) for r in routed] == [
        ("duty", "routing.no_area")
    ]
    check = s284("routing", "check", "--home", str(twin_deployment.home.path))
    assert check.returncode == 3
    assert "routing.no_area" in check.stdout
    assert receipt.deliveries[0].delivery_id in check.stdout


async def test_an_agency_informed_about_an_offender_gets_later_updates_pushed(twin_deployment):
    """Police, once told about an offender, also receive Corrections' later risk update
    addressed to Health only; the receipt and the disclosure log say it was pushed."""
    stop = asyncio.Event()
    update = {"risk_level": "moderate", "summary": "synthetic"}
    async with (
        twin_deployment.gateway(stop),
        await twin_deployment.client("corrections", OFFICER) as officer,
    ):
        first = await officer.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000910",
            to=["police"],
            payload=update,
        )
        later = await officer.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000910",
            to=["health"],
            payload=update,
        )
        unrelated = await officer.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000911",
            to=["health"],
            payload=update,
        )
        async with await twin_deployment.client("police") as police:
            got = [d.envelope.id async for d in police.inbox()]
    assert [d.recipient for d in later.deliveries] == ["health", "police"]
    assert [d.pushed for d in later.deliveries] == [False, True]
    assert [d.pushed for d in first.deliveries] == [False]
    assert [d.recipient for d in unrelated.deliveries] == ["health"]
    assert got == [first.message_id, later.message_id]
    store = AuditStore.open(twin_deployment.settings.database_url)
    [pushed] = [
        r
        for r in store.records(later.message_id)
        if r["recipient_agency"] == "police" and r["event"] == "disclosed"
    ]
    store.close()
    assert pushed["reason"].startswith("pushed to a subscriber")


async def test_an_alert_right_behind_the_placement_is_routed_by_it(twin_deployment):
    """A placement (order.status) and an alert that wait in JetStream together, so the
    gateway takes them in one batch: the alert already follows the new area."""
    _load_table(twin_deployment.settings)
    await _create_streams(twin_deployment)  # no gateway yet: the two messages wait together
    async with await twin_deployment.client("corrections", OFFICER) as officer:
        placement = officer.envelope(
            kind="order.status", purpose="offender_management", offender="S284-000950",
            to=["police"], order_status="supervision_order",
        )  # fmt: skip
        alert = officer.envelope(
            kind="risk.alert", purpose="offender_management", offender="S284-000950",
            to=["police"], topic="risk",
        )  # fmt: skip
        area = {"area": "barwon-south-west", "managing_officer": "cm-0042"}
        await officer.publish_frame(officer.seal(placement, area), placement.id)
        await officer.publish_frame(officer.seal(alert, {"alert_level": "high"}), alert.id)
        async with twin_deployment.gateway():
            receipt = await officer.receipt(alert.id)
    assert [d.contact for d in receipt.deliveries] == ["pol-bsw-004"]


async def test_what_the_contact_says_flows_back_to_the_managing_officer_not_the_sender(
    twin_deployment,
):
    """DFFH raises an alert about an offender Corrections manages (officer cm-0042): the
    acknowledgement and the reply go to cm-0042 at Corrections; DFFH, the sender, learns
    that its alert was acknowledged, but the reply (information) is not disclosed to it."""
    _load_table(twin_deployment.settings)
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop) as running,
        await twin_deployment.client("corrections", OFFICER) as officer,
        await twin_deployment.client("dffh") as dffh,
    ):
        await _place(officer)
        receipt = await _alert(dffh)
        assert receipt.accepted, receipt
        alert_id = receipt.deliveries[0].delivery_id
        await running.alerts.acknowledge(alert_id, POLICE_CONTACT)
        await running.alerts.reply(alert_id, POLICE_CONTACT, "Spoke with the household.")
        at_corrections = await _drain(officer, "notices")
        at_dffh = await _drain(dffh, "notices")
    assert [(n.event, n.officer, n.route_reason) for n in at_corrections] == [
        ("acknowledged", "cm-0042", None),
        ("reply", "cm-0042", None),
    ]
    assert [(n.event, n.officer) for n in at_dffh] == [("acknowledged", None)]
    store = AuditStore.open(twin_deployment.settings.database_url)
    [reply] = [r for r in store.records() if r["kind"] == "concern.report"]
    store.close()
    assert (reply["event"], reply["recipient_agency"]) == ("disclosed", "corrections")


async def test_with_no_managing_officer_on_record_it_goes_to_the_duty_inbox_with_a_reason(
    twin_deployment,
):
    """An offender Corrections never placed: the alert is parked at Police's duty inbox; its
    acknowledgement reaches Corrections' duty inbox, saying why."""
    _load_table(twin_deployment.settings)
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop) as running,
        await twin_deployment.client("corrections", OFFICER) as officer,
    ):
        receipt = await _alert(officer, offender="S284-000977")
        [delivery] = receipt.deliveries
        assert delivery.contact == "duty"
        duty = Principal("duty", Role.CONTACT, "police")
        await running.alerts.acknowledge(delivery.delivery_id, duty)
        notices = await _drain(officer, "notices")
    assert [(n.event, n.officer, n.route_reason) for n in notices] == [
        ("acknowledged", "duty", "offender.no_managing_officer"),
    ]
