"""The log's own checkpoint key: Ed25519, named by the log's origin (C2SP signed note).

It lives with the log it signs for, not with the wire format's agency keys: only the
process that appends checkpoints loads the private half.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from audit._errors import AuditError
from audit._note import Checkpoint, sign_checkpoint, verifier_key


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _thumbprint(key: Ed25519PrivateKey) -> str:
    """RFC 7638 thumbprint of the public half, as the wire format names keys."""
    x = _b64u(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64u(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True, repr=False)
class LogSigner:
    """The disclosure log's Ed25519 checkpoint key; its note name is the log's origin."""

    origin: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> LogSigner:
        key = Ed25519PrivateKey.generate()
        return cls(f"s284-broker.local/audit/{_thumbprint(key)[:12]}", key)

    def __repr__(self) -> str:
        return f"LogSigner(origin={self.origin!r})"

    @cached_property
    def vkey(self) -> str:
        return verifier_key(self.origin, self.key.public_key())

    def sign_checkpoint(self, cp: Checkpoint, _prove: Callable[[int], list[bytes]]) -> str:
        """In-process signing (a `CheckpointSigner`): the key is in this process's memory."""
        return sign_checkpoint(cp, self.key)

    def private_json(self) -> str:
        raw = self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return json.dumps({"origin": self.origin, "d": _b64u(raw)})

    @classmethod
    def load(cls, path: Path) -> LogSigner:
        try:
            data = json.loads(path.read_text())
            d = str(data["d"])
            key = Ed25519PrivateKey.from_private_bytes(
                base64.urlsafe_b64decode(d + "=" * (-len(d) % 4))
            )
        except (OSError, KeyError, ValueError, TypeError, binascii.Error) as exc:
            raise AuditError(
                f"cannot read the log key from {path}: {exc.__class__.__name__}"
            ) from exc
        return cls(str(data["origin"]), key)
