"""While the disclosure log or the routing database is down the gateway delivers nothing,
refuses nothing, and takes the batch again once the store answers: the sender gets its
receipt late, the recipient gets the message once, and the log holds it once."""

from __future__ import annotations

import asyncio

import pytest

from audit import AuditStore, StoreUnavailableError
from broker.gateway.pipeline import Gateway
from broker.gateway.routing import AlertRouting
from broker.nats.client import Connection, StreamLimits
from broker.wire.keys import GATEWAY
from policies import load_bundle
from routing import RoutingStore, RoutingUnavailableError

pytestmark = pytest.mark.nats


class _Flaky:
    """A real store whose `method` fails `times` times with the store's own outage error."""

    def __init__(self, store, method: str, error: Exception, times: int = 1):
        self._store, self._method, self._error, self.left = store, method, error, times

    def __getattr__(self, name):
        real = getattr(self._store, name)
        if name != self._method:
            return real

        def failing(*args, **kwargs):
            if self.left:
                self.left -= 1
                raise self._error
            return real(*args, **kwargs)

        return failing


@pytest.mark.parametrize(
    "broken",
    ["audit append (step 7)", "routing's alert rows (step 7b, after the records committed)"],
)
async def test_a_store_outage_delays_the_message_but_loses_and_duplicates_nothing(
    deployment, broken
):
    """The message is accepted after the outage, delivered once, recorded once."""
    settings, home = deployment.settings, deployment.home
    admin = await Connection.connect(home.nats_url, home.admin_credentials(), name="admin")
    await admin.ensure_streams(  # provisioning is the admin identity's, not the gateway's
        StreamLimits(settings.max_frame_bytes, 3.0, settings.max_deliver),
        ["police", "corrections", "dffh", "health"],
    )
    await admin.close()
    conn = await Connection.connect(home.nats_url, home.credentials(GATEWAY), name="gw")
    store = AuditStore.open(settings.database_url)
    routing = RoutingStore.open(settings.database_url)
    log, rows = store, routing
    if broken.startswith("audit"):
        log = flaky = _Flaky(store, "append", StoreUnavailableError("synthetic outage"))
    else:
        rows = flaky = _Flaky(routing, "open_alert_batch", RoutingUnavailableError("outage"))
    gw = Gateway(
        settings,
        conn,
        log,
        load_bundle(),
        home.identity(GATEWAY),
        home.directory(),
        alerts=AlertRouting(rows),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        async with await deployment.client("corrections") as sender:
            receipt = await sender.send(
                kind="risk.update",
                purpose="offender_management",
                offender="S284-000321",
                to=["police"],
                payload={"risk_level": "high"},
                timeout=30,
            )
        async with await deployment.client("police") as police:
            delivered = [d.envelope.id async for d in police.inbox()]
    finally:
        stop.set()
        await task
        await conn.close()
    assert receipt.accepted
    assert flaky.left == 0  # the outage did happen
    assert delivered == [receipt.message_id]
    assert [(r["event"], r["recipient_agency"]) for r in store.records()] == [
        ("disclosed", "police")
    ]
    assert gw.state.refused == 0
    routing.close()
    store.close()
