"""The two JOSE forms the wire uses, on `cryptography` primitives, and nothing else.

* JWS compact, alg EdDSA over Ed25519 (RFC 7515, RFC 8037).
* JWE compact, alg ECDH-ES (direct key agreement) over X25519, enc A256GCM
  (RFC 7516, RFC 7518 section 4.6, RFC 8037).

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
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.errors import CryptoError
from broker.wire.bounds import HEADER_MAX_BYTES, HEADER_MAX_DEPTH, check_json

_ENC = "A256GCM"
_CEK_BITS = 256
_SIG_BYTES = 64
# RFC 7518 section 4.6.2 OtherInfo for direct key agreement: AlgorithmID is the enc value;
# PartyUInfo and PartyVInfo are empty; SuppPubInfo is the key length in bits.
_KDF_OTHER = (
    struct.pack(">I", len(_ENC)) + _ENC.encode() + struct.pack(">III", 0, 0, _CEK_BITS)
)
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


def _concat_kdf(shared: bytes) -> bytes:
    # NIST SP 800-56A Concat KDF: SHA-256(counter 1 || Z || OtherInfo), one round for 256 bits
    return hashlib.sha256(_KDF_ROUND_1 + shared + _KDF_OTHER).digest()


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


def jwe_encrypt(
    plaintext: bytes, key: X25519PublicKey, kid: str, extra: dict[str, str] | None = None
) -> str:
    epk, shared = _ephemeral_agreement(key)
    header: dict[str, Any] = {
        "alg": "ECDH-ES",
        "enc": _ENC,
        "kid": kid,
        "epk": {"kty": "OKP", "crv": "X25519", "x": b64u(epk)},
        **(extra or {}),
    }
    protected = _json_b64(header)
    cek = _concat_kdf(shared)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return f"{protected}..{b64u(iv)}.{b64u(sealed[:-16])}.{b64u(sealed[-16:])}"


def jwe_unverified_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 5:  # noqa: PLR2004 - JWE compact has five segments
        raise CryptoError("not a JWE compact serialization")
    return _checked_jwe_header(parts)


def _checked_jwe_header(parts: list[str]) -> dict[str, Any]:
    # a JWE header holds a fresh epk every time: parsed, never remembered
    header = _parse_header(parts[0])
    if header.get("alg") != "ECDH-ES" or header.get("enc") != _ENC:
        raise CryptoError("JWE must use alg ECDH-ES and enc A256GCM")
    if parts[1]:
        raise CryptoError("ECDH-ES (direct) carries no encrypted key")
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
    protected, _, iv, ciphertext, tag = parts
    epk = header.get("epk")
    if not isinstance(epk, dict) or epk.get("kty") != "OKP" or epk.get("crv") != "X25519":
        raise CryptoError("JWE epk must be an X25519 OKP key")
    raw_iv, raw_tag = b64u_decode(iv), b64u_decode(tag)
    if len(raw_iv) != 12 or len(raw_tag) != 16:  # noqa: PLR2004 - AES-GCM 96-bit IV, 128-bit tag
        raise CryptoError("JWE IV must be 96 bits and tag 128 bits")
    try:
        peer = X25519PublicKey.from_public_bytes(b64u_decode(str(epk.get("x", ""))))
        cek = _concat_kdf(key.exchange(peer))
        return header, AESGCM(cek).decrypt(
            raw_iv, b64u_decode(ciphertext) + raw_tag, protected.encode("ascii")
        )
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("JWE does not decrypt with this key") from exc
