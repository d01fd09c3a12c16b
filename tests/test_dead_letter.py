"""A message that can never be processed is retried a bounded number of times, then kept on
the dead-letter stream, refused with a reason, and the gateway keeps serving others.
(Gateway logic: on the in-memory twin of NATS, held to nats-server's behaviour by
tests/test_transport_contract.py.)"""

from __future__ import annotations

import asyncio

from audit import AuditStore
from broker.gateway.pipeline import Gateway
from broker.home import AGENCY_NAMES
from broker.nats.config import ADMIN, STREAM_DLQ
from broker.nats.transport import StreamLimits
from broker.wire.keys import GATEWAY
from policies import Decision, PolicyRequest, load_bundle


class _BrokenForOneKind:
    """The real engine, wrapped so that one kind of message hits a bug (an exception)."""

    def __init__(self):
        self._engine = load_bundle()
        self.version = self._engine.version

    def decide(self, request: PolicyRequest) -> Decision:
        if request.kind == "order.breach":
            raise RuntimeError("engine bug")
        return self._engine.decide(request)

    def minimise(self, payload, request):
        return self._engine.minimise(payload, request)

    def role_services(self) -> dict[str, str]:
        return self._engine.role_services()


async def test_poison_message_is_dead_lettered_and_refused(twin_deployment):
    """After max_deliver attempts the sender gets internal.dead_letter, the frame is on
    S284_DLQ for an operator, the refusal is recorded, and the next message flows."""
    settings = twin_deployment.settings.model_copy(update={"max_deliver": 2})
    home = twin_deployment.home
    admin = twin_deployment.connect(ADMIN)  # provisioning is the admin identity's
    await admin.ensure_streams(
        StreamLimits(settings.max_frame_bytes, 3.0, 2), AGENCY_NAMES  # every party's ingress
    )
    await admin.close()
    conn = twin_deployment.connect(GATEWAY)
    store = AuditStore.open(settings.database_url)
    gw = Gateway(
        settings, conn, store, _BrokenForOneKind(), home.identity(GATEWAY), home.directory()
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        async with await twin_deployment.client("corrections") as sender:
            poison = await sender.send(
                kind="order.breach",
                purpose="offender_management",
                offender="S284-000666",
                to=["police"],
                payload={},
                timeout=30,
            )
            fine = await sender.send(
                kind="risk.update",
                purpose="offender_management",
                offender="S284-000667",
                to=["police"],
                payload={},
            )
    finally:
        stop.set()
        twin_deployment.nats.interrupt()
        await task
        await conn.close()
    assert poison.reason == "internal.dead_letter"
    assert fine.accepted
    assert [r["reason_code"] for r in store.records() if r["event"] == "refused"] == [
        "internal.dead_letter"
    ]
    assert twin_deployment.nats.stream_size(STREAM_DLQ) == 1
