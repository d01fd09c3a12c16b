"""The in-memory twin's own rules, below what the transport contract can reach quickly:
NATS subject matching, the permission table, the duplicate window's end."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from broker.nats.config import ADMIN, ingress_stream, ingress_subject
from broker.nats.permissions import pattern_covers, permissions_for, subject_matches
from broker.nats.streams import stream_specs
from broker.nats.transport import StreamLimits
from broker.nats.twin import MemoryNats
from broker.wire.keys import GATEWAY

LIMITS = StreamLimits(max_frame_bytes=1024, ack_wait_s=1.0, max_deliver=2)


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("s284.ingress.*", "s284.ingress.police", True),
        ("s284.ingress.*", "s284.ingress.police.x", False),
        ("s284.ingress.*", "s284.ingress", False),
        ("s284.deliver.>", "s284.deliver.police.risk.update", True),
        ("s284.deliver.>", "s284.deliver", False),
        ("s284.receipt.police.>", "s284.receipt.dffh.m-1", False),
        ("s284.checkpoint", "s284.checkpoint", True),
    ],
)
def test_subjects_match_as_in_nats(pattern, subject, matches):
    """`*` takes one token and `>` one or more, as nats-server matches them."""
    assert subject_matches(pattern, subject) is matches


@pytest.mark.parametrize(
    ("allowed", "wanted", "covered"),
    [
        ("s284.receipt.police.>", "s284.receipt.police.>", True),
        ("s284.receipt.police.>", "s284.receipt.police.m-1", True),
        ("s284.receipt.police.>", "s284.receipt.*.>", False),
        ("s284.receipt.police.>", "s284.receipt.>", False),
        ("_INBOX_police.>", "_INBOX_police.abc.*", True),
    ],
)
def test_a_subscription_is_allowed_only_within_the_permitted_subjects(allowed, wanted, covered):
    """A wildcard subscription wider than what the user may read is refused whole."""
    assert pattern_covers(allowed, wanted) is covered


def test_the_permission_table_keeps_the_isolation_rules():
    """An agency publishes only on its own ingress and reads only its own consumers; only
    the gateway acks ingress; only the admin identity manages streams."""
    police, gateway = permissions_for("police"), permissions_for(GATEWAY)
    ingress = ingress_stream("police")
    assert police.may_publish(ingress_subject("police"))
    assert not police.may_publish(ingress_subject("dffh"))
    assert not police.may_publish("s284.deliver.police.risk.update")
    assert not police.manage_streams
    assert not police.may_pull(ingress, "gateway")
    assert gateway.may_ack(ingress, "gateway")
    assert not gateway.may_publish(ingress_subject("police"))
    assert not gateway.manage_streams
    assert permissions_for(ADMIN).manage_streams


async def test_a_duplicate_after_the_window_is_stored_again():
    """Nats-Msg-Id de-duplication holds within the stream's window only, as in JetStream."""
    server = MemoryNats()
    await server.connect(ADMIN).ensure_streams(LIMITS, ["police"])
    ingress = server._streams[ingress_stream("police")]
    spec = stream_specs(LIMITS, ["police"])[0]
    ingress.spec = dataclasses.replace(spec, duplicate_window_s=0.05)
    police = server.connect("police")
    first = await police.publish(ingress_subject("police"), b"a", "m-1")
    assert await police.publish(ingress_subject("police"), b"a", "m-1") == first
    await asyncio.sleep(0.1)
    assert await police.publish(ingress_subject("police"), b"a", "m-1") == first + 1


async def test_a_closed_connection_refuses_everything():
    """After close, a publish fails with a TransportError rather than vanishing."""
    from broker.errors import TransportError

    police = MemoryNats().connect("police")
    await police.close()
    assert not police.is_connected
    with pytest.raises(TransportError, match="closed"):
        await police.publish(ingress_subject("police"), b"a", "m-1")
