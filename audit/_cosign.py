"""Witness cosignatures of checkpoints (C2SP tlog-cosignature) and the witness's own check
(C2SP tlog-witness `add-checkpoint`).

A cosignature is a signed-note signature line by a witness key (type 0x04) over
`cosignature/v1\\ntime <t>\\n` followed by the checkpoint body; its signature bytes are
the 8-byte big-endian timestamp then the Ed25519 signature. A witness cosigns a checkpoint
only after checking that it extends the last one the witness cosigned: an insider who
rewrites or truncates the log then contradicts a statement the log's key cannot forge.
Specs: https://c2sp.org/tlog-cosignature and https://c2sp.org/tlog-witness.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from audit import _merkle as merkle
from audit._errors import AuditError, NoteError, ProofError
from audit._note import Checkpoint, NoteVerifier, open_checkpoint

COSIGNATURE_V1 = b"\x04"
"""The signed-note key type byte of an Ed25519 cosignature/v1 key."""

_PREFIX = "\N{EM DASH} "
_KEY_ID = 4
_TIMESTAMP = 8
_ED25519_SIG = 64
_MAX_TIMESTAMP = 2**63 - 1


class WitnessRefusedError(AuditError):
    """A witness will not cosign: the checkpoint does not extend what it cosigned before."""


class WitnessConflictError(WitnessRefusedError):
    """The request's `old` size is not the size the witness last cosigned (tlog-witness 409)."""

    def __init__(self, known: int) -> None:
        super().__init__(f"the witness last cosigned size {known}; ask again from there")
        self.known = known


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || key)[:4], as tlog-cosignature requires."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + public_key).digest()[:_KEY_ID]


def signed_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public key (a vkey of type 0x04): the one thing a verifier trusts it by."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        name, _, rest = vkey.strip().partition("+")
        hash_hex, _, key_b64 = rest.partition("+")
        try:
            raw = base64.b64decode(key_b64, validate=True)
            key_id = bytes.fromhex(hash_hex)
        except ValueError:
            raise NoteError(f"witness key {name!r} is not name+hash+base64") from None
        if not name or " " in name or raw[:1] != COSIGNATURE_V1 or len(raw) != 33:  # noqa: PLR2004
            raise NoteError(f"witness key {name!r} is not an Ed25519 cosignature/v1 key (0x04)")
        if cosigner_key_id(name, raw[1:]) != key_id:
            raise NoteError(f"witness key hash does not match the key for {name}")
        return cls(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(COSIGNATURE_V1 + _raw(self.public_key))}"

    def verify(self, body: str, line: str) -> int | None:
        """The cosignature's timestamp if `line` is this witness's valid cosignature of
        `body`; None if the line names another key; NoteError if it claims us but fails."""
        name, _, encoded = line.removeprefix(_PREFIX).partition(" ")
        try:
            sig = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError(f"cosignature by {name!r} is not base64") from None
        if name != self.name or sig[:_KEY_ID] != self.key_id:
            return None
        if len(sig) != _KEY_ID + _TIMESTAMP + _ED25519_SIG:
            raise NoteError(f"cosignature by {name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", sig[_KEY_ID : _KEY_ID + _TIMESTAMP])
        try:
            self.public_key.verify(sig[_KEY_ID + _TIMESTAMP :], signed_message(body, timestamp))
        except InvalidSignature:
            raise NoteError(f"invalid cosignature by witness {name}") from None
        return int(timestamp)


@dataclass(frozen=True, repr=False)
class WitnessSigner:
    """A witness's private key. Lives only in the witness's own home, never the broker's."""

    name: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> WitnessSigner:
        return cls(name, Ed25519PrivateKey.generate())

    def __repr__(self) -> str:
        return f"WitnessSigner(name={self.name!r})"

    @property
    def public(self) -> WitnessKey:
        raw = _raw(self.key.public_key())
        return WitnessKey(self.name, cosigner_key_id(self.name, raw), self.key.public_key())

    def cosign(self, body: str, timestamp: int) -> str:
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise NoteError("a cosignature timestamp must fit in 63 bits")
        sig = self.key.sign(signed_message(body, timestamp))
        packed = self.public.key_id + struct.pack(">Q", timestamp) + sig
        return f"{_PREFIX}{self.name} {_b64(packed)}"

    def private_json(self) -> str:
        raw = self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return json.dumps({"name": self.name, "d": _b64(raw)})

    @classmethod
    def from_json(cls, text: str) -> WitnessSigner:
        data = json.loads(text)
        return cls(
            str(data["name"]), Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["d"]))
        )


# -- the witness's check (tlog-witness add-checkpoint) ------------------------------------


@dataclass(frozen=True)
class AddCheckpoint:
    """A tlog-witness `add-checkpoint` request: `old <size>`, the consistency proof from
    that size (one base64 hash a line), a blank line, then the signed checkpoint note."""

    old: int
    proof: list[bytes]
    note: str

    def encode(self) -> str:
        lines = [f"old {self.old}", *(_b64(h) for h in self.proof)]
        return "\n".join(lines) + "\n\n" + self.note

    @classmethod
    def parse(cls, text: str) -> AddCheckpoint:
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines[0].startswith("old "):
            raise NoteError("an add-checkpoint request starts with `old <size>` and a blank line")
        try:
            return cls(
                int(lines[0][4:]), [base64.b64decode(h, validate=True) for h in lines[1:]], note
            )
        except ValueError:
            raise NoteError("malformed add-checkpoint request") from None


@dataclass(frozen=True)
class WitnessState:
    """What a witness last cosigned for one log: size and root (size 0: nothing yet)."""

    size: int = 0
    root: bytes = merkle.EMPTY_ROOT

    def to_json(self) -> str:
        return json.dumps({"size": self.size, "root": self.root.hex()})

    @classmethod
    def from_json(cls, text: str) -> WitnessState:
        data = json.loads(text)
        return cls(int(data["size"]), bytes.fromhex(data["root"]))


def add_checkpoint(
    state: WitnessState,
    log: NoteVerifier,
    request: AddCheckpoint,
    signer: WitnessSigner,
    timestamp: int,
) -> tuple[WitnessState, str]:
    """Check the request as tlog-witness says, then cosign: (new state, cosignature line).

    The steps: 1 the note is signed by the log's key for its origin; 2 `old` is the size we
    last cosigned (else conflict); 3 the checkpoint does not go backwards; 4 the proof shows
    it extends the root we cosigned. A refused checkpoint leaves the state unchanged.
    """
    checkpoint = open_checkpoint(request.note, log)  # 1
    if request.old != state.size:  # 2
        raise WitnessConflictError(state.size)
    if checkpoint.size < state.size:  # 3
        raise WitnessRefusedError(
            f"checkpoint of size {checkpoint.size} is smaller than the size {state.size} "
            "this witness cosigned: the log was truncated"
        )
    _check_extends(state, checkpoint, request.proof)  # 4
    line = signer.cosign(checkpoint.body(), timestamp)
    return WitnessState(checkpoint.size, checkpoint.root), line


def _check_extends(state: WitnessState, checkpoint: Checkpoint, proof: list[bytes]) -> None:
    if state.size == 0:
        if proof:
            raise WitnessRefusedError("no consistency proof is needed from size 0")
        return
    try:
        merkle.verify_consistency(state.size, checkpoint.size, state.root, checkpoint.root, proof)
    except ProofError as exc:
        raise WitnessRefusedError(
            f"checkpoint of size {checkpoint.size} does not extend the checkpoint of size "
            f"{state.size} this witness cosigned: {exc}"
        ) from None
