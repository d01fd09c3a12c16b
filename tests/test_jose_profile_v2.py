"""JOSE profile v2 (JWE alg ECDH-ES+A256KW) against jwcrypto, and what the gateway's
per-batch key sharing does and does not share (docs/wire-format.md section 2.3).

What this proves for an agency: a v2 delivery is a standalone standard JWE its own JOSE
library opens with its X25519 key alone; a v2 JWE another library makes opens in the
broker; deliveries of one batch share only the ephemeral key, never a content key or IV;
tampering and other key-wrap algorithms are refused.
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from jwcrypto import jwe, jwk
from jwcrypto.common import json_encode

from broker.errors import CryptoError
from broker.wire import jose
from broker.wire.envelope import Agency
from broker.wire.jose import b64u, b64u_decode
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.sealing import DeliverySealer

PAYLOAD = json.dumps({"offender": "S284-000123", "note": "synthetic test data"}).encode()


@pytest.fixture(scope="module")
def me() -> Identity:
    return Identity.generate("police")


def _private_jwk(identity: Identity) -> jwk.JWK:
    [key] = [k for k in identity.private_jwks()["keys"] if k["use"] == "enc"]
    return jwk.JWK(**key)


def _public_jwk(identity: Identity) -> jwk.JWK:
    [key] = [k for k in identity.public_jwks() if k["use"] == "enc"]
    return jwk.JWK(**key)


def _jwcrypto_open(token: str, identity: Identity) -> tuple[dict[str, object], bytes]:
    obj = jwe.JWE()
    obj.allowed_algs = ["ECDH-ES+A256KW", "A256GCM"]
    obj.deserialize(token, key=_private_jwk(identity))
    return obj.jose_header, obj.payload


def _wrapper(identity: Identity) -> jose.KeyWrapper:
    return jose.KeyWrapper(identity.encryption.public_key(), identity.enc_kid)


def _segment(token: str, index: int) -> str:
    return token.split(".")[index]


def _replace(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def _flip(segment: str) -> str:
    raw = bytearray(b64u_decode(segment))
    raw[3] ^= 0x01
    return b64u(bytes(raw))


def test_v2_jwe_opens_in_jwcrypto_with_the_recipient_key_alone(me):
    """The broker's v2 JWE decrypts in jwcrypto, restricted to ECDH-ES+A256KW/A256GCM, with
    the documented header: alg, enc, X25519 epk, kid and s284_id, no apu/apv."""
    token = _wrapper(me).encrypt(PAYLOAD, "01ABC.police")
    header, payload = _jwcrypto_open(token, me)
    assert payload == PAYLOAD
    assert {k: header[k] for k in ("alg", "enc", "kid", "s284_id")} == {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "kid": me.enc_kid,
        "s284_id": "01ABC.police",
    }
    assert header["epk"]["crv"] == "X25519"
    assert "apu" not in header
    assert "apv" not in header
    assert len(b64u_decode(_segment(token, 1))) == 40  # one wrapped 256-bit key


def test_v2_jwe_opens_in_the_broker_and_its_header_is_the_sorted_json(me):
    """Our own opener reads v2, and the header written once per window plus s284_id is the
    same bytes a sorted JSON dump of the whole header gives."""
    token = _wrapper(me).encrypt(PAYLOAD, "01ABC.police")
    header, payload = jose.jwe_open(token, me.encryption)
    assert payload == PAYLOAD
    assert (
        b64u_decode(_segment(token, 0))
        == json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    )


def test_v2_key_encryption_key_is_the_rfc7518_concat_kdf_with_the_alg_as_algorithm_id(me):
    """By hand, from RFC 7518 4.6.2: AlgorithmID "ECDH-ES+A256KW", empty apu/apv, 256 bits;
    the KEK unwraps the encrypted key into the CEK that opens the ciphertext."""
    token = _wrapper(me).encrypt(PAYLOAD)
    header = jose.jwe_unverified_header(token)
    epk = X25519PublicKey.from_public_bytes(b64u_decode(header["epk"]["x"]))
    alg_id = b"ECDH-ES+A256KW"
    other = struct.pack(">I", len(alg_id)) + alg_id + struct.pack(">III", 0, 0, 256)
    kek = hashlib.sha256(struct.pack(">I", 1) + me.encryption.exchange(epk) + other).digest()
    cek = aes_key_unwrap(kek, b64u_decode(_segment(token, 1)))
    assert len(cek) == 32


def test_jwcrypto_v2_jwe_opens_in_the_broker(me):
    """An ECDH-ES+A256KW JWE made by jwcrypto to the agency's key opens in the broker."""
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": me.enc_kid, "s284_id": "X"}
    token = jwe.JWE(PAYLOAD, json_encode(header))
    token.add_recipient(_public_jwk(me))
    compact = token.serialize(compact=True)
    assert jose.jwe_decrypt(compact, me.encryption) == PAYLOAD
    assert jose.jwe_unverified_header(compact)["s284_id"] == "X"


def test_one_window_shares_the_epk_but_never_the_content_key_or_iv(me):
    """Two JWEs from one wrapper: the same epk (one agreement), different wrapped keys, IVs
    and ciphertexts of the same plaintext; both open on their own."""
    wrapper = _wrapper(me)
    one, two = wrapper.encrypt(PAYLOAD, "a"), wrapper.encrypt(PAYLOAD, "b")
    assert jose.jwe_unverified_header(one)["epk"] == jose.jwe_unverified_header(two)["epk"]
    for index in (1, 2, 3):
        assert _segment(one, index) != _segment(two, index)
    assert _jwcrypto_open(one, me)[1] == _jwcrypto_open(two, me)[1] == PAYLOAD


def test_a_window_ends_after_its_bound(me):
    """A wrapper agrees afresh after KEK_MAX_USES seals, so one ephemeral key never covers
    more than that many JWEs."""
    wrapper = _wrapper(me)
    epks = [jose.jwe_unverified_header(wrapper.encrypt(b"x"))["epk"]["x"]]
    epks += [
        jose.jwe_unverified_header(wrapper.encrypt(b"x"))["epk"]["x"]
        for _ in range(jose.KEK_MAX_USES)
    ]
    assert len(set(epks[: jose.KEK_MAX_USES])) == 1
    assert epks[-1] != epks[0]


def test_separate_wrappers_use_different_epks(me):
    """Each batch makes its own wrapper, so deliveries of two batches share no epk."""
    one, two = _wrapper(me).encrypt(PAYLOAD), _wrapper(me).encrypt(PAYLOAD)
    assert jose.jwe_unverified_header(one)["epk"] != jose.jwe_unverified_header(two)["epk"]


@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_tampered_v2_jwe_is_refused(me, index):
    """A flipped bit in the wrapped key, IV, ciphertext or tag: refused by the broker and by
    jwcrypto alike."""
    sealed = _wrapper(me).encrypt(PAYLOAD)
    token = _replace(sealed, index, _flip(_segment(sealed, index)))
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, me.encryption)
    with pytest.raises(jwe.InvalidJWEData):
        _jwcrypto_open(token, me)


def test_v2_jwe_without_its_wrapped_key_is_refused(me):
    """ECDH-ES+A256KW must carry exactly one 40-byte wrapped key."""
    token = _wrapper(me).encrypt(PAYLOAD)
    for segment in ("", b64u(b64u_decode(_segment(token, 1))[:32])):
        with pytest.raises(CryptoError):
            jose.jwe_decrypt(_replace(token, 1, segment), me.encryption)


def test_v2_jwe_to_another_key_is_refused(me):
    """Only the addressed key opens a v2 JWE."""
    token = _wrapper(me).encrypt(PAYLOAD)
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(token, Identity.generate("dffh").encryption)


def _parties() -> tuple[Identity, Identity, KeyDirectory]:
    gateway, police = Identity.generate(GATEWAY), Identity.generate("police")
    return (
        gateway,
        police,
        KeyDirectory.from_jwks({"keys": gateway.public_jwks() + police.public_jwks()}),
    )


def _sealed_of(frame: bytes) -> str:
    claims = json.loads(b64u_decode(frame.decode("ascii").split(".")[1]))
    return str(claims["sealed"])


@pytest.mark.parametrize(("profile", "alg"), [(1, "ECDH-ES"), (2, "ECDH-ES+A256KW")])
def test_the_sealer_seals_in_the_profile_it_is_given(profile, alg):
    """Profile 1 gives ECDH-ES deliveries with a fresh epk each; profile 2 ECDH-ES+A256KW
    ones sharing the batch's epk; both open in jwcrypto with the recipient's key."""
    gateway, police, directory = _parties()
    sealer = DeliverySealer(gateway, directory, profile)
    frames = [sealer.seal(f"m{i}.police", Agency.POLICE, f"m{i}", PAYLOAD) for i in range(2)]
    headers = [jose.jwe_unverified_header(_sealed_of(f)) for f in frames]
    assert [h["alg"] for h in headers] == [alg, alg]
    assert (headers[0]["epk"] == headers[1]["epk"]) is (profile == 2)
    obj = jwe.JWE()
    obj.allowed_algs = [alg, "A256GCM"]
    obj.deserialize(_sealed_of(frames[1]), key=_private_jwk(police))
    assert obj.payload == PAYLOAD


def test_an_unknown_profile_is_refused():
    gateway, _, directory = _parties()
    with pytest.raises(ValueError, match="profile"):
        DeliverySealer(gateway, directory, 3)


@pytest.mark.parametrize("alg", ["ECDH-ES+A128KW", "ECDH-ES+A192KW", "A256KW", ["ECDH-ES"], None])
def test_a_jwe_alg_outside_the_two_profiles_is_refused_cleanly(me, alg):
    """Any other alg, or an alg that is not even a string, is a CryptoError (the reason the
    sender is told), never a TypeError from deep inside."""
    token = _wrapper(me).encrypt(PAYLOAD)
    header = json.loads(b64u_decode(_segment(token, 0)))
    header["alg"] = alg
    forged = _replace(token, 0, b64u(json.dumps(header).encode()))
    with pytest.raises(CryptoError):
        jose.jwe_decrypt(forged, me.encryption)
