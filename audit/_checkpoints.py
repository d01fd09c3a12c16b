"""Signing checkpoints of the log, and the message that announces one to the agencies."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import _merkle as merkle
from audit._errors import AuditError, NoteError, ProofError
from audit._note import Checkpoint, NoteVerifier, open_checkpoint, sign_checkpoint
from audit._store import AuditStore, CheckpointRow


@dataclass(frozen=True)
class Announcement:
    """A new checkpoint with the proof that it extends the one before it."""

    note: str
    previous_size: int
    consistency: list[bytes]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "note": self.note,
                "previous_size": self.previous_size,
                "consistency": [h.hex() for h in self.consistency],
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Announcement:
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(
                str(raw["note"]),
                int(raw["previous_size"]),
                [bytes.fromhex(h) for h in raw["consistency"]],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise NoteError(
                f"malformed checkpoint announcement: {exc.__class__.__name__}"
            ) from None


def checkpoint(store: AuditStore, origin: str, key: Ed25519PrivateKey) -> Announcement | None:
    """Sign the current tree if it grew since the last checkpoint; None if it did not."""
    return signed_checkpoint(store, _KeyInHand(origin, key))


class CheckpointSigner(Protocol):
    """Whatever holds the log's key: `sign_checkpoint` may ask `prove(old)` for the
    consistency proof from the size it last signed (a separate signer refuses to sign a
    tree that does not extend it)."""

    @property
    def origin(self) -> str: ...

    def sign_checkpoint(
        self, checkpoint: Checkpoint, prove: Callable[[int], list[bytes]]
    ) -> str: ...


@dataclass(frozen=True, repr=False)
class _KeyInHand:
    origin: str
    key: Ed25519PrivateKey

    def sign_checkpoint(self, cp: Checkpoint, _prove: Callable[[int], list[bytes]]) -> str:
        return sign_checkpoint(cp, self.key)


def signed_checkpoint(store: AuditStore, signer: CheckpointSigner) -> Announcement | None:
    """`checkpoint`, with the key wherever the signer keeps it."""
    previous = store.latest_checkpoint()
    size, root = store.root()
    if previous is not None and previous.size >= size:
        return None
    cp = Checkpoint(signer.origin, size, root)
    note = signer.sign_checkpoint(cp, lambda old: store.consistency_proof(old, size))
    store.add_checkpoint(size, root, note)
    return announce(store, note, size, previous)


def announce(
    store: AuditStore, note: str, size: int, previous: CheckpointRow | None
) -> Announcement:
    old = previous.size if previous is not None else 0
    return Announcement(note, old, store.consistency_proof(old, size) if old else [])


class LogForkError(AuditError):
    """A new checkpoint does not extend the ones held: the log was forked or rewritten."""


@dataclass
class CheckpointKeeper:
    """An agency's copy of the log's checkpoints (size -> root), checked as they come.

    Each new checkpoint must be signed by the log's key and consistent with the one the
    keeper already holds at its `previous_size`; a second root for a known size, or a
    consistency proof that fails, is a fork.
    """

    verifier: NoteVerifier
    roots: dict[int, bytes]

    def accept(self, announcement: Announcement) -> Checkpoint:
        cp = open_checkpoint(announcement.note, self.verifier)
        known = self.roots.get(cp.size)
        if known is not None and known != cp.root:
            raise LogForkError(f"two different roots signed for size {cp.size}")
        self._check_extends(cp, announcement)
        self.roots[cp.size] = cp.root
        return cp

    def _check_extends(self, cp: Checkpoint, announcement: Announcement) -> None:
        old = announcement.previous_size
        if old == 0 or old not in self.roots:
            return  # nothing held to compare with: this one becomes the reference
        try:
            merkle.verify_consistency(
                old, cp.size, self.roots[old], cp.root, announcement.consistency
            )
        except ProofError as exc:
            raise LogForkError(
                f"checkpoint {cp.size} is not an extension of checkpoint {old}: {exc}"
            ) from None

    @property
    def latest(self) -> int:
        return max(self.roots, default=0)

    def to_json(self) -> str:
        return json.dumps({str(k): v.hex() for k, v in sorted(self.roots.items())})

    @classmethod
    def from_json(cls, verifier: NoteVerifier, text: str) -> CheckpointKeeper:
        return cls(verifier, {int(k): bytes.fromhex(v) for k, v in json.loads(text).items()})
