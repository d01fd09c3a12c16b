"""The demo's routing scene (the Dunedin scheme), played after the scripted flows:

1 the operator imports the synthetic routing table (docs/examples/routing-table.yaml)
2 Corrections places offender S284-000777 in north-west-metro (order.status)
3 a risk.alert reaches Police's designated contact, who acknowledges it over the API
4 a housing needs.notification reaches DFFH's housing contact, who does not answer;
  three days later (simulated: the escalation check runs as of then) it escalates
  to DFFH's duty inbox, as the table has no deputy for that row
5 the managing officer (Corrections) has a notice for each: acknowledged, escalated
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from audit import AuditStore
from broker.alerts.admin import import_table
from broker.alerts.flow import AlertContext, AlertFlow
from broker.auth import AuthConfig, LocalIssuer, Role
from broker.home import GATEWAY, Home
from broker.nats.client import Connection
from broker.sdk import AgencyClient
from broker.wire.envelope import Receipt, Sender
from policies import EngineHolder
from routing import RoutingStore

TABLE = Path(__file__).resolve().parent / "routing-table.yaml"  # ships in the wheel
OFFENDER = "S284-000777"
OFFICER = Sender(agency="corrections", unit="ccs-nwm", person_id="cm-demo", role="case_manager")
POLICE_CONTACT, HOUSING_CONTACT = "pol-nwm-017", "hsg-nwm-201"


@dataclass(frozen=True)
class RoutingOutcome:
    """(expectation, held) pairs for the demo's summary."""

    checks: list[tuple[str, bool]]


async def play_routing(home: Home, http_url: str, database_url: str) -> RoutingOutcome:
    await asyncio.to_thread(_import_table, database_url)
    async with await AgencyClient.from_home(home.path, "corrections", OFFICER) as officer:
        placed = await _place(officer)
        alert = await officer.send(
            kind="risk.alert", purpose="offender_management", offender=OFFENDER, to=["police"],
            payload={"alert_level": "high", "summary": "synthetic"}, topic="risk",
        )  # fmt: skip
        need = await officer.send(
            kind="needs.notification", purpose="csp_service_delivery", offender=OFFENDER,
            to=["dffh"], payload={"housing_need": "synthetic: transitional housing"},
            topic="housing", order_status="supervision_order",
        )  # fmt: skip
        acked = await _acknowledge_over_http(home, http_url, alert)
        escalated = await _three_days_later(home, database_url, need)
        notices = [(n.event, n.contact) async for n in officer.notices()]
    return RoutingOutcome(
        [
            ("Corrections placed the offender in an area (order.status)", placed.accepted),
            (
                f"the risk.alert went to Police's designated contact {POLICE_CONTACT}",
                _contact(alert) == POLICE_CONTACT,
            ),
            (f"{POLICE_CONTACT} acknowledged it over the API", acked),
            (
                f"the housing needs.notification went to DFFH's contact {HOUSING_CONTACT}",
                _contact(need) == HOUSING_CONTACT,
            ),
            ("unacknowledged, it escalated to DFFH's duty inbox", escalated),
            (
                "the managing officer was told of the acknowledgement and the escalation",
                notices == [("acknowledged", POLICE_CONTACT), ("escalated", "duty")],
            ),
        ]
    )


def _import_table(database_url: str) -> None:
    routing, audit = RoutingStore.open(database_url), AuditStore.open(database_url)
    try:
        import_table(routing, audit, yaml.safe_load(TABLE.read_text()), "demo-operator", "demo")
    finally:
        routing.close()
        audit.close()


async def _place(officer: AgencyClient) -> Receipt:
    return await officer.send(
        kind="order.status", purpose="offender_management", offender=OFFENDER, to=["police"],
        payload={"order_status": "supervision_order", "area": "north-west-metro",
                 "managing_officer": "cm-demo"},
        order_status="supervision_order",
    )  # fmt: skip


def _contact(receipt: Receipt) -> str | None:
    return receipt.deliveries[0].contact if receipt.accepted and receipt.deliveries else None


async def _acknowledge_over_http(home: Home, http_url: str, receipt: Receipt) -> bool:
    config = AuthConfig.from_env_and_home(home.path)
    token = await asyncio.to_thread(
        LocalIssuer.for_home(home.path).issue, config, POLICE_CONTACT, Role.CONTACT, "police", 600
    )
    alert_id = receipt.deliveries[0].delivery_id if receipt.deliveries else "none"
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        answer = await http.post(
            f"{http_url}/api/v1/alerts/{alert_id}/ack",
            headers={"Authorization": f"Bearer {token}"},
        )
    return answer.status_code == 200  # noqa: PLR2004


async def _three_days_later(home: Home, database_url: str, receipt: Receipt) -> bool:
    """Run the escalation check as of three days from now, as the broker's timer would."""
    alert_id = receipt.deliveries[0].delivery_id if receipt.deliveries else "none"
    routing, audit = RoutingStore.open(database_url), AuditStore.open(database_url)
    conn = await Connection.connect(home.nats_url, home.credentials(GATEWAY), name="s284-demo")
    try:
        flow = AlertFlow(_context(home, routing, audit, conn))
        await flow.tick(datetime.now(UTC) + timedelta(days=3))
        after: Any = await asyncio.to_thread(routing.alert, alert_id)
    finally:
        await conn.close()
        routing.close()
        audit.close()
    return after is not None and after.contact_id == "duty"


def _context(
    home: Home, routing: RoutingStore, audit: AuditStore, conn: Connection
) -> AlertContext:
    return AlertContext(
        routing, audit, conn, home.identity(GATEWAY), home.directory(), EngineHolder.load(None),
        "demo",
    )  # fmt: skip
