"""The two JOSE forms the wire uses, on `cryptography` primitives, and nothing else.

* JWS compact, alg EdDSA over Ed25519 (RFC 7515, RFC 8037).
* JWE compact, alg ECDH-ES (direct key agreement) over X25519, enc A256GCM
  (RFC 7516, RFC 7518 section 4.6, RFC 8037).

Deliberately narrow: any other alg/enc, a `crit` header or a malformed segment is
refused. tests/test_jose_interop.py checks both directions against jwcrypto, an
independent implementation, so agencies can use their own JOSE library.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
import struct
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.errors import CryptoError
from broker.wire.bounds import HEADER_MAX_BYTES, HEADER_MAX_DEPTH, check_json

_ENC = "A256GCM"
_B64U = re.compile(r"[A-Za-z0-9_-]*")
_CEK_BITS = 256


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_HEADER_CACHE_MAX_CHARS = 512  # only small headers are remembered (a bound on memory)


def b64u(data: bytes) -> str:
    # what base64.urlsafe_b64encode does, without its two Python-level calls per segment
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    if not _B64U.fullmatch(text):
        raise CryptoError("segment is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("segment is not base64url") from exc


def _json_b64(obj: dict[str, Any]) -> str:
    return b64u(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())


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


def jws_sign(payload: bytes, key: Ed25519PrivateKey, kid: str, typ: str) -> str:
    signing_input = f"{_jws_header(kid, typ)}.{b64u(payload)}"
    return f"{signing_input}.{b64u(key.sign(signing_input.encode('ascii')))}"


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
        key.verify(b64u_decode(sig), f"{head}.{body}".encode("ascii"))
    except (InvalidSignature, UnicodeEncodeError) as exc:
        raise CryptoError("signature does not verify") from exc
    return b64u_decode(body)


# -- JWE ---------------------------------------------------------------------


def _concat_kdf(shared: bytes) -> bytes:
    # RFC 7518 section 4.6.2: AlgorithmID is the enc value in direct key agreement;
    # PartyUInfo and PartyVInfo are empty; SuppPubInfo is the key length in bits.
    alg_id = _ENC.encode()
    other = (
        struct.pack(">I", len(alg_id))
        + alg_id
        + struct.pack(">I", 0)
        + struct.pack(">I", 0)
        + struct.pack(">I", _CEK_BITS)
    )
    return ConcatKDFHash(hashes.SHA256(), _CEK_BITS // 8, other).derive(shared)


def jwe_encrypt(
    plaintext: bytes, key: X25519PublicKey, kid: str, extra: dict[str, str] | None = None
) -> str:
    ephemeral = X25519PrivateKey.generate()
    header: dict[str, Any] = {
        "alg": "ECDH-ES",
        "enc": _ENC,
        "kid": kid,
        "epk": okp_jwk(ephemeral.public_key()),
        **(extra or {}),
    }
    protected = _json_b64(header)
    cek = _concat_kdf(ephemeral.exchange(key))
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return f"{protected}..{b64u(iv)}.{b64u(sealed[:-16])}.{b64u(sealed[-16:])}"


def jwe_unverified_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 5:  # noqa: PLR2004 - JWE compact has five segments
        raise CryptoError("not a JWE compact serialization")
    header = _header(parts[0])
    if header.get("alg") != "ECDH-ES" or header.get("enc") != _ENC:
        raise CryptoError("JWE must use alg ECDH-ES and enc A256GCM")
    if parts[1]:
        raise CryptoError("ECDH-ES (direct) carries no encrypted key")
    if "zip" in header:
        raise CryptoError("compressed JWE payloads are not accepted")
    return header


def jwe_decrypt(token: str, key: X25519PrivateKey) -> bytes:
    header = jwe_unverified_header(token)
    protected, _, iv, ciphertext, tag = token.split(".")
    epk = header.get("epk")
    if not isinstance(epk, dict) or epk.get("kty") != "OKP" or epk.get("crv") != "X25519":
        raise CryptoError("JWE epk must be an X25519 OKP key")
    raw_iv, raw_tag = b64u_decode(iv), b64u_decode(tag)
    if len(raw_iv) != 12 or len(raw_tag) != 16:  # noqa: PLR2004 - AES-GCM 96-bit IV, 128-bit tag
        raise CryptoError("JWE IV must be 96 bits and tag 128 bits")
    try:
        peer = X25519PublicKey.from_public_bytes(b64u_decode(str(epk.get("x", ""))))
        cek = _concat_kdf(key.exchange(peer))
        return AESGCM(cek).decrypt(
            raw_iv, b64u_decode(ciphertext) + raw_tag, protected.encode("ascii")
        )
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("JWE does not decrypt with this key") from exc
