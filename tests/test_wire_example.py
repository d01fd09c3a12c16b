"""The worked example in docs/wire-format.md is real: an independent JOSE library (jwcrypto)
verifies and decrypts it with the documented keys to the documented content, and the
broker's own code accepts it. If the code or the doc drifts, these tests fail."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from jwcrypto import jwe, jwk, jws

from broker.errors import CryptoError, ReasonCode, Refusal
from broker.gateway import steps
from broker.ids import ID_PATTERN
from broker.nats.config import deliver_subject, ingress_subject, receipt_subject
from broker.settings import Settings
from broker.wire.envelope import Agency, Kind, Purpose, Receipt
from broker.wire.jose import b64u_decode
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.sealing import (
    TYP_DELIVERY,
    TYP_INGRESS,
    TYP_RECEIPT,
    open_delivery,
    verify_receipt,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = json.loads((ROOT / "docs" / "examples" / "wire-example.json").read_text())
DOC = (ROOT / "docs" / "wire-format.md").read_text()
MIB = 1024 * 1024


def _directory_jwk(identity: str, use: str) -> dict[str, Any]:
    [key] = [
        k
        for k in EXAMPLE["directory"]["keys"]
        if k["s284_identity"] == identity and k["use"] == use
    ]
    return key


def _private_jwk(identity: str, use: str) -> jwk.JWK:
    [key] = [k for k in EXAMPLE["private_jwks"][identity]["keys"] if k["use"] == use]
    return jwk.JWK(**key)


def _public_jwk(identity: str, use: str) -> jwk.JWK:
    return jwk.JWK(**_directory_jwk(identity, use))


def _jwcrypto_verify(token: str, key: jwk.JWK) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = jws.JWS()
    obj.deserialize(token)
    obj.verify(key, alg="EdDSA")
    return obj.jose_header, json.loads(obj.payload)


def _jwcrypto_decrypt(
    token: str, key: jwk.JWK, alg: str = "ECDH-ES"
) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = jwe.JWE()
    obj.allowed_algs = [alg, "A256GCM"]
    obj.deserialize(token, key=key)
    return obj.jose_header, json.loads(obj.payload)


def _identity(name: str, tmp_path: Path) -> Identity:
    path = tmp_path / f"{name}.jwks.json"
    path.write_text(json.dumps(EXAMPLE["private_jwks"][name]))
    return Identity.load(path)


def _directory() -> KeyDirectory:
    return KeyDirectory.from_jwks(EXAMPLE["directory"])


# -- the ingress frame through an independent JOSE library ------------------------------


def test_ingress_frame_verifies_with_the_documented_sender_key_in_jwcrypto():
    """An agency's own JOSE library verifies the documented ingress frame with the sender's
    public key from the documented directory, and sees the documented header and claims."""
    ing = EXAMPLE["ingress"]
    header, claims = _jwcrypto_verify(ing["frame"], _public_jwk("corrections", "sig"))
    assert (
        header
        == ing["jws_header"]
        == {
            "alg": "EdDSA",
            "kid": _directory_jwk("corrections", "sig")["kid"],
            "typ": TYP_INGRESS,
        }
    )
    assert claims == ing["claims"]
    assert set(claims) == {"s284", "id", "created_at", "agency", "sealed"}
    assert claims["s284"] == 1
    assert claims["agency"] == "corrections"


def test_ingress_frame_does_not_verify_with_another_agencys_key():
    """The example is bound to the sender's key: police's key does not verify it."""
    with pytest.raises(jws.InvalidJWSSignature):
        _jwcrypto_verify(EXAMPLE["ingress"]["frame"], _public_jwk("police", "sig"))


def test_sealed_payload_decrypts_with_the_documented_gateway_key_in_jwcrypto():
    """The `sealed` JWE in the documented claims decrypts with the documented gateway private
    key to exactly the documented envelope and payload, under the documented header."""
    ing = EXAMPLE["ingress"]
    header, content = _jwcrypto_decrypt(ing["claims"]["sealed"], _private_jwk(GATEWAY, "enc"))
    assert header == ing["jwe_header"]
    assert header["alg"] == "ECDH-ES"
    assert header["enc"] == "A256GCM"
    assert header["kid"] == _directory_jwk(GATEWAY, "enc")["kid"]
    assert header["s284_id"] == ing["claims"]["id"]
    assert header["epk"]["kty"] == "OKP"
    assert header["epk"]["crv"] == "X25519"
    assert "apu" not in header
    assert "apv" not in header
    assert content == ing["content"]
    assert content["envelope"]["offender"] == "S284-000123"


def test_sealed_payload_does_not_decrypt_with_the_recipients_key():
    """Ingress is sealed to the gateway only: the recipient agency cannot open it."""
    with pytest.raises(jwe.InvalidJWEData):
        _jwcrypto_decrypt(EXAMPLE["ingress"]["claims"]["sealed"], _private_jwk("police", "enc"))


def test_documented_kdf_intermediates_reproduce_the_plaintext():
    """The documented shared secret and CEK (Concat KDF, AlgorithmID "A256GCM", empty
    apu/apv, 256 bits) are what X25519 + RFC 7518 4.6.2 give, and the CEK opens the JWE:
    an integrator can debug a KDF mismatch step by step against the doc."""
    ing = EXAMPLE["ingress"]
    trace = ing["jwe_trace"]
    protected, enc_key, iv, ciphertext, tag = ing["claims"]["sealed"].split(".")
    assert enc_key == ""
    gateway_d = next(k["d"] for k in EXAMPLE["private_jwks"][GATEWAY]["keys"] if k["use"] == "enc")
    epk = X25519PublicKey.from_public_bytes(b64u_decode(ing["jwe_header"]["epk"]["x"]))
    shared = X25519PrivateKey.from_private_bytes(b64u_decode(gateway_d)).exchange(epk)
    assert shared == b64u_decode(trace["shared_secret_Z_b64u"])
    other = b"".join(
        [
            struct.pack(">I", 7),
            b"A256GCM",
            struct.pack(">I", 0),
            struct.pack(">I", 0),
            struct.pack(">I", 256),
        ]
    )
    cek = hashlib.sha256(struct.pack(">I", 1) + shared + other).digest()
    assert cek == b64u_decode(trace["cek_b64u"])
    assert (trace["aad_ascii"], trace["iv_b64u"], trace["tag_b64u"]) == (protected, iv, tag)
    plaintext = AESGCM(cek).decrypt(
        b64u_decode(iv), b64u_decode(ciphertext) + b64u_decode(tag), protected.encode("ascii")
    )
    assert json.loads(plaintext) == ing["content"]


def test_example_ids_subjects_and_headers_follow_the_documented_rules():
    """Id is a 26-char Crockford ULID whose time part is created_at; the subject is the
    sender's ingress subject; Nats-Msg-Id equals the message id; created_at is RFC 3339 UTC."""
    ing = EXAMPLE["ingress"]
    claims = ing["claims"]
    assert re.fullmatch(ID_PATTERN, claims["id"])
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for char in claims["id"]:
        value = value * 32 + alphabet.index(char)
    created = datetime.fromisoformat(claims["created_at"])
    assert claims["created_at"].endswith("Z")
    assert value >> 80 == int(created.timestamp() * 1000)
    assert ing["subject"] == ingress_subject("corrections") == "s284.ingress.corrections"
    assert ing["headers"] == {"Nats-Msg-Id": claims["id"]}
    env = ing["content"]["envelope"]
    assert (env["id"], env["created_at"], env["sender"]["agency"]) == (
        claims["id"],
        claims["created_at"],
        claims["agency"],
    )
    assert env["kind"] in {k.value for k in Kind}
    assert env["purpose"] in {p.value for p in Purpose}
    assert set(env["recipients"]) <= {a.value for a in Agency}


def test_example_kids_are_rfc7638_thumbprints():
    """Every kid in the example directory is the RFC 7638 thumbprint jwcrypto computes, and
    each private JWK matches its public directory entry."""
    for entry in EXAMPLE["directory"]["keys"]:
        assert jwk.JWK(**entry).thumbprint() == entry["kid"]
        [private] = [
            k
            for k in EXAMPLE["private_jwks"][entry["s284_identity"]]["keys"]
            if k["use"] == entry["use"]
        ]
        assert {k: v for k, v in private.items() if k != "d"} == entry
        assert jwk.JWK(**private).thumbprint() == entry["kid"]


# -- the broker's own code accepts the same frame ---------------------------------------


def test_broker_gateway_steps_accept_the_documented_frame(tmp_path):
    """The gateway's steps 1-4 (frame, authenticate, replay window, open) accept the documented
    frame on the documented subject, with the documented keys, yielding the documented content."""
    ing = EXAMPLE["ingress"]
    limit = Settings().max_frame_bytes
    frame = steps.check_frame(
        steps.ingress_agency(ing["subject"]), ing["frame"].encode("ascii"), limit
    )
    assert frame.agency is Agency.CORRECTIONS
    claims = steps.authenticate(frame, _directory())
    assert claims.id == ing["claims"]["id"]
    stored_at = claims.created_at + timedelta(seconds=40)
    steps.check_replay(claims, stored_at, stream_seq=7, first_seen=None, window_s=300.0)
    content = steps.open_payload(claims, _identity(GATEWAY, tmp_path))
    assert json.loads(content.model_dump_json()) == ing["content"]


def test_documented_frame_on_another_agencys_subject_is_refused():
    """The signing key is bound to corrections: the same frame on police's subject is refused
    with auth.key_agency_mismatch, as the doc says."""
    ing = EXAMPLE["ingress"]
    frame = steps.check_frame(
        steps.ingress_agency(ingress_subject("police")), ing["frame"].encode("ascii"), MIB
    )
    with pytest.raises(Refusal) as info:
        steps.authenticate(frame, _directory())
    assert info.value.code is ReasonCode.AUTH_KEY_AGENCY_MISMATCH


@pytest.mark.parametrize(
    ("offset_s", "first_seen", "code"),
    [
        (301, None, ReasonCode.REPLAY_OUTSIDE_WINDOW),
        (-301, None, ReasonCode.REPLAY_OUTSIDE_WINDOW),
        (0, 3, ReasonCode.REPLAY_DUPLICATE_ID),
    ],
)
def test_documented_replay_rules_hold_for_the_example(offset_s, first_seen, code):
    """The example is refused when stored more than 5 minutes from its created_at (either
    way), and when its id was already carried by another ingress message."""
    ing = EXAMPLE["ingress"]
    frame = steps.check_frame(
        steps.ingress_agency(ing["subject"]), ing["frame"].encode("ascii"), MIB
    )
    claims = steps.authenticate(frame, _directory())
    stored_at = claims.created_at + timedelta(seconds=offset_s)
    with pytest.raises(Refusal) as info:
        steps.check_replay(claims, stored_at, stream_seq=7, first_seen=first_seen, window_s=300.0)
    assert info.value.code is code


def test_default_frame_limit_is_the_documented_one_mib():
    """The documented 1 MiB default limit on a sealed ingress frame is the broker's default,
    and a frame one byte over it is refused with frame.too_large."""
    assert Settings().max_frame_bytes == MIB
    with pytest.raises(Refusal) as info:
        steps.check_frame(
            steps.ingress_agency(ingress_subject("corrections")), b"a" * (MIB + 1), MIB
        )
    assert info.value.code is ReasonCode.FRAME_TOO_LARGE


# -- delivery and receipt ------------------------------------------------------------------


def test_delivery_verifies_decrypts_and_carries_the_senders_frame_in_jwcrypto():
    """A recipient on another stack can do the documented delivery checks: gateway signature,
    `to`, decryption with its own key, and the sender's original signature over `origin`."""
    dlv = EXAMPLE["delivery"]
    header, claims = _jwcrypto_verify(dlv["frame"], _public_jwk(GATEWAY, "sig"))
    assert header == dlv["jws_header"]
    assert header["typ"] == TYP_DELIVERY
    assert claims == dlv["claims"]
    assert claims["to"] == "police"
    assert dlv["subject"] == deliver_subject("police", "risk.update")
    assert dlv["headers"] == {"Nats-Msg-Id": claims["delivery_id"]}
    jwe_header, content = _jwcrypto_decrypt(claims["sealed"], _private_jwk("police", "enc"))
    assert jwe_header == dlv["jwe_header"]
    assert jwe_header["s284_id"] == claims["delivery_id"]
    assert content == dlv["content"]
    assert content["origin"] == EXAMPLE["ingress"]["frame"]
    origin_header, origin_claims = _jwcrypto_verify(
        content["origin"], _public_jwk(content["envelope"]["sender"]["agency"], "sig")
    )
    assert origin_header["typ"] == TYP_INGRESS
    assert origin_claims["id"] == claims["message_id"] == content["envelope"]["id"]


def test_broker_sdk_opens_the_documented_delivery(tmp_path):
    """The broker's SDK opens the documented delivery as police; corrections cannot."""
    frame = EXAMPLE["delivery"]["frame"].encode("ascii")
    item = open_delivery(frame, _identity("police", tmp_path), _directory())
    assert json.loads(item.content.model_dump_json()) == EXAMPLE["delivery"]["content"]
    with pytest.raises(CryptoError):
        open_delivery(frame, _identity("corrections", tmp_path), _directory())


def test_profile_2_delivery_opens_in_jwcrypto_and_the_sdk(tmp_path):
    """The documented profile-2 delivery: jwcrypto, restricted to ECDH-ES+A256KW/A256GCM,
    opens it with police's key alone to the same content; the SDK opens it as police."""
    dlv = EXAMPLE["delivery_v2"]
    _, claims = _jwcrypto_verify(dlv["frame"], _public_jwk(GATEWAY, "sig"))
    assert claims == dlv["claims"]
    jwe_header, content = _jwcrypto_decrypt(
        claims["sealed"], _private_jwk("police", "enc"), "ECDH-ES+A256KW"
    )
    assert jwe_header == dlv["jwe_header"]
    assert jwe_header["alg"] == "ECDH-ES+A256KW"
    assert jwe_header["s284_id"] == claims["delivery_id"]
    assert content == dlv["content"] == EXAMPLE["delivery"]["content"]
    item = open_delivery(dlv["frame"].encode("ascii"), _identity("police", tmp_path), _directory())
    assert json.loads(item.content.model_dump_json()) == dlv["content"]


def test_profile_2_documented_kdf_and_key_wrap_intermediates_reproduce_the_plaintext():
    """The documented Z, KEK (Concat KDF, AlgorithmID "ECDH-ES+A256KW", empty apu/apv, 256
    bits) and CEK (RFC 3394 unwrap of the encrypted key) are what the spec gives, and the
    CEK opens the JWE."""
    dlv = EXAMPLE["delivery_v2"]
    trace = dlv["jwe_trace"]
    protected, enc_key, iv, ciphertext, tag = dlv["claims"]["sealed"].split(".")
    police_d = next(k["d"] for k in EXAMPLE["private_jwks"]["police"]["keys"] if k["use"] == "enc")
    epk = X25519PublicKey.from_public_bytes(b64u_decode(dlv["jwe_header"]["epk"]["x"]))
    shared = X25519PrivateKey.from_private_bytes(b64u_decode(police_d)).exchange(epk)
    assert shared == b64u_decode(trace["shared_secret_Z_b64u"])
    alg_id = b"ECDH-ES+A256KW"
    other = struct.pack(">I", len(alg_id)) + alg_id + struct.pack(">III", 0, 0, 256)
    kek = hashlib.sha256(struct.pack(">I", 1) + shared + other).digest()
    assert kek == b64u_decode(trace["kek_b64u"])
    cek = aes_key_unwrap(kek, b64u_decode(enc_key))
    assert cek == b64u_decode(trace["cek_b64u"])
    assert (trace["encrypted_key_b64u"], trace["iv_b64u"], trace["tag_b64u"]) == (
        enc_key,
        iv,
        tag,
    )
    plain = AESGCM(cek).decrypt(
        b64u_decode(iv), b64u_decode(ciphertext) + b64u_decode(tag), protected.encode("ascii")
    )
    assert json.loads(plain) == dlv["content"]


def test_receipt_verifies_with_the_gateway_key_in_jwcrypto_and_the_sdk():
    """The documented receipt verifies with the gateway's public key in jwcrypto and in the
    SDK, on the documented subject; the documented refusal example is a valid Receipt."""
    rcp = EXAMPLE["receipt"]
    header, claims = _jwcrypto_verify(rcp["frame"], _public_jwk(GATEWAY, "sig"))
    assert header == rcp["jws_header"]
    assert header["typ"] == TYP_RECEIPT
    assert claims == rcp["claims"]
    assert rcp["subject"] == receipt_subject("corrections", claims["message_id"])
    receipt = verify_receipt(rcp["frame"].encode("ascii"), _directory())
    assert receipt.accepted
    refused = Receipt.model_validate(EXAMPLE["refused_receipt_claims"])
    assert refused.status == "refused"
    assert refused.reason in {c.value for c in ReasonCode}


# -- the doc shows exactly this example ----------------------------------------------------


def test_doc_worked_example_is_this_example():
    """docs/wire-format.md shows the same frames, keys and ids as wire-example.json, so the
    prose example cannot silently diverge from the machine-checked one."""
    for token in (
        EXAMPLE["ingress"]["frame"],
        EXAMPLE["ingress"]["claims"]["sealed"],
        EXAMPLE["receipt"]["frame"],
        EXAMPLE["delivery_v2"]["jwe_trace"]["aad_ascii"],
        EXAMPLE["delivery_v2"]["jwe_trace"]["cek_b64u"],
    ):
        assert token in DOC
    for jwks in EXAMPLE["private_jwks"].values():
        for key in jwks["keys"]:
            assert key["d"] in DOC
            assert key["kid"] in DOC
    assert EXAMPLE["ingress"]["claims"]["id"] in DOC
    assert "EXAMPLE ONLY" in DOC
