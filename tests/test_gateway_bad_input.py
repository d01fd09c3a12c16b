"""Bad input against the gateway: each refused with a reason the sender receives, recorded
in the audit log, nothing delivered, and the gateway keeps running. (Gateway logic: on the
in-memory twin of NATS, held to nats-server's behaviour by tests/test_transport_contract.py.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from audit import AuditStore
from broker.sdk import AgencyClient
from broker.wire.keys import Identity
from tests.frames import craft, envelope_dict, fresh_id, stale_created_at
from tests.twin import TwinDeployment

Case = Callable[[TwinDeployment], tuple[str, bytes]]


def _me(dep: TwinDeployment) -> Identity:
    return dep.home.identity("corrections")


def _signed(dep: TwinDeployment, **kw: object) -> tuple[str, bytes]:
    return craft(_me(dep), dep.home.directory(), **kw)  # type: ignore[arg-type]


def _bad_signature(dep: TwinDeployment) -> tuple[str, bytes]:
    mid, frame = _signed(dep)
    head, body, sig = frame.decode().split(".")
    flipped = "A" if sig[5] != "A" else "B"
    return mid, f"{head}.{body}.{sig[:5]}{flipped}{sig[6:]}".encode()


def _env(**overrides: object) -> dict[str, object]:
    return envelope_dict(**overrides)


def _missing_field() -> dict[str, object]:
    env = _env()
    del env["offender"]
    return env


CASES: dict[str, tuple[Case, str]] = {
    "not JSON": (lambda dep: (fresh_id(), b"this is not json at all"), "frame.malformed"),
    "JSON that is not an envelope": (
        lambda dep: (fresh_id(), b'{"hello": "world"}'),
        "frame.malformed",
    ),
    "signed claims that are not an envelope": (
        lambda dep: _signed(dep, claims_override={"sealed": 42, "extra": True}),
        "envelope.invalid",
    ),
    "missing field": (lambda dep: _signed(dep, envelope=_missing_field()), "envelope.invalid"),
    "unknown field": (lambda dep: _signed(dep, envelope=_env(nickname="x")), "envelope.invalid"),
    "unknown kind": (
        lambda dep: _signed(dep, envelope=_env(kind="gossip")),
        "envelope.unknown_kind",
    ),
    "unknown purpose": (
        lambda dep: _signed(dep, envelope=_env(purpose="general_interest")),
        "envelope.unknown_purpose",
    ),
    "payload over the limit": (
        lambda dep: _signed(dep, payload={"blob": "x" * 600_000}),
        "frame.too_large",
    ),
    "invalid signature": (_bad_signature, "auth.bad_signature"),
    "signed with another agency's key": (
        lambda dep: craft(dep.home.identity("police"), dep.home.directory(), agency="corrections"),
        "auth.key_agency_mismatch",
    ),
    "unknown key id": (
        lambda dep: craft(Identity.generate("corrections"), dep.home.directory()),
        "auth.unknown_key",
    ),
    "created-at outside the window": (
        lambda dep: _signed(dep, envelope=_env(created_at=stale_created_at())),
        "replay.outside_window",
    ),
    "payload that does not decrypt": (
        lambda dep: _signed(dep, seal_to="police"),
        "seal.undecryptable",
    ),
    "unknown recipient": (
        lambda dep: _signed(dep, envelope=_env(recipients=["police", "ministry_of_magic"])),
        "recipient.unknown",
    ),
}


async def _refused(
    client: AgencyClient, mid: str, frame: bytes, nats_msg_id: str | None = None
) -> tuple[str | None, str | None]:
    await client.publish_unchecked(frame, {"Nats-Msg-Id": nats_msg_id or mid})
    receipt = await client.receipt(mid, timeout=10)
    assert receipt.status == "refused"
    return receipt.reason, receipt.detail


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_recorded_and_not_delivered(twin_deployment, twin_gateway, case):
    """The sender gets a signed receipt with the documented reason code and a sentence; the
    refusal is in the audit log; the recipient gets nothing; the next good message still flows."""
    build, expected = CASES[case]
    mid, frame = build(twin_deployment)
    async with await twin_deployment.client("corrections") as sender:
        reason, detail = await _refused(sender, mid, frame)
        assert reason == expected
        assert detail
        good = await sender.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000124",
            to=["police"],
            payload={"ok": True},
        )
        assert good.accepted
    store = AuditStore.open(twin_deployment.settings.database_url)
    refusals = [r for r in store.records() if r["event"] == "refused"]
    assert [r["reason_code"] for r in refusals] == [expected]
    async with await twin_deployment.client("police") as police:
        delivered = [d.envelope.id async for d in police.inbox()]
    assert delivered == [good.message_id]


async def test_replayed_message_id_is_refused(twin_deployment, twin_gateway):
    """Re-publishing an accepted frame under a new Nats-Msg-Id is refused as a replay and
    delivered only once."""
    mid, frame = _signed(twin_deployment)
    async with await twin_deployment.client("corrections") as sender:
        await sender.publish_frame(frame, mid)
        assert (await sender.receipt(mid, timeout=10)).accepted
        # An attacker replays the captured bytes under a new Nats-Msg-Id, defeating
        # JetStream's de-duplication; the gateway's replay window must catch it.
        reason, _ = await _refused(sender, mid, frame, nats_msg_id=fresh_id())
    assert reason == "replay.duplicate_id"
    async with await twin_deployment.client("police") as police:
        assert [d.envelope.id async for d in police.inbox()] == [mid]


async def test_frame_beyond_the_stream_limit_is_refused_at_publish(twin_deployment, twin_gateway):
    """A frame far over the limit never enters JetStream: the sender's publish fails at once
    with a clear error naming the size problem."""
    from broker.errors import TransportError

    mid, frame = _signed(twin_deployment, payload={"blob": "x" * 2_000_000})
    async with await twin_deployment.client("corrections") as sender:
        with pytest.raises(TransportError, match="size exceeds maximum"):
            await sender.publish_frame(frame, mid)
