"""The gateway's lean delivery JSON (broker/wire/lean.py) is byte for byte what the pydantic
models write for the same content, and the libsodium Ed25519/X25519 in broker/wire/jose.py
interoperates with `cryptography`'s (the one jwcrypto uses): issue 14 changed how, not what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from broker.errors import CryptoError
from broker.wire import jose
from broker.wire.envelope import (
    Agency,
    DeliveredContent,
    DeliveryClaims,
    DisclosureDecision,
    Envelope,
    Kind,
    Purpose,
    Sender,
)
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.lean import delivered_content_json, delivery_claims_json, envelope_json
from broker.wire.sealing import (
    DeliverySealer,
    open_delivery,
    seal_delivery,
    seal_delivery_json,
    seal_ingress,
)

PAYLOADS: list[dict[str, Any]] = [
    {},
    {"summary": "Synthetic: reported for supervision on time", "risk_level": "moderate"},
    {"nested": {"list": [1, 2.5, -3e-7, 1e16, True, None, "x"], "deep": [[{"a": []}]]}},
    {"unicode": "Ngā mihi — \u00e9\u4e2d\U0001f600", "quote": 'a "b" \\ c\n\t\u0001'},
    {"big": 2**70, "neg": -(2**63), "float": 0.1 + 0.2, "zero": -0.0},
]
ENVELOPE = Envelope(
    sender=Sender(agency=Agency.CORRECTIONS, unit="cm-north", person_id="E1001", role="cm"),
    kind=Kind.RISK_UPDATE,
    purpose=Purpose.OFFENDER_MANAGEMENT,
    offender="OFF-2042",
    recipients=[Agency.POLICE, Agency.HEALTH],
    justification="Synthetic justification, with ünïcode",
)
DECISIONS = [
    DisclosureDecision(policy_ids=["p1", "p2"], reason="permitted", policy_version="v7"),
    DisclosureDecision(policy_ids=[], reason="r", policy_version="v", review_required=True),
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("decision", DECISIONS)
def test_delivered_content_is_what_the_model_writes(
    payload: dict[str, Any], decision: DisclosureDecision
) -> None:
    withheld = ["notes", "address"]
    model = DeliveredContent(
        envelope=ENVELOPE, payload=payload, withheld=withheld, decision=decision, origin="a.b.c"
    )
    lean = delivered_content_json(
        envelope_json(ENVELOPE), payload, tuple(withheld), decision, "a.b.c"
    )
    assert lean == model.model_dump_json().encode()
    assert DeliveredContent.model_validate_json(lean) == model


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 11, 30, 9, 15, 0, tzinfo=UTC),
        datetime(2026, 11, 30, 9, 15, 0, 120, tzinfo=UTC),
        datetime.now(UTC),
    ],
)
def test_delivery_claims_are_what_the_model_writes(created_at: datetime) -> None:
    claims = DeliveryClaims(
        delivery_id="id.police",
        message_id="01JDQ8ZK3C0000000000000000",
        created_at=created_at,
        to=Agency.POLICE,
        sealed="h..i.c.t",
    )
    lean = delivery_claims_json(
        "id.police", "01JDQ8ZK3C0000000000000000", created_at, Agency.POLICE, "h..i.c.t"
    )
    assert lean == claims.model_dump_json().encode()


def _parties() -> tuple[Identity, Identity, Identity, KeyDirectory]:
    gateway, sender, recipient = (Identity.generate(n) for n in (GATEWAY, "corrections", "police"))
    directory = KeyDirectory.from_jwks(
        {"keys": gateway.public_jwks() + sender.public_jwks() + recipient.public_jwks()}
    )
    return gateway, sender, recipient, directory


def test_the_lean_delivery_opens_like_the_model_one() -> None:
    gateway, sender, recipient, directory = _parties()
    origin = seal_ingress(ENVELOPE, PAYLOADS[1], sender, directory).decode("ascii")
    content = DeliveredContent(
        envelope=ENVELOPE, payload=PAYLOADS[3], withheld=[], decision=DECISIONS[0], origin=origin
    )
    lean = delivered_content_json(envelope_json(ENVELOPE), PAYLOADS[3], (), DECISIONS[0], origin)
    v2 = DeliverySealer(gateway, directory, 2)  # JOSE profile v2: the same content inside
    for frame in (
        seal_delivery("d.police", Agency.POLICE, content, gateway, directory),
        seal_delivery_json("d.police", Agency.POLICE, ENVELOPE.id, lean, gateway, directory),
        seal_delivery("d.police", Agency.POLICE, content, gateway, directory, profile=2),
        v2.seal("d.police", Agency.POLICE, ENVELOPE.id, lean),
        v2.seal("d.police", Agency.POLICE, ENVELOPE.id, lean),
    ):
        opened = open_delivery(frame, recipient, directory)
        assert opened.content == content
        assert opened.payload == PAYLOADS[3]


def test_libsodium_and_openssl_ed25519_agree() -> None:
    key = Ed25519PrivateKey.generate()
    token = jose.jws_sign(b'{"a":1}', key, "kid-1", "t+jws")
    head, body, sig = token.split(".")
    # libsodium's signature verifies with OpenSSL's Ed25519 (deterministic: the same bytes)
    key.public_key().verify(jose.b64u_decode(sig), f"{head}.{body}".encode())
    assert jose.b64u_decode(sig) == key.sign(f"{head}.{body}".encode())
    assert jose.jws_verify(token, key.public_key()) == b'{"a":1}'
    # and the other way round; a flipped bit, a short or a long signature fail closed
    other = f"{head}.{body}.{jose.b64u(key.sign(f'{head}.{body}'.encode()))}"
    assert jose.jws_verify(other, key.public_key()) == b'{"a":1}'
    raw = bytearray(jose.b64u_decode(sig))
    raw[5] ^= 1
    for bad in (bytes(raw), bytes(raw[:63]), bytes(raw) + b"\0", b""):
        with pytest.raises(CryptoError):
            jose.jws_verify(f"{head}.{body}.{jose.b64u(bad)}", key.public_key())
    with pytest.raises(CryptoError):
        jose.jws_verify(token, Ed25519PrivateKey.generate().public_key())


def test_libsodium_ephemeral_key_decrypts_with_openssl_x25519() -> None:
    recipient = X25519PrivateKey.generate()
    token = jose.jwe_encrypt(b"synthetic", recipient.public_key(), "kid-2", {"s284_id": "m1"})
    header, plaintext = jose.jwe_open(token, recipient)
    assert plaintext == b"synthetic"
    assert header["s284_id"] == "m1"
    assert header["epk"]["x"] != jose.b64u(jose.raw_public(recipient.public_key()))
    with pytest.raises(CryptoError):
        jose.jwe_open(token, X25519PrivateKey.generate())


@pytest.mark.parametrize(
    "segment",
    ["ab+c", "ab/c", "abc=", "ab c", "ab\nc", "abcé", "a", "abcde", "ab.c", "YQ==", "\x00\x00"],
)
def test_a_segment_outside_unpadded_base64url_is_refused(segment: str) -> None:
    with pytest.raises(CryptoError):
        jose.b64u_decode(segment)


def test_unpadded_base64url_round_trips() -> None:
    for n in range(70):
        data = bytes(range(256))[n : n * 3]
        assert jose.b64u_decode(jose.b64u(data)) == data
