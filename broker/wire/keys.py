"""Key pairs per identity and the directory that binds public keys to agencies.

Each identity (an agency, or the gateway) has an Ed25519 signing key and an X25519
encryption key. Key ids are RFC 7638 thumbprints. Private keys live in one JWK set
file per identity, readable only by its owner. The directory binds each public key to
its identity (`s284_identity`, the binding the gateway checks) with a validity window
and a status; broker/wire/directory.py signs and versions it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from broker.errors import ConfigError, CryptoError, KeyExpiredError, KeyRevokedError
from broker.wire.jose import b64u, b64u_decode, okp_jwk, thumbprint
from broker.wire.providers import check_binding

GATEWAY = "gateway"
ACTIVE = "active"
REVOKED = "revoked"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, repr=False)
class Identity:
    """An identity's private keys. `repr` never shows key material."""

    name: str
    signing: Ed25519PrivateKey
    encryption: X25519PrivateKey
    service: str | None = None  # a funded service's type (broker/wire/providers.py)

    @classmethod
    def generate(cls, name: str, service: str | None = None) -> Identity:
        check_binding(name, service)
        return cls(name, Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), service)

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, sig_kid={self.sig_kid!r})"

    @cached_property
    def sig_kid(self) -> str:
        return thumbprint(self.signing.public_key())

    @cached_property
    def enc_kid(self) -> str:
        return thumbprint(self.encryption.public_key())

    def public_jwks(self) -> list[dict[str, Any]]:
        sig = self.signing.public_key()
        enc = self.encryption.public_key()
        bound = {"s284_identity": self.name} | _service_member(self.service)
        return [
            {**okp_jwk(sig), "kid": self.sig_kid, "use": "sig", "alg": "EdDSA", **bound},
            {**okp_jwk(enc), "kid": self.enc_kid, "use": "enc", "alg": "ECDH-ES", **bound},
        ]

    def private_jwks(self) -> dict[str, Any]:
        def raw(key: Ed25519PrivateKey | X25519PrivateKey) -> str:
            return b64u(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

        sig_pub, enc_pub = self.public_jwks()
        return {
            "s284_identity": self.name,
            **_service_member(self.service),
            "keys": [{**sig_pub, "d": raw(self.signing)}, {**enc_pub, "d": raw(self.encryption)}],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.private_jwks(), fh, indent=2)

    @classmethod
    def load(cls, path: Path) -> Identity:
        try:
            data = json.loads(path.read_text())
            keys = {k["use"]: b64u_decode(k["d"]) for k in data["keys"]}
            return cls(
                data["s284_identity"],
                Ed25519PrivateKey.from_private_bytes(keys["sig"]),
                X25519PrivateKey.from_private_bytes(keys["enc"]),
                data.get("s284_service"),
            )
        except (OSError, KeyError, ValueError, TypeError, CryptoError) as exc:
            raise ConfigError(
                f"cannot read private keys from {path}: {exc.__class__.__name__}"
            ) from exc


@dataclass(frozen=True)
class PublicKeyEntry:
    """One public key in the directory: whose it is, and from when until when it counts."""

    kid: str
    identity: str
    use: str
    key: Ed25519PublicKey | X25519PublicKey
    not_before: datetime = _EPOCH
    not_after: datetime | None = None
    status: str = ACTIVE
    service: str | None = None  # set for a funded service's keys, never for an agency's

    @property
    def ed25519(self) -> Ed25519PublicKey:
        if not isinstance(self.key, Ed25519PublicKey):
            raise CryptoError(f"key {self.kid} is not an Ed25519 signing key")
        return self.key

    @property
    def x25519(self) -> X25519PublicKey:
        if not isinstance(self.key, X25519PublicKey):
            raise CryptoError(f"key {self.kid} is not an X25519 encryption key")
        return self.key

    def jwk(self) -> dict[str, Any]:
        alg = "EdDSA" if self.use == "sig" else "ECDH-ES"
        extra = {"kid": self.kid, "use": self.use, "alg": alg, "s284_identity": self.identity}
        return {**okp_jwk(self.key), **extra, **_service_member(self.service)}

    def usable_at(self, when: datetime) -> bool:
        """Active, and not rotated out at `when` (the not_after itself no longer counts)."""
        return self.status == ACTIVE and (self.not_after is None or when < self.not_after)

    def require_valid_at(self, signed_at: datetime) -> None:
        """Raise KeyRevokedError or KeyExpiredError unless this key may sign at `signed_at`."""
        if self.status != ACTIVE:
            raise KeyRevokedError(f"key {self.kid} of {self.identity} has been revoked")
        if self.not_after is not None and signed_at >= self.not_after:
            raise KeyExpiredError(
                f"key {self.kid} of {self.identity} was rotated out at "
                f"{self.not_after.isoformat()}; sign with the agency's current key"
            )


def entry_from_jwk(jwk: dict[str, Any], **window: Any) -> PublicKeyEntry:
    """A public JWK (kty OKP) as a directory entry; its kid must be its RFC 7638 thumbprint."""
    if "d" in jwk:
        raise ConfigError(f"key {jwk.get('kid')!r} carries a private part; only public keys")
    raw = b64u_decode(jwk["x"])
    key: Ed25519PublicKey | X25519PublicKey = (
        Ed25519PublicKey.from_public_bytes(raw)
        if jwk["crv"] == "Ed25519"
        else X25519PublicKey.from_public_bytes(raw)
    )
    if thumbprint(key) != jwk["kid"]:
        raise ConfigError(f"key id {jwk['kid']!r} is not the RFC 7638 thumbprint of its key")
    use = "sig" if isinstance(key, Ed25519PublicKey) else "enc"
    if jwk.get("use", use) != use:
        raise ConfigError(f"key {jwk['kid']!r}: use {jwk.get('use')!r} does not fit {jwk['crv']}")
    service = jwk.get("s284_service")
    check_binding(jwk["s284_identity"], service)  # a provider's key names its service
    return PublicKeyEntry(jwk["kid"], jwk["s284_identity"], use, key, service=service, **window)


def _service_member(service: str | None) -> dict[str, str]:
    """`s284_service` only when set: an agency's JWKs (and so older directories) keep
    their exact bytes."""
    return {} if service is None else {"s284_service": service}


@dataclass
class KeyDirectory:
    """Public keys by kid, each bound to the identity (agency or gateway) that owns it.

    `version` 0 is an unsigned directory (the worked example's plain JWK set); a signed
    one (broker/wire/directory.py) counts up from 1.
    """

    entries: list[PublicKeyEntry]
    version: int = 0
    issued_at: datetime = _EPOCH
    _by_kid: dict[str, PublicKeyEntry] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_kid = {e.kid: e for e in self.entries}

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any]) -> KeyDirectory:
        try:
            return cls([entry_from_jwk(jwk) for jwk in jwks.get("keys", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed key in the directory: {exc.__class__.__name__}") from exc

    def entry(self, kid: str) -> PublicKeyEntry | None:
        """Any entry by kid, whatever its status (who owned this key)."""
        return self._by_kid.get(kid)

    def signing_key(self, kid: str, *, revoked_ok: bool = False) -> PublicKeyEntry | None:
        """The signing key `kid`, None if unknown; KeyRevokedError if it was revoked (unless
        `revoked_ok`: the gateway already vouched for what it signed before)."""
        entry = self._by_kid.get(kid)
        if entry is None or entry.use != "sig":
            return None
        if entry.status != ACTIVE and not revoked_ok:
            raise KeyRevokedError(f"key {kid} of {entry.identity} has been revoked")
        return entry

    def current(self, identity: str, use: str) -> list[PublicKeyEntry]:
        """The identity's keys of this use that count now, newest first."""
        now = datetime.now(UTC)
        keys = [e for e in self.entries if e.identity == identity and e.use == use]
        return sorted((e for e in keys if e.usable_at(now)), key=lambda e: e.not_before)[::-1]

    def encryption_key_for(self, identity: str) -> PublicKeyEntry:
        found = self.current(identity, "enc")
        if not found:
            raise ConfigError(f"no current encryption key for {identity!r} in the directory")
        return found[0]

    def signing_key_for(self, identity: str) -> PublicKeyEntry:
        found = self.current(identity, "sig")
        if not found:
            raise ConfigError(f"no current signing key for {identity!r} in the directory")
        return found[0]


class DirectoryHolder(KeyDirectory):
    """The directory a long-running process holds, replaced in place by a newer version so
    every component sharing it (gateway, alert flow, SDK) sees the new keys at once."""

    def __init__(self, initial: KeyDirectory, signed: bytes = b"") -> None:
        super().__init__(list(initial.entries), initial.version, initial.issued_at)
        self.signed = signed

    def adopt(self, newer: KeyDirectory, signed: bytes) -> None:
        self.entries, self.version, self.issued_at = newer.entries, newer.version, newer.issued_at
        self._by_kid = {e.kid: e for e in newer.entries}
        self.signed = signed


@dataclass(frozen=True, repr=False)
class Keyring:
    """One agency's key generations, oldest first: the newest the directory admits signs;
    every generation still decrypts what was sealed to it."""

    generations: tuple[Identity, ...]

    def __repr__(self) -> str:
        return f"Keyring(name={self.name!r}, generations={len(self.generations)})"

    @property
    def name(self) -> str:
        return self.generations[-1].name

    @property
    def service(self) -> str | None:
        return self.generations[-1].service

    def signer(self, directory: KeyDirectory) -> Identity:
        now = datetime.now(UTC)
        for ident in reversed(self.generations):
            entry = directory.entry(ident.sig_kid)
            if entry is not None and entry.identity == ident.name and entry.usable_at(now):
                return ident
        raise ConfigError(
            f"none of {self.name}'s signing keys is current in key directory version "
            f"{directory.version}; ask the broker's operator to register your request "
            "(`s284 directory add` or `rotate`)"
        )

    def newest_first(self) -> list[Identity]:
        return list(reversed(self.generations))
