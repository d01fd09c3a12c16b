"""`Settings.delivery_profile` on the running gateway (on the in-memory twin of NATS): the
gateway accepts a sender's profile-1 (ECDH-ES) ingress and seals each delivery in the
profile the operator chose, and the recipient's SDK opens either; a sender may also seal
its ingress in profile 2 (docs/wire-format.md section 2.3)."""

from __future__ import annotations

import json

import pytest

from broker.errors import ReasonCode, Refusal
from broker.gateway import steps
from broker.nats.config import STREAM_DELIVER
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import (
    Agency,
    Envelope,
    IngressClaims,
    Kind,
    Purpose,
    SealedContent,
    Sender,
    delivery_id_for,
)
from broker.wire.jose import KeyWrapper, b64u, b64u_decode, jwe_encrypt, jwe_unverified_header
from broker.wire.keys import GATEWAY, Identity
from tests.twin import TwinDeployment


async def _send(dep: TwinDeployment) -> str:
    sender = await dep.client("corrections")
    try:
        receipt = await sender.send(
            kind="risk.update", purpose="offender_management", offender="S284-000123",
            to=["police"], payload={"risk_level": "high", "summary": "synthetic"},
        )  # fmt: skip
    finally:
        await sender.close()
    assert receipt.accepted
    assert receipt.message_id is not None
    return receipt.message_id


async def _drain(client: AgencyClient) -> list[str]:
    return [item.delivery_id async for item in client.inbox(idle_timeout=0.3)]


def _sealed_header(frame: bytes) -> dict[str, object]:
    claims = json.loads(b64u_decode(frame.decode("ascii").split(".")[1]))
    return jwe_unverified_header(claims["sealed"])


@pytest.mark.parametrize(("profile", "alg"), [(1, "ECDH-ES"), (2, "ECDH-ES+A256KW")])
async def test_deliveries_are_sealed_in_the_configured_profile(twin_deployment, profile, alg):
    """A v1 ingress is accepted; police's delivery carries the configured JWE alg and its
    SDK opens it."""
    dep = twin_deployment
    settings = dep.settings.model_copy(update={"delivery_profile": profile})
    async with dep.gateway(settings=settings):
        mid = await _send(dep)
        police = await dep.client("police")
        try:
            assert await _drain(police) == [delivery_id_for(mid, Agency.POLICE)]
        finally:
            await police.close()
    frame = dep.nats.last_message(STREAM_DELIVER, "s284.deliver.police.>")
    assert frame is not None
    assert _sealed_header(frame)["alg"] == alg


async def test_each_batch_makes_its_own_ephemeral_key(twin_deployment):
    """Two messages sent one after the other (each waits for its receipt, so they are two
    gateway batches): police's two profile-2 deliveries carry different `epk`s."""
    dep = twin_deployment
    epks = []
    async with dep.gateway():
        for _ in range(2):
            await _send(dep)  # the delivery is published before the receipt
            frame = dep.nats.last_message(STREAM_DELIVER, "s284.deliver.police.>")
            assert frame is not None
            epks.append(_sealed_header(frame)["epk"])
    assert epks[0] != epks[1]


def test_the_default_profile_is_2(monkeypatch):
    """Recipients on this SDK open both profiles, so the default is the cheaper one; the
    environment selects profile 1."""
    monkeypatch.delenv("S284_DELIVERY_PROFILE", raising=False)
    assert Settings().delivery_profile == 2
    monkeypatch.setenv("S284_DELIVERY_PROFILE", "1")
    assert Settings().delivery_profile == 1


def _ingress_claims(gateway: Identity, alg_profile: int) -> tuple[IngressClaims, SealedContent]:
    env = Envelope(
        sender=Sender(agency=Agency.CORRECTIONS, unit="north", person_id="E1", role="cm"),
        kind=Kind.RISK_UPDATE,
        purpose=Purpose.OFFENDER_MANAGEMENT,
        offender="S284-000123",
        recipients=[Agency.POLICE],
    )
    content = SealedContent(envelope=env, payload={"risk_level": "high"})
    plain = content.model_dump_json().encode()
    key, kid = gateway.encryption.public_key(), gateway.enc_kid
    sealed = (
        jwe_encrypt(plain, key, kid, {"s284_id": env.id})
        if alg_profile == 1
        else KeyWrapper(key, kid).encrypt(plain, env.id)
    )
    claims = IngressClaims(
        id=env.id, created_at=env.created_at, agency=env.sender.agency, sealed=sealed
    )
    return claims, content


@pytest.mark.parametrize("profile", [1, 2])
def test_the_gateway_opens_a_senders_ingress_in_either_profile(profile):
    """Step 4 opens a sender's payload sealed in profile 1 (what the SDK sends) or 2."""
    gateway = Identity.generate(GATEWAY)
    claims, content = _ingress_claims(gateway, profile)
    assert steps.open_payload(claims, gateway) == content


def test_the_gateway_refuses_an_ingress_with_a_tampered_wrapped_key():
    """A profile-2 ingress whose wrapped key was altered is `seal.undecryptable`."""
    gateway = Identity.generate(GATEWAY)
    claims, _ = _ingress_claims(gateway, 2)
    parts = claims.sealed.split(".")
    wrapped = bytearray(b64u_decode(parts[1]))
    wrapped[0] ^= 1
    parts[1] = b64u(bytes(wrapped))
    with pytest.raises(Refusal) as refused:
        steps.open_payload(claims.model_copy(update={"sealed": ".".join(parts)}), gateway)
    assert refused.value.code == ReasonCode.SEAL_UNDECRYPTABLE
