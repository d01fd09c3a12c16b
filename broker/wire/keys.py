"""Key pairs per identity and the directory that binds public keys to agencies.

Each identity (an agency, or the gateway) has an Ed25519 signing key and an X25519
encryption key. Key ids are RFC 7638 thumbprints. Private keys live in one JWK set
file per identity, readable only by its owner; the directory is a public JWK set
whose keys carry `s284_identity`, the binding the gateway checks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from broker.errors import ConfigError, CryptoError
from broker.wire.jose import b64u, b64u_decode, okp_jwk, thumbprint

GATEWAY = "gateway"


@dataclass(frozen=True, repr=False)
class Identity:
    """An identity's private keys. `repr` never shows key material."""

    name: str
    signing: Ed25519PrivateKey
    encryption: X25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Identity:
        return cls(name, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

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
        return [
            {
                **okp_jwk(sig),
                "kid": self.sig_kid,
                "use": "sig",
                "alg": "EdDSA",
                "s284_identity": self.name,
            },
            {
                **okp_jwk(enc),
                "kid": self.enc_kid,
                "use": "enc",
                "alg": "ECDH-ES",
                "s284_identity": self.name,
            },
        ]

    def private_jwks(self) -> dict[str, Any]:
        def raw(key: Ed25519PrivateKey | X25519PrivateKey) -> str:
            return b64u(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

        sig_pub, enc_pub = self.public_jwks()
        return {
            "s284_identity": self.name,
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
            )
        except (OSError, KeyError, ValueError, TypeError, CryptoError) as exc:
            raise ConfigError(
                f"cannot read private keys from {path}: {exc.__class__.__name__}"
            ) from exc


@dataclass(frozen=True)
class PublicKeyEntry:
    kid: str
    identity: str
    use: str
    key: Ed25519PublicKey | X25519PublicKey

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


class KeyDirectory:
    """Public keys by kid, each bound to the identity (agency or gateway) that owns it."""

    def __init__(self, entries: list[PublicKeyEntry]) -> None:
        self._by_kid = {e.kid: e for e in entries}

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any]) -> KeyDirectory:
        entries = []
        for jwk in jwks.get("keys", []):
            raw = b64u_decode(jwk["x"])
            key: Ed25519PublicKey | X25519PublicKey = (
                Ed25519PublicKey.from_public_bytes(raw)
                if jwk["crv"] == "Ed25519"
                else X25519PublicKey.from_public_bytes(raw)
            )
            if thumbprint(key) != jwk["kid"]:
                raise ConfigError(f"directory key {jwk['kid']!r} does not match its thumbprint")
            entries.append(PublicKeyEntry(jwk["kid"], jwk["s284_identity"], jwk["use"], key))
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> KeyDirectory:
        try:
            return cls.from_jwks(json.loads(path.read_text()))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot read key directory {path}") from exc

    def signing_key(self, kid: str) -> PublicKeyEntry | None:
        entry = self._by_kid.get(kid)
        return entry if entry is not None and entry.use == "sig" else None

    def encryption_key_for(self, identity: str) -> PublicKeyEntry:
        for entry in self._by_kid.values():
            if entry.identity == identity and entry.use == "enc":
                return entry
        raise ConfigError(f"no encryption key for {identity!r} in the directory")

    def signing_key_for(self, identity: str) -> PublicKeyEntry:
        for entry in self._by_kid.values():
            if entry.identity == identity and entry.use == "sig":
                return entry
        raise ConfigError(f"no signing key for {identity!r} in the directory")


def write_directory(path: Path, identities: list[Identity]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [jwk for ident in identities for jwk in ident.public_jwks()]
    path.write_text(json.dumps({"keys": keys}, indent=2))
