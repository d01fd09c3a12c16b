"""The signed, versioned key directory and the agencies' registration requests.

An agency creates its own keys and sends the operator a registration request: its two
public JWKs, signed (JWS, typ `s284-registration+jws`) by the new signing key as proof of
possession. The operator admits, rotates and revokes keys; each change is a new version
of the directory, a JWS (typ `s284-directory+jws`) by the broker's directory key over the
canonical directory JSON. Everyone verifies it against the pinned directory public key and
never accepts a version lower than the one held. Pure format: no file or network I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.errors import ConfigError, CryptoError, DirectoryError, RegistrationError
from broker.wire.jose import (
    b64u,
    b64u_decode,
    jws_sign,
    jws_unverified_header,
    jws_verify,
    okp_jwk,
    thumbprint,
)
from broker.wire.keys import (
    ACTIVE,
    REVOKED,
    DirectoryHolder,
    Identity,
    KeyDirectory,
    PublicKeyEntry,
    entry_from_jwk,
)

TYP_REGISTRATION = "s284-registration+jws"
TYP_DIRECTORY = "s284-directory+jws"
DIRECTORY_IDENTITY = "directory"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("time is not a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time without a UTC offset")
    return parsed


# -- registration requests (the agency's side) ------------------------------------------


def registration_request(identity: Identity, now: datetime | None = None) -> dict[str, Any]:
    """Public keys only, signed by the new signing key (proof of possession)."""
    body = {
        "s284_registration": 1,
        "identity": identity.name,
        "created_at": _time(now or datetime.now(UTC)),
        "keys": identity.public_jwks(),
    }
    proof = jws_sign(canonical(body), identity.signing, identity.sig_kid, TYP_REGISTRATION)
    return {**body, "proof": proof}


@dataclass(frozen=True)
class Registration:
    """A verified registration request: the identity and its signing and encryption key."""

    identity: str
    sig: PublicKeyEntry
    enc: PublicKeyEntry


def verify_registration(request: Any) -> Registration:
    """Check shape, thumbprints and proof of possession; RegistrationError names the fault."""
    if not isinstance(request, dict) or request.get("s284_registration") != 1:
        raise RegistrationError("not an s284 registration request (s284_registration: 1)")
    sig, enc = _request_keys(request)
    body = {k: v for k, v in request.items() if k != "proof"}
    try:
        header = jws_unverified_header(str(request.get("proof", "")))
        signed = jws_verify(str(request["proof"]), sig.ed25519)
    except (CryptoError, KeyError):
        raise RegistrationError(
            "the proof of possession does not verify with the request's signing key"
        ) from None
    if header.get("kid") != sig.kid or header.get("typ") != TYP_REGISTRATION:
        raise RegistrationError(f"the proof must be a {TYP_REGISTRATION} signed by kid {sig.kid}")
    if json.loads(signed) != body:
        raise RegistrationError("the signed proof does not match the request's contents")
    return Registration(sig.identity, sig, enc)


def _request_keys(request: dict[str, Any]) -> tuple[PublicKeyEntry, PublicKeyEntry]:
    keys = request.get("keys")
    identity = request.get("identity")
    if not isinstance(identity, str) or not isinstance(keys, list) or len(keys) != 2:  # noqa: PLR2004
        raise RegistrationError("a request names its identity and holds exactly two keys")
    try:
        entries = [entry_from_jwk(jwk) for jwk in keys]
    except ConfigError as exc:
        raise RegistrationError(f"registration refused: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistrationError(
            f"malformed key in the request ({exc.__class__.__name__})"
        ) from None
    by_use = {e.use: e for e in entries}
    if set(by_use) != {"sig", "enc"} or any(e.identity != identity for e in entries):
        raise RegistrationError("a request holds one Ed25519 and one X25519 key of its identity")
    return by_use["sig"], by_use["enc"]


# -- the directory document ----------------------------------------------------------------


def to_document(directory: KeyDirectory) -> dict[str, Any]:
    return {
        "s284_directory": 1,
        "version": directory.version,
        "issued_at": _time(directory.issued_at),
        "entries": [
            {
                "jwk": e.jwk(),
                "identity": e.identity,
                "not_before": _time(e.not_before),
                "not_after": _time(e.not_after),
                "status": e.status,
            }
            for e in directory.entries
        ],
    }


def from_document(doc: Any) -> KeyDirectory:
    try:
        entries = [_entry(item) for item in doc["entries"]]
        return KeyDirectory(entries, _version(doc), _parse_time(doc["issued_at"]))
    except ConfigError as exc:
        raise DirectoryError(f"directory refused: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DirectoryError(f"directory refused: malformed ({exc})") from None


def _version(doc: dict[str, Any]) -> int:
    version = doc["version"]
    if doc["s284_directory"] != 1 or not isinstance(version, int) or version < 1:
        raise TypeError("s284_directory must be 1 and version a positive integer")
    return version


def _entry(item: dict[str, Any]) -> PublicKeyEntry:
    if item["status"] not in {ACTIVE, REVOKED} or item["jwk"]["s284_identity"] != item["identity"]:
        raise TypeError("entry status or identity")
    not_after = item["not_after"]
    return entry_from_jwk(
        item["jwk"],
        not_before=_parse_time(item["not_before"]),
        not_after=None if not_after is None else _parse_time(not_after),
        status=item["status"],
    )


@dataclass(frozen=True, repr=False)
class DirectoryKey:
    """The broker's directory signing key (Ed25519). `repr` never shows key material."""

    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> DirectoryKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def kid(self) -> str:
        return thumbprint(self.key.public_key())

    def public_jwk(self) -> dict[str, Any]:
        pub = {**okp_jwk(self.key.public_key()), "kid": self.kid, "use": "sig", "alg": "EdDSA"}
        return {**pub, "s284_identity": DIRECTORY_IDENTITY}

    def private_jwk(self) -> dict[str, Any]:
        return {**self.public_jwk(), "d": b64u(self.key.private_bytes_raw())}

    @classmethod
    def from_private_jwk(cls, jwk: dict[str, Any]) -> DirectoryKey:
        return cls(Ed25519PrivateKey.from_private_bytes(b64u_decode(jwk["d"])))

    def sign(self, directory: KeyDirectory) -> bytes:
        """The published form: the JWS plus, for convenience, its kid and version."""
        token = jws_sign(canonical(to_document(directory)), self.key, self.kid, TYP_DIRECTORY)
        published = {"s284_signed_directory": 1, "kid": self.kid, "version": directory.version}
        return canonical({**published, "jws": token})


@dataclass(frozen=True)
class DirectoryVerifier:
    """The pinned directory public key every party verifies against."""

    kid: str
    key: Ed25519PublicKey

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> DirectoryVerifier:
        try:
            key = Ed25519PublicKey.from_public_bytes(b64u_decode(jwk["x"]))
        except (KeyError, TypeError, ValueError, CryptoError) as exc:
            raise ConfigError(f"the directory public key is malformed ({exc})") from None
        if jwk.get("crv") != "Ed25519" or thumbprint(key) != jwk.get("kid"):
            raise ConfigError("the directory public key's kid is not its RFC 7638 thumbprint")
        return cls(str(jwk["kid"]), key)

    def verify(self, published: bytes) -> KeyDirectory:
        """The directory in `published`, or DirectoryError saying exactly what is wrong."""
        try:
            token = json.loads(published)["jws"]
            header = jws_unverified_header(token)
        except (ValueError, KeyError, TypeError, CryptoError):
            raise DirectoryError("directory refused: not a signed s284 directory") from None
        if header.get("typ") != TYP_DIRECTORY:
            raise DirectoryError(f"directory refused: typ must be {TYP_DIRECTORY}")
        if header["kid"] != self.kid:
            raise DirectoryError(
                f"directory refused: signed by key {header['kid']}, not the directory key "
                f"{self.kid}"
            )
        try:
            body = jws_verify(token, self.key)
        except CryptoError:
            raise DirectoryError("directory refused: its signature does not verify") from None
        return from_document(json.loads(body))


def check_newer(held: KeyDirectory, offered: KeyDirectory) -> bool:
    """True if `offered` is newer; False if the same version; DirectoryError if older."""
    if offered.version < held.version:
        raise DirectoryError(
            f"directory refused: version {offered.version} is lower than version "
            f"{held.version} already held (a rollback); keeping version {held.version}"
        )
    return offered.version > held.version


def offer(holder: DirectoryHolder, verifier: DirectoryVerifier, signed: bytes) -> bool:
    """Adopt `signed` if it verifies and is newer: True; the same version: False; a bad
    signature, a malformed document or a lower version: DirectoryError (holder unchanged)."""
    if signed == holder.signed:
        return False
    offered = verifier.verify(signed)
    if not check_newer(holder, offered):
        return False
    holder.adopt(offered, signed)
    return True


# -- the operator's changes: each returns the next version ------------------------------


def _next(directory: KeyDirectory, entries: list[PublicKeyEntry], now: datetime) -> KeyDirectory:
    return KeyDirectory(entries, directory.version + 1, now)


def add(directory: KeyDirectory, reg: Registration, now: datetime) -> KeyDirectory:
    """A new identity's first keys; one that already has current keys rotates instead."""
    if directory.current(reg.identity, "sig"):
        raise RegistrationError(
            f"{reg.identity} already has current keys; use `s284 directory rotate`"
        )
    return admit(directory, reg, now)


def admit(directory: KeyDirectory, reg: Registration, now: datetime) -> KeyDirectory:
    """Add a registered identity's keys (refused if a kid is already listed)."""
    for entry in (reg.sig, reg.enc):
        if directory.entry(entry.kid) is not None:
            raise RegistrationError(f"key {entry.kid} is already in the directory")
    fresh = [replace(e, not_before=now) for e in (reg.sig, reg.enc)]
    return _next(directory, [*directory.entries, *fresh], now)


def rotate(
    directory: KeyDirectory, reg: Registration, now: datetime, overlap: timedelta
) -> KeyDirectory:
    """Admit the new keys; the identity's current keys verify until now + overlap."""
    if not directory.current(reg.identity, "sig"):
        raise RegistrationError(f"{reg.identity} has no current key to rotate; use add")
    ends = now + overlap
    kept = [
        replace(e, not_after=ends)
        if e.identity == reg.identity and e.usable_at(now) and (e.not_after or ends) >= ends
        else e
        for e in directory.entries
    ]
    return admit(KeyDirectory(kept, directory.version), reg, now)


def revoke(
    directory: KeyDirectory, now: datetime, kid: str | None = None, identity: str | None = None
) -> KeyDirectory:
    """Revoke one key by kid, or every key of an identity."""
    hits = [
        e
        for e in directory.entries
        if e.status == ACTIVE
        and (e.kid == kid or (identity is not None and e.identity == identity))
    ]
    if not hits:
        raise RegistrationError(f"no active key matches {kid or identity!r} in the directory")
    revoked = {e.kid for e in hits}
    entries = [replace(e, status=REVOKED) if e.kid in revoked else e for e in directory.entries]
    return _next(directory, entries, now)
