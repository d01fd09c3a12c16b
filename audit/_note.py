"""C2SP signed notes and transparency-log checkpoints, Ed25519 only.

Specs: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint. Signature type
0x01, compatible with golang.org/x/mod/sumdb/note. Text from a note is never returned
unless a signature by the one trusted key verified over it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit._errors import NoteError

ED25519 = b"\x01"
"""The signed-note signature type byte for Ed25519."""

KEY_HASH_SIZE = 4
ROOT_SIZE = 32
# golang.org/x/mod/sumdb/note's limit; the spec asks verifiers for a limit of at least 16.
MAX_SIGNATURES = 100

_SIG_PREFIX = "\N{EM DASH} "
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_KEY_HASH = re.compile(r"[0-9a-f]{8}")
_MAX_SIZE = 2**64 - 1
_ED25519_KEY_SIZE = 32


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key: only signatures naming this name *and* key hash count."""

    name: str
    key_hash: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
        _check_name(name)
        return cls(name, key_hash(name, _raw(public_key)), public_key)

    def verifies(self, text: str, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log's tree head: the note text of a tlog-checkpoint."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("a checkpoint origin must be one non-empty line")
        if not 0 <= self.size <= _MAX_SIZE:
            raise NoteError(f"checkpoint size {self.size} is not a uint64")
        if len(self.root) != ROOT_SIZE:
            raise NoteError(f"a checkpoint root must be {ROOT_SIZE} bytes")

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse note text strictly; extension lines (opaque per the spec) are ignored."""
        if not body.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3 or not all(lines):  # noqa: PLR2004 - origin, size, root
            raise NoteError("a checkpoint is at least three non-empty lines")
        origin, size, root = lines[:3]
        if not _SIZE.fullmatch(size):
            raise NoteError("checkpoint size must be decimal digits without leading zeros")
        return cls(origin, int(size), _unb64(root, "checkpoint root"))


def key_hash(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || key)[:4], the spec's recommended Ed25519 key ID."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:KEY_HASH_SIZE]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The `name+hash+base64(0x01||key)` string that `parse_verifier_key` reads back."""
    verifier = NoteVerifier.from_public_key(name, public_key)
    return f"{name}+{verifier.key_hash.hex()}+{_b64(ED25519 + _raw(public_key))}"


def parse_verifier_key(text: str) -> NoteVerifier:
    """Read a verifier key string; the key hash in it must match the name and key."""
    parts = text.split("+", 2)  # base64 of the key may itself contain "+"
    if len(parts) != 3:  # noqa: PLR2004 - name, hash, key
        raise NoteError("a verifier key is name+hash+key")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    if not _KEY_HASH.fullmatch(hash_hex):
        raise NoteError("a verifier key hash is eight lowercase hex digits")
    key = _unb64(key_b64, "verifier key")
    if key[:1] != ED25519 or len(key) != 1 + _ED25519_KEY_SIZE:
        raise NoteError("only 32-byte Ed25519 verifier keys (type 0x01) are supported")
    verifier = NoteVerifier(name, bytes.fromhex(hash_hex), _public_key(key[1:]))
    if key_hash(name, key[1:]) != verifier.key_hash:
        raise NoteError(f"verifier key hash does not match the key for {name}")
    return verifier


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note: text, a blank line, then `— name base64(key hash || signature)`."""
    _check_name(name)
    _check_text(text)
    hashed = key_hash(name, _raw(private_key.public_key()))
    signature = private_key.sign(text.encode())
    return f"{text}\n{_SIG_PREFIX}{name} {_b64(hashed + signature)}\n"


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The note's text, once a signature by `verifier` verifies over it.

    Signatures by other keys are ignored, as the spec requires; a signature that names this
    key but does not verify rejects the whole note.
    """
    text, signatures = _split_note(note)  # 1. well-formed text and signature block
    ours = [sig for name, sig in signatures if _names(verifier, name, sig)]  # 2. our key's
    for sig in ours:  # 3. every signature claiming to be ours must verify
        if not verifier.verifies(text, sig[KEY_HASH_SIZE:]):
            raise NoteError(f"invalid signature for key {verifier.name}")
    if not ours:  # 4. and at least one must exist
        raise NoteError(f"note has no signature by key {verifier.name}")
    return text


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> str:
    """Sign the checkpoint as a note whose key name is its origin."""
    return sign_note(checkpoint.body(), checkpoint.origin, private_key)


def open_checkpoint(note: str, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """The verified checkpoint; its origin must be `origin`, by default the key's name."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise NoteError(f"checkpoint is for origin {checkpoint.origin!r}, not {expected!r}")
    return checkpoint


# --- helpers --------------------------------------------------------------------------


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    _check_chars(note)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no signature block")
    lines = note[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return note[: split + 1], [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(_SIG_PREFIX):
        raise NoteError("malformed note: a signature line must start with an em dash")
    name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    _check_name(name)
    signature = _unb64(encoded, "signature")
    if len(signature) <= KEY_HASH_SIZE:
        raise NoteError("malformed note: signature too short")
    return name, signature


def _names(verifier: NoteVerifier, name: str, signature: bytes) -> bool:
    return name == verifier.name and signature[:KEY_HASH_SIZE] == verifier.key_hash


def _check_name(name: str) -> None:
    # "+" separates verifier key fields and a space ends the name in a signature line.
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"invalid key name {name!r}: empty, or contains a space or '+'")
    _check_chars(name)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_chars(text)


def _check_chars(text: str) -> None:
    # The spec forbids control characters other than newline; text must be valid UTF-8.
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):  # noqa: PLR2004 - first printable
        raise NoteError("malformed note: control character")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise NoteError("malformed note: not valid UTF-8") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    """Strict standard base64: alphabet, padding and canonical trailing bits."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise NoteError(f"{what} is not standard base64") from None
    if _b64(data) != text:
        raise NoteError(f"{what} is not canonical base64")
    return data


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _public_key(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise NoteError("not an Ed25519 public key") from None
