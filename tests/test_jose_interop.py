"""broker.wire.jose against jwcrypto, an independent JOSE implementation, in both directions.

What this proves for an agency integrating with its own JOSE library: tokens the broker
makes are standard JWS (EdDSA/Ed25519) and JWE (ECDH-ES/X25519, A256GCM) that another
library verifies and decrypts; tokens another library makes in that profile are accepted;
anything outside the profile, or tampered with, is refused with CryptoError. Profile 2
(ECDH-ES+A256KW) is held to jwcrypto the same way in tests/test_jose_profile_v2.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode

from broker.errors import CryptoError
from broker.wire import jose
from broker.wire.jose import b64u, b64u_decode
from broker.wire.keys import Identity

PAYLOAD = json.dumps({"offender": "S284-000123", "note": "synthetic test data"}).encode()


@pytest.fixture(scope="module")
def me() -> Identity:
    return Identity.generate("police")


@pytest.fixture(scope="module")
def other() -> Identity:
    return Identity.generate("dffh")


def _jwk(identity: Identity, use: str, *, private: bool) -> jwk.JWK:
    keys = identity.private_jwks()["keys"] if private else identity.public_jwks()
    [key] = [k for k in keys if k["use"] == use]
    return jwk.JWK(**key)


def _jwcrypto_jws(identity: Identity, header: dict[str, object], payload: bytes = PAYLOAD) -> str:
    token = jws.JWS(payload)
    token.add_signature(_jwk(identity, "sig", private=True), None, json_encode(header))
    return token.serialize(compact=True)


def _jwcrypto_jwe(key: jwk.JWK, header: dict[str, object], payload: bytes = PAYLOAD) -> str:
    token = jwe.JWE(payload, json_encode(header))
    token.add_recipient(key)
    return token.serialize(compact=True)


def _ed25519_jws(key: Ed25519PrivateKey, header: dict[str, object], payload: bytes) -> str:
    """A correctly signed JWS with an arbitrary header, bypassing every library's checks."""
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(payload)}"
    return f"{signing_input}.{b64u(key.sign(signing_input.encode()))}"


def _replace(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def _flip(segment: str, position: int = 3) -> str:
    """The same segment with one bit of its decoded bytes flipped."""
    raw = bytearray(b64u_decode(segment))
    raw[position] ^= 0x01
    return b64u(bytes(raw))


# -- broker -> jwcrypto ------------------------------------------------------------------


def test_broker_jws_verifies_in_jwcrypto(me):
    """A JWS signed by the broker verifies in jwcrypto with the public JWK from the directory,
    and carries exactly the documented header: alg EdDSA, kid = thumbprint, typ."""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "s284-test+jws")
    obj = jws.JWS()
    obj.deserialize(token)
    obj.verify(_jwk(me, "sig", private=False), alg="EdDSA")
    assert obj.payload == PAYLOAD
    assert obj.jose_header == {"alg": "EdDSA", "kid": me.sig_kid, "typ": "s284-test+jws"}


def test_broker_jws_does_not_verify_in_jwcrypto_with_another_key(me, other):
    """jwcrypto refuses a broker JWS under a different agency's key (the signature is real)."""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "s284-test+jws")
    obj = jws.JWS()
    obj.deserialize(token)
    with pytest.raises(jws.InvalidJWSSignature):
        obj.verify(_jwk(other, "sig", private=False), alg="EdDSA")


def test_broker_jwe_decrypts_in_jwcrypto(me):
    """A JWE sealed by the broker decrypts in jwcrypto with the recipient's private JWK; the
    header is ECDH-ES/A256GCM with an X25519 epk, the kid and the extra s284_id member, and
    there is no encrypted key (direct key agreement)."""
    token = jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid, {"s284_id": "X1"})
    assert token.split(".")[1] == ""
    obj = jwe.JWE()
    obj.allowed_algs = ["ECDH-ES", "A256GCM"]
    obj.deserialize(token, key=_jwk(me, "enc", private=True))
    assert obj.payload == PAYLOAD
    header = obj.jose_header
    assert {k: header[k] for k in ("alg", "enc", "kid", "s284_id")} == {
        "alg": "ECDH-ES",
        "enc": "A256GCM",
        "kid": me.enc_kid,
        "s284_id": "X1",
    }
    assert header["epk"]["kty"] == "OKP"
    assert header["epk"]["crv"] == "X25519"
    assert "apu" not in header
    assert "apv" not in header
    assert len(b64u_decode(token.split(".")[2])) == 12  # 96-bit IV
    assert len(b64u_decode(token.split(".")[4])) == 16  # 128-bit tag


def test_broker_jwe_does_not_decrypt_in_jwcrypto_with_another_key(me, other):
    """Only the addressed key opens a broker JWE."""
    token = jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid)
    obj = jwe.JWE()
    with pytest.raises(jwe.InvalidJWEData):
        obj.deserialize(token, key=_jwk(other, "enc", private=True))


def test_broker_uses_fresh_ephemeral_keys_and_ivs(me):
    """Sealing the same plaintext twice gives different epk, IV and ciphertext."""
    one, two = (jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid) for _ in range(2))
    assert jose.jwe_unverified_header(one)["epk"] != jose.jwe_unverified_header(two)["epk"]
    assert one.split(".")[2] != two.split(".")[2]
    assert one.split(".")[3] != two.split(".")[3]


def test_broker_tokens_use_unpadded_base64url_only(me):
    """Every segment the broker emits is unpadded base64url (no '=', '+' or '/')."""
    tokens = [
        jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "t"),
        jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid),
    ]
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    for token in tokens:
        assert set(token) <= alphabet


# -- jwcrypto -> broker ------------------------------------------------------------------


def test_jwcrypto_jws_verifies_in_broker(me):
    """An EdDSA JWS made by jwcrypto with the agency's key verifies in the broker."""
    token = _jwcrypto_jws(me, {"alg": "EdDSA", "kid": me.sig_kid, "typ": "s284-ingress+jws"})
    assert jose.jws_verify(token, me.signing.public_key()) == PAYLOAD
    assert jose.jws_unverified_header(token)["typ"] == "s284-ingress+jws"


def test_jwcrypto_jws_with_header_members_in_another_order_verifies_in_broker(me):
    """Header member order and extra non-critical members are not significant."""
    header = {"typ": "s284-ingress+jws", "kid": me.sig_kid, "cty": "json", "alg": "EdDSA"}
    assert jose.jws_verify(_jwcrypto_jws(me, header), me.signing.public_key()) == PAYLOAD


def test_jwcrypto_jwe_decrypts_in_broker(me):
    """An ECDH-ES + A256GCM JWE to the agency's X25519 key, made by jwcrypto, decrypts in the
    broker, and the custom s284_id header member is visible to it."""
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": me.enc_kid, "s284_id": "01ABC"}
    token = _jwcrypto_jwe(_jwk(me, "enc", private=False), header)
    assert jose.jwe_decrypt(token, me.encryption) == PAYLOAD
    assert jose.jwe_unverified_header(token)["s284_id"] == "01ABC"


def test_jwcrypto_jwe_of_a_large_payload_decrypts_in_broker(me):
    """Size is no interop issue: a 512 KiB plaintext round-trips."""
    big = b"x" * (512 * 1024)
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": me.enc_kid}
    assert (
        jose.jwe_decrypt(_jwcrypto_jwe(_jwk(me, "enc", private=False), header, big), me.encryption)
        == big
    )


# -- RFC 7638 thumbprints ----------------------------------------------------------------


@pytest.mark.parametrize("use", ["sig", "enc"])
def test_kid_equals_jwcrypto_rfc7638_thumbprint(use):
    """The broker's key ids are the RFC 7638 SHA-256 thumbprints any library recomputes."""
    for _ in range(5):
        identity = Identity.generate("health")
        kid = identity.sig_kid if use == "sig" else identity.enc_kid
        assert _jwk(identity, use, private=False).thumbprint() == kid
        assert _jwk(identity, use, private=True).thumbprint() == kid


def test_thumbprint_matches_rfc8037_appendix_a3():
    """Known answer from RFC 8037 A.3: the Ed25519 key of A.1 has thumbprint kPrK_qmx...."""
    key = Ed25519PrivateKey.from_private_bytes(
        b64u_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    )
    assert b64u(jose.raw_public(key.public_key())) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert jose.thumbprint(key.public_key()) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


# -- what broker.jose must refuse: JWS ---------------------------------------------------


def _other_alg_jws(alg: str, kid: str) -> str:
    if alg == "none":
        return f"{b64u(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{b64u(PAYLOAD)}."
    key = {
        "HS256": lambda: jwk.JWK.generate(kty="oct", size=256),
        "RS256": lambda: jwk.JWK.generate(kty="RSA", size=2048),
        "ES256": lambda: jwk.JWK.generate(kty="EC", crv="P-256"),
    }[alg]()
    token = jws.JWS(PAYLOAD)
    token.add_signature(key, None, json_encode({"alg": alg, "kid": kid}))
    return token.serialize(compact=True)


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES256"])
def test_jws_with_another_alg_is_refused(me, alg):
    """Only EdDSA is accepted: alg none, HMAC, RSA and ECDSA tokens are refused even when
    they name the agency's kid (no algorithm confusion)."""
    token = _other_alg_jws(alg, me.sig_kid)
    with pytest.raises(CryptoError):
        jose.jws_unverified_header(token)
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_with_the_fully_specified_ed25519_alg_is_refused(me):
    """alg "Ed25519" (the newer fully-specified name some libraries now default to) is not
    the documented "EdDSA" and is refused, so integrators learn it at once."""
    token = _ed25519_jws(me.signing, {"alg": "Ed25519", "kid": me.sig_kid}, PAYLOAD)
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_with_a_crit_header_is_refused(me):
    """A correctly signed JWS with a `crit` header (here RFC 7797 b64, which jwcrypto
    understands) is refused: the profile has no critical extensions."""
    header = {"alg": "EdDSA", "kid": me.sig_kid, "crit": ["b64"], "b64": True}
    token = _jwcrypto_jws(me, header)
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_crit_refused_even_for_an_unknown_extension(me):
    """A `crit` naming any extension is refused, not ignored."""
    token = _ed25519_jws(
        me.signing, {"alg": "EdDSA", "kid": me.sig_kid, "crit": ["exp"], "exp": 1}, PAYLOAD
    )
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_without_kid_is_refused(me):
    """The kid is how the gateway finds the key and its agency: a JWS without one is refused."""
    token = _jwcrypto_jws(me, {"alg": "EdDSA"})
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_with_tampered_payload_is_refused(me):
    """Changing the signed payload breaks the signature."""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "t")
    forged = _replace(token, 1, b64u(PAYLOAD.replace(b"S284-000123", b"S284-000124")))
    with pytest.raises(CryptoError):
        jose.jws_verify(forged, me.signing.public_key())


def test_jws_with_tampered_header_is_refused(me):
    """The protected header is signed too: changing typ breaks the signature."""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "s284-receipt+jws")
    header = {"alg": "EdDSA", "kid": me.sig_kid, "typ": "s284-delivery+jws"}
    forged = _replace(token, 0, b64u(json.dumps(header).encode()))
    with pytest.raises(CryptoError):
        jose.jws_verify(forged, me.signing.public_key())


def test_jws_with_tampered_signature_is_refused(me):
    """A flipped bit in the signature is refused."""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "t")
    with pytest.raises(CryptoError):
        jose.jws_verify(_replace(token, 2, _flip(token.split(".")[2])), me.signing.public_key())


def test_jws_with_wrong_key_is_refused(me, other):
    """A genuine signature by another key does not verify under this agency's key."""
    token = _jwcrypto_jws(other, {"alg": "EdDSA", "kid": me.sig_kid})
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_with_base64_padding_is_refused(me):
    """Padding '=' is refused (RFC 7515 base64url has none) even in the signature segment,
    where the padded text decodes to the very same valid signature. (Padding in the header or
    payload segment changes the signing input, so the signature check refuses it anyway.)"""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "t")
    head, body, sig = token.split(".")
    assert len(sig) % 4 == 2  # a 64-byte signature takes '==' when padded
    with pytest.raises(CryptoError):
        jose.jws_verify(f"{head}.{body}.{sig}==", me.signing.public_key())


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + ".AAAA",
        lambda _t: "",
        lambda t: json.dumps(
            {"payload": t.split(".")[1], "protected": t.split(".")[0], "signature": t.split(".")[2]}
        ),
    ],
    ids=["two segments", "four segments", "empty", "JSON serialization"],
)
def test_jws_not_in_compact_form_is_refused(me, make: Callable[[str], str]):
    """Only the three-segment compact serialization is accepted."""
    token = make(jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "t"))
    with pytest.raises(CryptoError):
        jose.jws_verify(token, me.signing.public_key())


def test_jws_with_non_json_header_is_refused(me):
    """A header segment that is not a JSON object is refused, not crashed on."""
    for header in (b"not json", b"[1, 2]", b"\xff\xfe"):
        token = f"{b64u(header)}.{b64u(PAYLOAD)}.{b64u(b'x' * 64)}"
        with pytest.raises(CryptoError):
            jose.jws_verify(token, me.signing.public_key())


def test_jws_with_characters_outside_base64url_is_refused(me):
    """A signature segment with characters outside base64url is refused: otherwise the
    gateway accepts a frame (and forwards it as `origin`) that strict recipients reject."""
    token = jose.jws_sign(PAYLOAD, me.signing, me.sig_kid, "t")
    head, body, sig = token.split(".")
    with pytest.raises(CryptoError):
        jose.jws_verify(f"{head}.{body}.{sig[:10]}!*!*{sig[10:]}", me.signing.public_key())


# -- what broker.jose must refuse: JWE ---------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "enc", "key_kind"),
    [
        ("ECDH-ES+A128KW", "A256GCM", "x25519"),
        ("ECDH-ES+A192KW", "A256GCM", "x25519"),
        ("ECDH-ES+A256KW", "A128GCM", "x25519"),
        ("ECDH-ES", "A128GCM", "x25519"),
        ("ECDH-ES", "A256CBC-HS512", "x25519"),
        ("RSA-OAEP-256", "A256GCM", "rsa"),
        ("dir", "A256GCM", "oct"),
        ("A256KW", "A256GCM", "oct"),
    ],
)
def test_jwe_with_another_alg_or_enc_is_refused(me, alg, enc, key_kind):
    """Only alg ECDH-ES (v1) or ECDH-ES+A256KW (v2) with enc A256GCM is accepted; other key
    wrap sizes, other content encryptions, RSA and shared-key JWEs are refused."""
    key = {
        "x25519": lambda: _jwk(me, "enc", private=False),
        "rsa": lambda: jwk.JWK.generate(kty="RSA", size=2048),
        "oct": lambda: jwk.JWK.generate(kty="oct", size=256),
    }[key_kind]()
    token = _jwcrypto_jwe(key, {"alg": alg, "enc": enc, "kid": me.enc_kid})
    with pytest.raises(CryptoError):
        jose.jwe_unverified_header(token)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)


def test_jwe_with_a_non_empty_encrypted_key_is_refused(me):
    """ECDH-ES direct carries no encrypted key: a valid JWE with one inserted is refused."""
    token = jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(_replace(token, 1, b64u(b"\x00" * 40)), me.encryption)


def test_jwe_with_a_crit_header_is_refused(me):
    """A JWE with a `crit` header is refused."""
    header = {
        "alg": "ECDH-ES",
        "enc": "A256GCM",
        "kid": me.enc_kid,
        "crit": ["s284_id"],
        "s284_id": "01ABC",
    }
    token = _jwcrypto_jwe(_jwk(me, "enc", private=False), header)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)


def test_jwe_with_an_epk_on_another_curve_is_refused(me):
    """An ECDH-ES/A256GCM JWE whose epk is a P-256 key is refused (X25519 only)."""
    token = _jwcrypto_jwe(
        jwk.JWK.generate(kty="EC", crv="P-256"),
        {"alg": "ECDH-ES", "enc": "A256GCM", "kid": me.enc_kid},
    )
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)


def test_jwe_with_party_info_does_not_open(me):
    """The profile fixes apu/apv empty: a JWE whose KDF used apu/apv is refused (fails
    closed) rather than opened under a different derivation."""
    header = {
        "alg": "ECDH-ES",
        "enc": "A256GCM",
        "kid": me.enc_kid,
        "apu": b64u(b"sender"),
        "apv": b64u(b"gateway"),
    }
    token = _jwcrypto_jwe(_jwk(me, "enc", private=False), header)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)


@pytest.mark.parametrize(
    ("segment", "what"),
    [
        (0, "protected header (AAD)"),
        (2, "IV"),
        (3, "ciphertext"),
        (4, "tag"),
    ],
)
def test_jwe_with_tampered_segment_is_refused(me, segment, what):
    """AES-GCM authenticates the protected header, IV, ciphertext and tag: a change to any
    of them is refused."""
    token = jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid, {"s284_id": "A"})
    parts = token.split(".")
    if segment == 0:
        header = {**jose.jwe_unverified_header(token), "s284_id": "B"}
        forged = _replace(token, 0, b64u(json.dumps(header).encode()))
    else:
        forged = _replace(token, segment, _flip(parts[segment]))
    assert forged != token, what
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(forged, me.encryption)


def test_jwe_with_swapped_epk_is_refused(me):
    """A JWE whose epk is replaced by another X25519 public key does not open."""
    token = jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid)
    header = jose.jwe_unverified_header(token)
    header["epk"] = jose.okp_jwk(X25519PrivateKey.generate().public_key())
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(_replace(token, 0, b64u(json.dumps(header).encode())), me.encryption)


def test_jwe_with_wrong_key_is_refused(me, other):
    """A JWE to one agency does not open with another agency's key, in either direction of
    making it."""
    for token in (
        jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid),
        _jwcrypto_jwe(
            _jwk(me, "enc", private=False), {"alg": "ECDH-ES", "enc": "A256GCM", "kid": me.enc_kid}
        ),
    ):
        with pytest.raises(CryptoError):
            jose.jwe_decrypt(token, other.encryption)


@pytest.mark.parametrize("segment", [2, 3, 4], ids=["IV", "ciphertext", "tag"])
def test_jwe_with_base64_padding_is_refused(me, segment):
    """Padding '=' in the IV, ciphertext or tag segment is refused, although the padded text
    decodes to the same bytes. (Padding in the protected header changes the AAD.)"""
    token = jose.jwe_encrypt(PAYLOAD + b"!", me.encryption.public_key(), me.enc_kid)
    parts = token.split(".")
    parts[segment] += "=" * (-len(parts[segment]) % 4 or 4)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(".".join(parts), me.encryption)


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + ".AAAA",
        lambda _t: "a.b.c",
    ],
    ids=["four segments", "six segments", "JWS-shaped"],
)
def test_jwe_not_in_compact_form_is_refused(me, make: Callable[[str], str]):
    """Only the five-segment compact serialization is accepted."""
    token = make(jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid))
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)


def test_jwe_with_bytes_moved_from_ciphertext_to_tag_is_refused(me):
    """The tag segment must be exactly 128 bits; a JWE whose last ciphertext bytes were moved
    into the tag segment is a different token and must be refused, as strict libraries do."""
    token = jose.jwe_encrypt(PAYLOAD, me.encryption.public_key(), me.enc_kid)
    parts = token.split(".")
    ciphertext, tag = b64u_decode(parts[3]), b64u_decode(parts[4])
    parts[3], parts[4] = b64u(ciphertext[:-4]), b64u(ciphertext[-4:] + tag)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(".".join(parts), me.encryption)


def test_jwe_with_compression_is_refused(me):
    """The profile has no compression: a JWE with zip DEF must be refused, not returned as
    undecompressed bytes."""
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": me.enc_kid, "zip": "DEF"}
    token = _jwcrypto_jwe(_jwk(me, "enc", private=False), header)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)
