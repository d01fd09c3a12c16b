"""One contract for both transports: the in-memory twin must behave as a real nats-server
does for everything the broker relies on (run with `-m nats` for the real one, which is
marked so), so a fast test on the twin means what it would mean on NATS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from broker.errors import TransportError
from broker.home import Home
from broker.nats.client import Connection
from broker.nats.config import (
    ADMIN,
    CHECKPOINT_SUBJECT,
    GATEWAY_CONSUMER,
    STREAM_DELIVER,
    alert_consumer,
    alert_subject,
    deliver_consumer,
    deliver_subject,
    ingress_first_seq,
    ingress_stream,
    ingress_subject,
    receipt_subject,
)
from broker.nats.server import NatsServer
from broker.nats.transport import Inbound, StreamLimits, Transport
from broker.nats.twin import MemoryNats
from broker.wire.keys import GATEWAY
from tests.conftest import free_port
from tests.twin import TWIN_AGENCIES

POLICE_INGRESS = ingress_stream("police")
LIMITS = StreamLimits(max_frame_bytes=64 * 1024, ack_wait_s=1.0, max_deliver=3)
QUIET = 0.3  # how long "nothing arrives" is awaited


class Side:
    """One transport under contract: connect users, count a stream's messages."""

    def __init__(self, connect: Callable[[str], object], size: Callable[[str], object]) -> None:
        self._connect = connect
        self._size = size
        self.opened: list[Transport] = []

    async def user(self, name: str) -> Transport:
        conn = self._connect(name)
        conn = await conn if asyncio.iscoroutine(conn) else conn
        self.opened.append(conn)  # type: ignore[arg-type]
        return conn  # type: ignore[return-value]

    async def stream_size(self, stream: str) -> int:
        size = self._size(stream)
        return await size if asyncio.iscoroutine(size) else size  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def _twin_side(_: Path) -> AsyncIterator[Side]:
    server = MemoryNats()
    yield Side(server.connect, server.stream_size)


@contextlib.asynccontextmanager
async def _nats_side(tmp_path: Path) -> AsyncIterator[Side]:
    home = Home(tmp_path / "home")
    port = free_port()
    home.init(port)
    server = NatsServer(home.nats_conf, port, tmp_path / "nats.log")
    await server.start()

    async def connect(user: str) -> Connection:
        creds = home.admin_credentials() if user == ADMIN else home.credentials(user)
        return await Connection.connect(home.nats_url, creds, name=user)

    async def size(stream: str) -> int:
        info = await side.opened[0].js.stream_info(stream)  # type: ignore[attr-defined]
        return int(info.state.messages)

    side = Side(connect, size)
    try:
        yield side
    finally:
        for conn in side.opened:
            await conn.close()
        await server.stop()


@pytest.fixture(params=["twin", pytest.param("nats", marks=pytest.mark.nats)])
async def side(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Side]:
    """The twin, and a real nats-server; the admin identity has set the streams up."""
    make = _twin_side if request.param == "twin" else _nats_side
    async with make(tmp_path) as chosen:
        admin = await chosen.user(ADMIN)
        await admin.ensure_streams(LIMITS, TWIN_AGENCIES)
        yield chosen


async def _ingress(side: Side) -> tuple[Transport, Transport]:
    return await side.user("police"), await side.user(GATEWAY)


async def _one(conn: Transport, stream: str, durable: str, timeout: float = 2.0) -> Inbound:
    [msg] = await conn.pull(stream, durable).fetch(10, timeout=timeout)
    return msg


async def _nothing(conn: Transport, stream: str, durable: str, timeout: float = QUIET) -> None:
    assert await conn.pull(stream, durable).fetch(10, timeout=timeout) == []


async def test_published_message_is_fetched_with_its_metadata_and_gone_once_acked(side):
    """What an agency publishes on its ingress reaches the gateway once, with subject,
    message id, sequence and a first delivery; acked, it is not delivered again."""
    police, gateway = await _ingress(side)
    seq = await police.publish(ingress_subject("police"), b"frame", "m-1")
    msg = await _one(gateway, POLICE_INGRESS, GATEWAY_CONSUMER)
    assert (msg.data, msg.subject, msg.stream_seq) == (b"frame", "s284.ingress.police", seq)
    assert (msg.headers["Nats-Msg-Id"], msg.num_delivered) == ("m-1", 1)
    await msg.ack()
    await _nothing(gateway, POLICE_INGRESS, GATEWAY_CONSUMER)


async def test_duplicate_message_id_returns_the_original_sequence_and_is_stored_once(side):
    """A resend under the same Nats-Msg-Id (a crash and retry) is de-duplicated: the
    sender gets the first publish's sequence and the gateway sees one message."""
    police, gateway = await _ingress(side)
    first = await police.publish(ingress_subject("police"), b"frame", "m-dup")
    again = await police.publish_raw(ingress_subject("police"), b"other", {"Nats-Msg-Id": "m-dup"})
    other = await police.publish(ingress_subject("police"), b"next", "m-next")
    assert again == first
    assert other == first + 1
    msgs = await gateway.pull(POLICE_INGRESS, GATEWAY_CONSUMER).fetch(10, timeout=2.0)
    assert [m.data for m in msgs] == [b"frame", b"next"]


async def test_nak_redelivers_and_counts_deliveries(side):
    """A nak'd message comes back (after its delay, not before) with num_delivered raised."""
    police, gateway = await _ingress(side)
    await police.publish(ingress_subject("police"), b"frame", "m-nak")
    consumer = gateway.pull(POLICE_INGRESS, GATEWAY_CONSUMER)
    [msg] = await consumer.fetch(10, timeout=2.0)
    await msg.nak()
    [again] = await consumer.fetch(10, timeout=2.0)
    assert (again.stream_seq, again.num_delivered) == (msg.stream_seq, 2)
    await again.nak(delay=0.8)
    assert await consumer.fetch(10, timeout=QUIET) == []
    [third] = await consumer.fetch(10, timeout=3.0)
    assert third.num_delivered == 3


async def test_unacked_message_is_redelivered_after_ack_wait(side):
    """A worker that dies holding a message loses it only for ack_wait."""
    police, gateway = await _ingress(side)
    await police.publish(ingress_subject("police"), b"frame", "m-wait")
    consumer = gateway.pull(POLICE_INGRESS, GATEWAY_CONSUMER)
    [msg] = await consumer.fetch(10, timeout=2.0)
    [again] = await consumer.fetch(10, timeout=LIMITS.ack_wait_s + 2.0)
    assert (again.stream_seq, again.num_delivered) == (msg.stream_seq, 2)


async def test_term_stops_redelivery(side):
    """A terminated message is never delivered again, even after ack_wait."""
    police, gateway = await _ingress(side)
    await police.publish(ingress_subject("police"), b"frame", "m-term")
    msg = await _one(gateway, POLICE_INGRESS, GATEWAY_CONSUMER)
    await msg.term()
    await _nothing(gateway, POLICE_INGRESS, GATEWAY_CONSUMER, LIMITS.ack_wait_s + 0.5)


async def test_delivery_stops_after_max_deliver(side):
    """The gateway's consumer gives up on a message after max_deliver attempts."""
    police, gateway = await _ingress(side)
    await police.publish(ingress_subject("police"), b"poison", "m-poison")
    consumer = gateway.pull(POLICE_INGRESS, GATEWAY_CONSUMER)
    for attempt in range(1, LIMITS.max_deliver + 1):
        [msg] = await consumer.fetch(10, timeout=2.0)
        assert msg.num_delivered == attempt
        await msg.nak()
    assert await consumer.fetch(10, timeout=QUIET) == []


async def test_work_queue_removes_acked_messages_and_limits_keeps_them(side):
    """Ingress is a work queue (acked is gone); deliveries stay after the recipient acks."""
    police, gateway = await _ingress(side)
    await police.publish(ingress_subject("police"), b"frame", "m-wq")
    await gateway.publish(deliver_subject("police", "risk.update"), b"sealed", "d-1")
    assert await side.stream_size(POLICE_INGRESS) == 1
    await (await _one(gateway, POLICE_INGRESS, GATEWAY_CONSUMER)).ack()
    await (await _one(police, STREAM_DELIVER, deliver_consumer("police"))).ack()
    await gateway.flush()
    await police.flush()
    await asyncio.sleep(0.1)  # the server applies an ack after the ack message arrives
    assert await side.stream_size(POLICE_INGRESS) == 0
    assert await side.stream_size(STREAM_DELIVER) == 1


async def test_consumers_see_only_their_filter_subjects(side):
    """Police's inbox holds its deliveries only: not DFFH's, and not its own alerts."""
    police, gateway = await _ingress(side)
    await gateway.publish(deliver_subject("dffh", "risk.update"), b"for dffh", "d-dffh")
    await gateway.publish(alert_subject("police", "duty"), b"alert", "a-police")
    await gateway.publish(deliver_subject("police", "risk.update"), b"for police", "d-police")
    assert (await _one(police, STREAM_DELIVER, deliver_consumer("police"))).data == b"for police"
    assert (await _one(police, STREAM_DELIVER, alert_consumer("police"))).data == b"alert"


async def test_core_subscription_sees_what_is_published_on_its_subjects(side):
    """The SDK's receipt subscription hears receipts for its agency as they are published."""
    police, gateway = await _ingress(side)
    heard: list[bytes] = []
    await police.subscribe(receipt_subject("police", ">"), heard.append)
    await gateway.publish(receipt_subject("dffh", "m-1"), b"not mine", "r-dffh")
    await gateway.publish(receipt_subject("police", "m-2"), b"mine", "r-police")
    for _ in range(20):
        if heard:
            break
        await asyncio.sleep(0.05)
    assert heard == [b"mine"]


async def test_pipelined_publishes_are_stored_once_each_in_order(side):
    """The gateway publishes a batch's deliveries pipelined: every one is stored, the
    sequences come back in the order given, and a repeated Nats-Msg-Id (a redelivered batch)
    is stored once and answers the original's sequence."""
    police, gateway = await _ingress(side)
    subject = ingress_subject("police")
    first = await police.publish_many([(subject, b"a", "m-a"), (subject, b"b", "m-b")])
    again = await police.publish_many([(subject, b"b2", "m-b"), (subject, b"c", "m-c")])
    assert first[1] == first[0] + 1
    assert again == [first[1], first[1] + 1]
    msgs = await gateway.pull(POLICE_INGRESS, GATEWAY_CONSUMER).fetch(10, timeout=2.0)
    assert [m.data for m in msgs] == [b"a", b"b", b"c"]


async def test_pipelined_publish_to_a_refused_subject_fails(side, monkeypatch):
    """A pipelined publish the agency may not make is a TransportError, as a single one is
    (on nats-server it is retried alone, which the server refuses at once)."""
    monkeypatch.setattr("broker.nats.client._PIPELINED_ACK_S", 0.5)
    police = await side.user("police")
    items = [(ingress_subject("police"), b"ok", "m-ok"), (ingress_subject("dffh"), b"x", "m-x")]
    with pytest.raises(TransportError, match="permissions violation"):
        await asyncio.wait_for(police.publish_many(items), timeout=6.0)


REFUSALS = {
    "publish into another agency's ingress": lambda c: c.publish(
        ingress_subject("dffh"), b"forged", "m-forged"
    ),
    "publish a log checkpoint": lambda c: c.publish(CHECKPOINT_SUBJECT, b"{}", "cp-forged"),
    "publish a delivery": lambda c: c.publish(deliver_subject("dffh", "x"), b"x", "d-forged"),
    "read another agency's inbox": lambda c: c.pull(STREAM_DELIVER, deliver_consumer("dffh")).fetch(
        1, timeout=2.0
    ),
    "read the gateway's ingress": lambda c: c.pull(POLICE_INGRESS, GATEWAY_CONSUMER).fetch(
        1, timeout=2.0
    ),
    "subscribe to another agency's deliveries": lambda c: c.subscribe(
        deliver_subject("dffh", ">"), lambda _: None
    ),
    "subscribe to another agency's inbox prefix": lambda c: c.subscribe(
        "_INBOX_dffh.>", lambda _: None
    ),
    "manage the streams": lambda c: c.ensure_streams(LIMITS, TWIN_AGENCIES),
}


@pytest.mark.parametrize("what", list(REFUSALS))
async def test_agency_is_refused_what_its_permissions_do_not_allow(side, what):
    """Police trying to step outside its own subjects gets a TransportError at once, not a
    timeout; the broker's isolation holds on the twin as on nats-server."""
    police = await side.user("police")
    with pytest.raises(TransportError, match="permissions violation"):
        await asyncio.wait_for(REFUSALS[what](police), timeout=4.0)


async def test_frame_over_the_stream_limit_is_refused(side):
    """A frame larger than the ingress stream allows never enters it."""
    police, _ = await _ingress(side)
    big = b"x" * (LIMITS.max_frame_bytes + 128 * 1024)
    with pytest.raises(TransportError, match="size exceeds maximum"):
        await police.publish(ingress_subject("police"), big, "m-big")
    assert await side.stream_size(POLICE_INGRESS) == 0


async def test_each_agency_ingress_numbers_in_its_own_range(side):
    """Corrections' first frame is numbered from Corrections' range, not from 1, on the twin
    as on the server: an ingress sequence names one frame across all agencies."""
    corrections, gateway = await side.user("corrections"), await side.user(GATEWAY)
    seq = await corrections.publish(ingress_subject("corrections"), b"frame", "m-c1")
    assert seq == ingress_first_seq("corrections") > 1
    msg = await _one(gateway, ingress_stream("corrections"), GATEWAY_CONSUMER)
    assert msg.stream_seq == seq
