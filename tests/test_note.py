"""C2SP signed notes and checkpoints: Go's published vectors, round trips, refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit._errors import AuditError, NoteError
from audit._note import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)

# Vectors from golang.org/x/mod/sumdb/note, note_test.go (github.com/golang/mod,
# sumdb/note/note_test.go: TestNewVerifier, TestSign, TestOpen). The private key is
# "PRIVATE+KEY+PeterNeumann+c74f20a3+" followed by base64(0x01 || Ed25519 seed).
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SEED_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)

# A real checkpoint of the Go checksum database and its published key, as quoted in
# github.com/sigsum/sigsum-go pkg/checkpoint/checkpoint_test.go (TestGoSumDBCheckpoint:
# "Retrieved from https://sum.golang.org/latest, 2024-09-23"; the key is from
# golang/go src/cmd/go/internal/modfetch/key.go). Its origin is not its key name.
SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\n"
    "— sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevucFcA"
    "AlWFJJYle3EJlDCrQ+y3A8=\n"
)

# The example body in https://c2sp.org/tlog-checkpoint.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

ROOT = bytes(range(32))


def peter_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(PETER_SEED_B64)
    assert raw[0] == 1
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


@pytest.fixture(scope="module")
def peter() -> NoteVerifier:
    return parse_verifier_key(PETER_KEY)


# --- verifier keys --------------------------------------------------------------------


def test_go_verifier_key_parses_and_formats_back(peter):
    """Go's PeterNeumann key reads as name + key hash c74f20a3 and formats back identically."""
    assert peter.name == "PeterNeumann"
    assert peter.key_hash.hex() == "c74f20a3"
    assert verifier_key(peter.name, peter.public_key) == PETER_KEY
    assert verifier_key("PeterNeumann", peter_private_key().public_key()) == PETER_KEY


def test_every_mangling_of_a_verifier_key_is_refused():
    """As in Go's TestNewVerifier: every proper substring and every one-byte change fails."""
    mangled = {
        PETER_KEY[i:j]
        for i in range(len(PETER_KEY) + 1)
        for j in range(i + 1, len(PETER_KEY) + 1)
        if (i, j) != (0, len(PETER_KEY))
    }
    mangled |= {
        PETER_KEY[:i] + chr(ord(PETER_KEY[i]) + 1) + PETER_KEY[i + 1 :]
        for i in range(len(PETER_KEY))
    }
    # Go's two hand-made cases: wrong key length and unknown algorithm, hashes adjusted.
    mangled |= {
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    }
    accepted = []
    for key in mangled:
        try:
            parse_verifier_key(key)
        except NoteError:
            continue
        accepted.append(key)
    assert accepted == []


# --- notes ----------------------------------------------------------------------------


def test_signing_reproduces_go_output_byte_for_byte():
    """sign_note with Go's test key yields exactly the note Go's TestSign expects."""
    assert sign_note(TEXT, "PeterNeumann", peter_private_key()) == TEXT + "\n" + PETER_SIG


def test_go_note_opens_with_either_of_its_keys(peter):
    """A note signed by two keys opens with each key alone; the unknown one is ignored."""
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, peter) == TEXT
    assert open_note(note, parse_verifier_key(ENOCH_KEY)) == TEXT


def test_round_trip_with_a_fresh_key():
    """A note signed with a new key opens with that key's verifier and returns the text."""
    key = Ed25519PrivateKey.generate()
    verifier = parse_verifier_key(verifier_key("log.example/audit", key.public_key()))
    text = "line one\n\nline three after a blank line\n"
    assert open_note(sign_note(text, "log.example/audit", key), verifier) == text


@pytest.mark.parametrize(
    ("case", "note"),
    [
        ("text only", TEXT),
        ("no signatures", TEXT + "\n"),
        ("no final newline", TEXT + "\n" + PETER_SIG[:-1]),
        ("control character", "\x01" + TEXT + "\n" + PETER_SIG),
        ("lone surrogate", "\udcff" + TEXT + "\n" + PETER_SIG),
        ("space in name", TEXT + "\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBt=\n"),
        ("unexpected line", TEXT + "\n" + PETER_SIG + "Unexpected line.\n"),
        ("not base64", TEXT + "\n— PeterNeumann x08go/ZJ!kuBS9UG\n"),
        ("too many signatures", TEXT + "\n" + PETER_SIG * 101),
    ],
)
def test_malformed_notes_are_refused(peter, case, note):
    """Go's bad-message cases and the spec's character rules all raise NoteError."""
    with pytest.raises(NoteError):
        open_note(note, peter)


def test_a_bad_signature_by_the_trusted_key_rejects_the_note(peter):
    """Go's 'invalid signature' case: a corrupt signature from the known key is an error."""
    corrupt = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann"):
        open_note(TEXT + "\n" + corrupt, peter)
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(TEXT + "\n" + PETER_SIG + corrupt, peter)


def test_tampered_text_is_refused(peter):
    """Changing one character of the signed text makes the signature fail."""
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(TEXT.replace("answer", "Answer") + "\n" + PETER_SIG, peter)


@pytest.mark.parametrize(
    "signature_line",
    [
        PETER_SIG.replace("PeterNeumann", "CarmenSandiego"),  # right key hash, wrong name
        PETER_SIG.replace("x08g", "xxxx"),  # right name, wrong key hash
        ENOCH_SIG,  # another key altogether
    ],
)
def test_signatures_by_other_keys_do_not_count(peter, signature_line):
    """A signature whose name or key hash is not the trusted key's leaves the note unsigned."""
    with pytest.raises(NoteError, match="no signature by key PeterNeumann"):
        open_note(TEXT + "\n" + signature_line, peter)


def test_a_different_key_under_the_same_name_is_refused(peter):
    """A note signed by another key that uses the trusted key's name does not open."""
    note = sign_note(TEXT, "PeterNeumann", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        open_note(note, peter)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("no newline", "log"),
        ("control\x07char\n", "log"),
        (TEXT, ""),
        (TEXT, "a+b"),
        (TEXT, "two words"),
    ],
)
def test_signing_refuses_what_could_not_be_opened(text, name):
    """Text without a final newline, control characters or a bad key name cannot be signed."""
    with pytest.raises(NoteError):
        sign_note(text, name, Ed25519PrivateKey.generate())


def test_note_errors_are_audit_errors():
    """NoteError sits in the audit package's one hierarchy."""
    assert issubclass(NoteError, AuditError)


# --- checkpoints ----------------------------------------------------------------------


def test_checkpoint_body_is_origin_size_root_lines():
    """The body is origin, decimal size and standard base64 root, each ending in a newline."""
    checkpoint = Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert checkpoint.body() == (
        "example.com/behind-the-sofa\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    )
    assert Checkpoint.parse(SPEC_BODY).body() == SPEC_BODY
    assert Checkpoint.parse(SPEC_BODY).size == 20852163
    assert Checkpoint("o", 0, ROOT).body().split("\n")[1] == "0"


def test_extension_lines_are_ignored():
    """Non-empty extension lines after the root are opaque and do not change the checkpoint."""
    assert Checkpoint.parse(SPEC_BODY + "extension one\nextension two\n") == Checkpoint.parse(
        SPEC_BODY
    )


@pytest.mark.parametrize(
    "body",
    [
        SPEC_BODY[:-1],  # no final newline
        "example.com/log\n5\n",  # no root
        "\n5\n" + SPEC_BODY.split("\n")[2] + "\n",  # empty origin
        SPEC_BODY.replace("20852163", "020852163"),  # leading zero
        SPEC_BODY.replace("20852163", "+20852163"),
        SPEC_BODY.replace("20852163", "-1"),
        SPEC_BODY.replace("20852163", "2085 2163"),
        SPEC_BODY.replace("20852163", "٢٠"),  # non-ASCII digits
        SPEC_BODY.replace("20852163", "18446744073709551616"),  # 2**64
        SPEC_BODY.replace("CsUY", "Cs!Y"),  # not base64
        SPEC_BODY.replace("q2I=", "q2J="),  # non-canonical trailing bits
        SPEC_BODY.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "AAAA"),  # 3 bytes
        SPEC_BODY + "\n",  # empty extension line
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body):
    """Anything but origin / decimal size / 32-byte base64 root (+ extensions) is a NoteError."""
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_checkpoint_sign_and_open_round_trip():
    """sign_checkpoint signs under the origin's name; open_checkpoint returns the same value."""
    key = Ed25519PrivateKey.generate()
    checkpoint = Checkpoint("s284.example/audit", 42, ROOT)
    note = sign_checkpoint(checkpoint, key)
    assert note.startswith(checkpoint.body() + "\n— s284.example/audit ")
    verifier = NoteVerifier.from_public_key("s284.example/audit", key.public_key())
    assert open_checkpoint(note, verifier) == checkpoint


def test_a_checkpoint_for_another_origin_is_refused():
    """A validly signed checkpoint whose origin is not the one expected raises NoteError."""
    key = Ed25519PrivateKey.generate()
    note = sign_note(Checkpoint("other.example/log", 1, ROOT).body(), "s284.example/audit", key)
    verifier = NoteVerifier.from_public_key("s284.example/audit", key.public_key())
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, verifier)


def test_real_go_checksum_database_checkpoint_verifies():
    """A real sum.golang.org checkpoint opens under its published key, origin given explicitly."""
    verifier = parse_verifier_key(SUMDB_KEY)
    checkpoint = open_checkpoint(SUMDB_CHECKPOINT, verifier, origin="go.sum database tree")
    assert checkpoint.size == 30055305
    assert checkpoint.body() + "\n" == SUMDB_CHECKPOINT.partition("— ")[0]
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(SUMDB_CHECKPOINT, verifier)
    with pytest.raises(NoteError):
        open_checkpoint(SUMDB_CHECKPOINT.replace("30055305", "30055306"), verifier)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [("", 1, ROOT), ("two\nlines", 1, ROOT), ("o", -1, ROOT), ("o", 2**64, ROOT), ("o", 1, b"")],
)
def test_impossible_checkpoints_cannot_be_built(origin, size, root):
    """A Checkpoint value always has a body that parses back to itself."""
    with pytest.raises(NoteError):
        Checkpoint(origin, size, root)
