# ruff: noqa: INP001 - a stand-alone script beside the docs, not a package
"""Generate the worked example of docs/wire-format.md.

EXAMPLE ONLY. Every key below is derived from a public, fixed seed and every value is
invented (the offender reference S284-000123 is synthetic). Never use these keys for
anything but checking a JOSE library against this example.

    python docs/examples/make_wire_example.py \
        --json docs/examples/wire-example.json --doc docs/wire-format.md

prints the human-readable example, pastes it into docs/wire-format.md between the
GENERATED EXAMPLE markers, and writes the machine-readable one that
tests/test_wire_example.py checks with jwcrypto. The keys, ids, timestamps, claims and
content are the same on every run; the JWE's ephemeral key, IV and ciphertext (and so
the signatures over them) are fresh each run, so the doc and the JSON must be
regenerated together (that test checks they were).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from broker.nats.config import deliver_subject, ingress_subject, receipt_subject
from broker.wire.envelope import (
    Agency,
    DeliveredContent,
    DeliveryRef,
    DisclosureDecision,
    Envelope,
    Kind,
    Purpose,
    Receipt,
    Sender,
    delivery_id_for,
)
from broker.wire.jose import b64u, b64u_decode
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.sealing import seal_delivery, seal_ingress, sign_receipt

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CREATED_AT = datetime(2026, 11, 2, 23, 15, 42, 318000, tzinfo=UTC)
DECIDED_AT = datetime(2026, 11, 2, 23, 15, 42, 911000, tzinfo=UTC)
ID_RANDOM_BITS = 0x5EED_0000_2840_0012_3456  # fixed, so the example id is stable


def example_id(at: datetime, random80: int) -> str:
    """ULID layout: 48-bit Unix time in ms, then 80 random bits, as 26 Crockford base32."""
    value = (int(at.timestamp() * 1000) << 80) | random80
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def example_identity(name: str) -> Identity:
    """Keys from a public seed: reproducible, and therefore worthless as secrets."""

    def seed(use: str) -> bytes:
        return hashlib.sha256(f"s284 wire-format example only: {name} {use}".encode()).digest()

    return Identity(
        name,
        Ed25519PrivateKey.from_private_bytes(seed("sig")),
        X25519PrivateKey.from_private_bytes(seed("enc")),
    )


def decode_compact(token: str) -> tuple[dict[str, Any], list[str]]:
    parts = token.split(".")
    return json.loads(b64u_decode(parts[0])), parts


def concat_kdf_a256gcm(shared: bytes, alg_id: bytes = b"A256GCM") -> bytes:
    """RFC 7518 4.6.2 by hand: one SHA-256 round over counter || Z || OtherInfo (AlgorithmID
    is the enc value for ECDH-ES, the alg value for ECDH-ES+A256KW)."""
    other_info = (
        struct.pack(">I", len(alg_id))
        + alg_id
        + struct.pack(">I", 0)  # PartyUInfo: empty (no apu)
        + struct.pack(">I", 0)  # PartyVInfo: empty (no apv)
        + struct.pack(">I", 256)  # SuppPubInfo: key length in bits
    )
    return hashlib.sha256(struct.pack(">I", 1) + shared + other_info).digest()


def jwe_trace(token: str, recipient: X25519PrivateKey) -> dict[str, str]:
    """The intermediate values a recipient computes, for debugging another implementation."""
    header, parts = decode_compact(token)
    epk = X25519PublicKey.from_public_bytes(b64u_decode(header["epk"]["x"]))
    shared = recipient.exchange(epk)
    return {
        "aad_ascii": parts[0],
        "shared_secret_Z_b64u": b64u(shared),
        "cek_b64u": b64u(concat_kdf_a256gcm(shared)),
        "iv_b64u": parts[2],
        "tag_b64u": parts[4],
    }


def jwe_trace_v2(token: str, recipient: X25519PrivateKey) -> dict[str, str]:
    """Profile 2 (ECDH-ES+A256KW): the agreement gives the KEK, which unwraps the CEK."""
    header, parts = decode_compact(token)
    epk = X25519PublicKey.from_public_bytes(b64u_decode(header["epk"]["x"]))
    shared = recipient.exchange(epk)
    kek = concat_kdf_a256gcm(shared, header["alg"].encode())
    return {
        "aad_ascii": parts[0],
        "shared_secret_Z_b64u": b64u(shared),
        "kek_b64u": b64u(kek),
        "encrypted_key_b64u": parts[1],
        "cek_b64u": b64u(aes_key_unwrap(kek, b64u_decode(parts[1]))),
        "iv_b64u": parts[2],
        "tag_b64u": parts[4],
    }


def build() -> dict[str, Any]:
    gateway = example_identity(GATEWAY)
    corrections = example_identity(Agency.CORRECTIONS.value)
    police = example_identity(Agency.POLICE.value)
    identities = [gateway, corrections, police]
    directory_jwks = {"keys": [jwk for i in identities for jwk in i.public_jwks()]}
    directory = KeyDirectory.from_jwks(directory_jwks)

    message_id = example_id(CREATED_AT, ID_RANDOM_BITS)
    envelope = Envelope(
        id=message_id,
        created_at=CREATED_AT,
        sender=Sender(
            agency=Agency.CORRECTIONS,
            unit="ccs-north-west",
            person_id="staff-0042",
            role="case_manager",
        ),
        kind=Kind.RISK_UPDATE,
        purpose=Purpose.OFFENDER_MANAGEMENT,
        offender="S284-000123",
        recipients=[Agency.POLICE],
        correlation_id=None,
    )
    payload = {
        "risk_level": "elevated",
        "previous_level": "moderate",
        "assessed_on": "2026-11-02",
        "summary": "SYNTHETIC EXAMPLE. Missed two scheduled reporting appointments; "
        "reported change of address not yet verified.",
        "next_review_on": "2026-11-16",
    }
    ingress = seal_ingress(envelope, payload, corrections, directory).decode("ascii")
    ingress_header, ingress_parts = decode_compact(ingress)
    ingress_claims = json.loads(b64u_decode(ingress_parts[1]))
    sealed_header, _ = decode_compact(ingress_claims["sealed"])
    sealed_content = {"envelope": json.loads(envelope.model_dump_json()), "payload": payload}

    delivery_id = delivery_id_for(message_id, Agency.POLICE)
    delivered = DeliveredContent(
        envelope=envelope,
        payload=payload,
        withheld=[],
        decision=DisclosureDecision(
            policy_ids=["example-permit"],
            reason="EXAMPLE: risk.update permitted for offender_management",
            policy_version="example-policy-v1",
        ),
        origin=ingress,
    )
    delivery = seal_delivery(delivery_id, Agency.POLICE, delivered, gateway, directory)
    delivery = delivery.decode("ascii")
    delivery_header, delivery_parts = decode_compact(delivery)
    delivery_claims = json.loads(b64u_decode(delivery_parts[1]))
    delivery_sealed_header, _ = decode_compact(delivery_claims["sealed"])
    delivery_v2 = seal_delivery(
        delivery_id, Agency.POLICE, delivered, gateway, directory, profile=2
    ).decode("ascii")
    delivery_v2_header, delivery_v2_parts = decode_compact(delivery_v2)
    delivery_v2_claims = json.loads(b64u_decode(delivery_v2_parts[1]))
    delivery_v2_sealed = delivery_v2_claims["sealed"]

    receipt_model = Receipt(
        message_id=message_id,
        status="accepted",
        deliveries=[DeliveryRef(delivery_id=delivery_id, recipient=Agency.POLICE)],
        decided_at=DECIDED_AT,
        policy_version="example-policy-v1",
    )
    receipt = sign_receipt(receipt_model, gateway).decode("ascii")
    receipt_header, receipt_parts = decode_compact(receipt)
    refused = Receipt(
        message_id=message_id,
        status="refused",
        reason="policy.denied",
        detail="disclosure to police: no rule permits csp.update for purpose consent "
        "(default deny)",
        decided_at=DECIDED_AT,
        policy_version="example-policy-v1",
    )

    return {
        "_comment": "EXAMPLE ONLY: synthetic keys from public seeds and invented data. "
        "Generated by docs/examples/make_wire_example.py; see docs/wire-format.md.",
        "private_jwks": {i.name: i.private_jwks() for i in identities},
        "directory": directory_jwks,
        "ingress": {
            "subject": ingress_subject(Agency.CORRECTIONS.value),
            "headers": {"Nats-Msg-Id": message_id},
            "frame": ingress,
            "jws_header": ingress_header,
            "claims": ingress_claims,
            "jwe_header": sealed_header,
            "content": sealed_content,
            "jwe_trace": jwe_trace(ingress_claims["sealed"], gateway.encryption),
        },
        "delivery": {
            "subject": deliver_subject(Agency.POLICE.value, Kind.RISK_UPDATE.value),
            "headers": {"Nats-Msg-Id": delivery_id},
            "frame": delivery,
            "jws_header": delivery_header,
            "claims": delivery_claims,
            "jwe_header": delivery_sealed_header,
            "content": json.loads(delivered.model_dump_json()),
        },
        "delivery_v2": {
            "subject": deliver_subject(Agency.POLICE.value, Kind.RISK_UPDATE.value),
            "headers": {"Nats-Msg-Id": delivery_id},
            "frame": delivery_v2,
            "jws_header": delivery_v2_header,
            "claims": delivery_v2_claims,
            "jwe_header": decode_compact(delivery_v2_sealed)[0],
            "content": json.loads(delivered.model_dump_json()),
            "jwe_trace": jwe_trace_v2(delivery_v2_sealed, police.encryption),
        },
        "receipt": {
            "subject": receipt_subject(Agency.CORRECTIONS.value, message_id),
            "frame": receipt,
            "jws_header": receipt_header,
            "claims": json.loads(b64u_decode(receipt_parts[1])),
        },
        "refused_receipt_claims": json.loads(refused.model_dump_json()),
    }


def _pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2)


def render(ex: dict[str, Any]) -> str:
    ing, dlv, rcp = ex["ingress"], ex["delivery"], ex["receipt"]
    claims_short = {**ing["claims"], "sealed": "<the JWE below>"}
    dlv_claims_short = {**dlv["claims"], "sealed": "<JWE(police), see the JSON file>"}
    dlv_content_short = {**dlv["content"], "origin": "<the ingress frame above, verbatim>"}
    out = [
        "=== EXAMPLE ONLY: synthetic keys from public seeds; never use them ===",
        "",
        "--- private JWK sets (EXAMPLE ONLY) ---",
    ]
    for name, jwks in ex["private_jwks"].items():
        out += [f"# {name}", _pretty(jwks)]
    out += [
        "",
        "--- key directory (public JWK set) ---",
        _pretty(ex["directory"]),
        "",
        "--- 1. ingress ---",
        f"NATS subject : {ing['subject']}",
        f"Nats-Msg-Id  : {ing['headers']['Nats-Msg-Id']}",
        "JWS protected header:",
        _pretty(ing["jws_header"]),
        "JWS payload (IngressClaims):",
        _pretty(claims_short),
        "JWE protected header (claims.sealed):",
        _pretty(ing["jwe_header"]),
        "JWE plaintext (SealedContent):",
        _pretty(ing["content"]),
        "JWE intermediate values at the gateway (EXAMPLE ONLY):",
        _pretty(ing["jwe_trace"]),
        "claims.sealed (JWE compact):",
        ing["claims"]["sealed"],
        "ingress frame (JWS compact, the NATS message body):",
        ing["frame"],
        "",
        "--- 2. delivery (to police) ---",
        f"NATS subject : {dlv['subject']}",
        f"Nats-Msg-Id  : {dlv['headers']['Nats-Msg-Id']}",
        "JWS protected header:",
        _pretty(dlv["jws_header"]),
        "JWS payload (DeliveryClaims):",
        _pretty(dlv_claims_short),
        "JWE protected header (claims.sealed):",
        _pretty(dlv["jwe_header"]),
        "JWE plaintext (DeliveredContent):",
        _pretty(dlv_content_short),
        "",
        "--- 2b. the same delivery in JOSE profile 2 (what the gateway sends by default) ---",
        "JWE protected header (claims.sealed):",
        _pretty(ex["delivery_v2"]["jwe_header"]),
        "JWE intermediate values at police (EXAMPLE ONLY):",
        _pretty(ex["delivery_v2"]["jwe_trace"]),
        "",
        "--- 3. receipt (to corrections) ---",
        f"NATS subject : {rcp['subject']}",
        "JWS protected header:",
        _pretty(rcp["jws_header"]),
        "JWS payload (Receipt):",
        _pretty(rcp["claims"]),
        "receipt frame (JWS compact):",
        rcp["frame"],
        "a refusal's Receipt payload looks like:",
        _pretty(ex["refused_receipt_claims"]),
    ]
    return "\n".join(out) + "\n"


BEGIN_MARK = "<!-- BEGIN GENERATED EXAMPLE -->\n"
END_MARK = "<!-- END GENERATED EXAMPLE -->"


def paste_into(doc: Path, text: str) -> None:
    """Replace what lies between the markers in `doc` with `text` in a code block."""
    markdown = doc.read_text()
    start = markdown.index(BEGIN_MARK) + len(BEGIN_MARK)
    end = markdown.index(END_MARK, start)
    doc.write_text(f"{markdown[:start]}```text\n{text}```\n{markdown[end:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the machine-readable example")
    parser.add_argument("--doc", type=Path, help="also paste the example into this markdown")
    args = parser.parse_args(argv)
    example = build()
    text = render(example)
    if args.json is not None:
        args.json.write_text(json.dumps(example, indent=2) + "\n")
    if args.doc is not None:
        paste_into(args.doc, text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
