"""The two JOSE forms the wire uses, on `cryptography` primitives, and nothing else.

* JWS compact, alg EdDSA over Ed25519 (RFC 7515, RFC 8037).
* JWE compact over X25519, enc A256GCM (RFC 7516, RFC 7518 section 4.6, RFC 8037), in
  one of two algs: profile v1 `ECDH-ES` (direct key agreement, one ephemeral key per
  JWE) and profile v2 `ECDH-ES+A256KW` (the agreement gives a key-encryption key that
  wraps a fresh random content key per JWE, RFC 3394): v2 lets the gateway reuse one
  ephemeral agreement per recipient key for a bounded batch (`KeyWrapper`). Both open
  here; docs/wire-format.md section 2.3 says who sends which.

Deliberately narrow: any other alg/enc, a `crit` header or a malformed segment is
refused. tests/test_jose_interop.py checks both directions against jwcrypto, an
independent implementation, so agencies can use their own JOSE library.

The gateway's hot path (issue 14): Ed25519 signing and verification and the ephemeral
X25519 key run in libsodium (PyNaCl), which measured 69 µs per verify against OpenSSL's
169, 31 µs per signature against 46 and 42 µs per ephemeral key pair against 78, in one
process (bench/README.md); the key agreement with a long-term key stays on `cryptography`
(no faster in libsodium). The Concat KDF is the one SHA-256 block RFC 7518 section 4.6.2
needs for a 256-bit key, and headers are written with orjson (sorted keys, the same bytes
as `json.dumps(sort_keys=True)` for the ASCII members a header holds).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import json
import os
import struct
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.errors import CryptoError
from broker.wire.bounds import HEADER_MAX_BYTES, HEADER_MAX_DEPTH, check_json

_ENC = "A256GCM"
ALG_DIRECT = "ECDH-ES"  # profile v1
ALG_KEY_WRAP = "ECDH-ES+A256KW"  # profile v2
_CEK_BITS = 256
_WRAPPED_CEK_BYTES = 40  # RFC 3394: a 256-bit key wrapped is 64 bits longer
_SIG_BYTES = 64
# Seals under one v2 key-encryption key before a fresh ephemeral key is made, whatever the
# batch size (fetch_batch is configurable): a leaked ephemeral secret opens at most this many.
KEK_MAX_USES = 256


def _kdf_other(algorithm_id: str) -> bytes:
    # RFC 7518 section 4.6.2 OtherInfo: AlgorithmID is the enc value for direct agreement and
    # the alg value with key wrapping; PartyUInfo and PartyVInfo are empty; SuppPubInfo is
    # the derived key's length in bits (256 for A256GCM and for A256KW alike).
    name = algorithm_id.encode()
    return struct.pack(">I", len(name)) + name + struct.pack(">III", 0, 0, _CEK_BITS)


_KDF_OTHER = {ALG_DIRECT: _kdf_other(_ENC), ALG_KEY_WRAP: _kdf_other(ALG_KEY_WRAP)}
_KDF_ROUND_1 = struct.pack(">I", 1)  # a 256-bit key is one SHA-256 round of the Concat KDF


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_HEADER_CACHE_MAX_CHARS = 512  # only small headers are remembered (a bound on memory)


def b64u(data: bytes) -> str:
    # what base64.urlsafe_b64encode does, without its two Python-level calls per segment
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    # strict: only the unpadded base64url alphabet (no '+', '/', '=', whitespace, non-ASCII)
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise CryptoError("segment is not unpadded base64url") from None
    if b"+" in data or b"/" in data or b"=" in data:
        raise CryptoError("segment is not unpadded base64url")
    try:
        padded = data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4)
        return binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("segment is not base64url") from exc


def _json_b64(obj: dict[str, Any]) -> str:
    return b64u(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise CryptoError("duplicate member in protected header")
    return dict(pairs)


def _header(segment: str) -> dict[str, Any]:
    """The checked protected header, parsed once per distinct small segment: a sender's JWS
    header is the same on every message, and a JWE's is read twice (a fresh copy each time;
    a segment that fails raises every time, it is never remembered)."""
    if len(segment) > _HEADER_CACHE_MAX_CHARS:
        return _parse_header(segment)
    return dict(_remembered_header(segment))


@functools.lru_cache(maxsize=1024)
def _remembered_header(segment: str) -> dict[str, Any]:
    return _parse_header(segment)


def _parse_header(segment: str) -> dict[str, Any]:
    raw = b64u_decode(segment)
    check_json(raw, max_bytes=HEADER_MAX_BYTES, max_depth=HEADER_MAX_DEPTH)
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CryptoError("protected header is not JSON") from exc
    if not isinstance(header, dict):
        raise CryptoError("protected header is not a JSON object")
    if "crit" in header:
        raise CryptoError("critical header parameters are not supported")
    return header


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def okp_jwk(key: Ed25519PublicKey | X25519PublicKey) -> dict[str, str]:
    crv = "Ed25519" if isinstance(key, Ed25519PublicKey) else "X25519"
    return {"kty": "OKP", "crv": crv, "x": b64u(raw_public(key))}


def thumbprint(key: Ed25519PublicKey | X25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256): the key id every JOSE library can recompute."""
    jwk = okp_jwk(key)
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"), sort_keys=True
    )
    return b64u(hashlib.sha256(canonical.encode()).digest())


# -- JWS ---------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _jws_header(kid: str, typ: str) -> str:
    """A signer's protected header is the same on every token it signs: encode it once."""
    return _json_b64({"alg": "EdDSA", "kid": kid, "typ": typ})


@functools.lru_cache(maxsize=64)
def _sodium_secret(seed: bytes) -> bytes:
    """libsodium's 64-byte signing key for an Ed25519 seed (derived once per key)."""
    return sodium.crypto_sign_seed_keypair(seed)[1]


def _ed25519_sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return sodium.crypto_sign(data, _sodium_secret(key.private_bytes_raw()))[:_SIG_BYTES]


def _ed25519_verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    if len(signature) != _SIG_BYTES:  # libsodium takes signature + message as one string
        raise CryptoError("signature does not verify")
    try:
        sodium.crypto_sign_open(signature + data, key.public_bytes_raw())
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise CryptoError("signature does not verify") from exc


def jws_sign(payload: bytes, key: Ed25519PrivateKey, kid: str, typ: str) -> str:
    signing_input = f"{_jws_header(kid, typ)}.{b64u(payload)}"
    return f"{signing_input}.{b64u(_ed25519_sign(key, signing_input.encode('ascii')))}"


def jws_unverified_header(token: str) -> dict[str, Any]:
    """The protected header, *unverified*: only to learn which key to verify with."""
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - JWS compact has three segments
        raise CryptoError("not a JWS compact serialization")
    header = _header(parts[0])
    if header.get("alg") != "EdDSA" or not isinstance(header.get("kid"), str):
        raise CryptoError("JWS must use alg EdDSA and name its kid")
    return header


def jws_verify(token: str, key: Ed25519PublicKey) -> bytes:
    """Verify and return the payload; raise CryptoError if the signature does not hold."""
    jws_unverified_header(token)
    head, body, sig = token.split(".")
    try:
        signing_input = f"{head}.{body}".encode("ascii")
    except UnicodeEncodeError as exc:
        raise CryptoError("signature does not verify") from exc
    _ed25519_verify(key, b64u_decode(sig), signing_input)
    return b64u_decode(body)


# -- JWE ---------------------------------------------------------------------


def _concat_kdf(shared: bytes, alg: str = ALG_DIRECT) -> bytes:
    # NIST SP 800-56A Concat KDF: SHA-256(counter 1 || Z || OtherInfo), one round for 256 bits
    return hashlib.sha256(_KDF_ROUND_1 + shared + _KDF_OTHER[alg]).digest()


def _ephemeral_agreement(key: X25519PublicKey) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair (libsodium) and its agreement with `key`: (public, shared)."""
    scalar = os.urandom(32)  # clamped by libsodium, as RFC 7748 says
    try:
        return (
            sodium.crypto_scalarmult_base(scalar),
            sodium.crypto_scalarmult(scalar, key.public_bytes_raw()),
        )
    except nacl.exceptions.CryptoError as exc:  # a low-order recipient key: all-zero secret
        raise CryptoError("the recipient's X25519 key is not usable") from exc


def _epk(public: bytes) -> dict[str, str]:
    return {"kty": "OKP", "crv": "X25519", "x": b64u(public)}


def _gcm_compact(protected: str, encrypted_key: str, cek: bytes, plaintext: bytes) -> str:
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return f"{protected}.{encrypted_key}.{b64u(iv)}.{b64u(sealed[:-16])}.{b64u(sealed[-16:])}"


def jwe_encrypt(
    plaintext: bytes, key: X25519PublicKey, kid: str, extra: dict[str, str] | None = None
) -> str:
    """Profile v1: a fresh ephemeral key and agreement for this one JWE (`ECDH-ES`)."""
    epk, shared = _ephemeral_agreement(key)
    header = {"alg": ALG_DIRECT, "enc": _ENC, "kid": kid, "epk": _epk(epk), **(extra or {})}
    return _gcm_compact(_json_b64(header), "", _concat_kdf(shared), plaintext)


class KeyWrapper:
    """Profile v2 (`ECDH-ES+A256KW`) sealing to one recipient key, for one bounded window.

    Why: the ephemeral key pair and the agreement are most of a JWE's public-key cost; one
    per (batch, recipient key) instead of one per message. Each JWE still gets a fresh
    random content key (wrapped under the agreed key-encryption key) and a fresh IV, so
    every token is a standalone standard JWE. The ephemeral secret is never kept: only the
    derived KEK is, in this object, which the gateway drops with the batch; after
    `KEK_MAX_USES` seals it agrees afresh. What is shared is visible: tokens from one window
    to one recipient carry the same `epk` (the subject names the recipient anyway).
    """

    def __init__(self, key: X25519PublicKey, kid: str) -> None:
        self._key = key
        self._kid = kid
        self._uses = KEK_MAX_USES  # agree on first use

    def _agree(self) -> None:
        epk, shared = _ephemeral_agreement(self._key)
        self._kek = _concat_kdf(shared, ALG_KEY_WRAP)
        # everything but s284_id, serialised once: sorted keys put s284_id last
        head = {"alg": ALG_KEY_WRAP, "enc": _ENC, "epk": _epk(epk), "kid": self._kid}
        self._head = orjson.dumps(head, option=orjson.OPT_SORT_KEYS)[:-1]
        self._uses = 0

    def encrypt(self, plaintext: bytes, s284_id: str | None = None) -> str:
        if self._uses >= KEK_MAX_USES:
            self._agree()
        self._uses += 1
        tail = b"}" if s284_id is None else b',"s284_id":' + orjson.dumps(s284_id) + b"}"
        cek = os.urandom(_CEK_BITS // 8)
        wrapped = b64u(aes_key_wrap(self._kek, cek))
        return _gcm_compact(b64u(self._head + tail), wrapped, cek, plaintext)


def jwe_unverified_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 5:  # noqa: PLR2004 - JWE compact has five segments
        raise CryptoError("not a JWE compact serialization")
    return _checked_jwe_header(parts)


def _checked_jwe_header(parts: list[str]) -> dict[str, Any]:
    # a JWE header holds a fresh epk every time: parsed, never remembered
    header = _parse_header(parts[0])
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _KDF_OTHER or header.get("enc") != _ENC:
        raise CryptoError("JWE must use alg ECDH-ES or ECDH-ES+A256KW and enc A256GCM")
    if alg == ALG_DIRECT and parts[1]:
        raise CryptoError("ECDH-ES (direct) carries no encrypted key")
    if alg == ALG_KEY_WRAP and len(b64u_decode(parts[1])) != _WRAPPED_CEK_BYTES:
        raise CryptoError("ECDH-ES+A256KW carries one wrapped 256-bit key")
    if "zip" in header:
        raise CryptoError("compressed JWE payloads are not accepted")
    return header


def jwe_decrypt(token: str, key: X25519PrivateKey) -> bytes:
    return jwe_open(token, key)[1]


def jwe_open(token: str, key: X25519PrivateKey) -> tuple[dict[str, Any], bytes]:
    """The checked protected header and the plaintext, the token split and parsed once."""
    parts = token.split(".")
    if len(parts) != 5:  # noqa: PLR2004 - JWE compact has five segments
        raise CryptoError("not a JWE compact serialization")
    header = _checked_jwe_header(parts)
    protected, encrypted_key, iv, ciphertext, tag = parts
    epk = header.get("epk")
    if not isinstance(epk, dict) or epk.get("kty") != "OKP" or epk.get("crv") != "X25519":
        raise CryptoError("JWE epk must be an X25519 OKP key")
    raw_iv, raw_tag = b64u_decode(iv), b64u_decode(tag)
    if len(raw_iv) != 12 or len(raw_tag) != 16:  # noqa: PLR2004 - AES-GCM 96-bit IV, 128-bit tag
        raise CryptoError("JWE IV must be 96 bits and tag 128 bits")
    try:
        peer = X25519PublicKey.from_public_bytes(b64u_decode(str(epk.get("x", ""))))
        cek = _concat_kdf(key.exchange(peer), header["alg"])
        if encrypted_key:  # v2: what the agreement gave is the key-encryption key
            cek = aes_key_unwrap(cek, b64u_decode(encrypted_key))
        return header, AESGCM(cek).decrypt(
            raw_iv, b64u_decode(ciphertext) + raw_tag, protected.encode("ascii")
        )
    except (InvalidTag, InvalidUnwrap, ValueError) as exc:
        raise CryptoError("JWE does not decrypt with this key") from exc
