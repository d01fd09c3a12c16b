"""The worked example in docs/audit-format.md is real: its hashes, root, proofs and signed
checkpoints are recomputed here from the documented rules alone (hashlib, json and
`cryptography`, not the audit package), the doc quotes the same values as the JSON, and
the generator reproduces the JSON byte for byte. If code, JSON or doc drift, these fail."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
EXAMPLE_TEXT = (EXAMPLES / "audit-example.json").read_text()
EXAMPLE: dict[str, Any] = json.loads(EXAMPLE_TEXT)
DOC = (ROOT / "docs" / "audit-format.md").read_text()
RECORDS = EXAMPLE["records"]
PERSONAL_FIELDS = {
    "offender",
    "sender_person",
    "recipient_contact",
    "justification",
    "consent_reference",
    "law_reference",
}
CANONICAL_MEMBERS = {
    "v", "seq", "record_id", "event", "occurred_at", "recorded_at", "message_id",
    "correlation_id", "ingress_agency", "ingress_seq", "sender_agency", "recipient_agency",
    "kind", "purpose", "ground", "decision", "reason_code", "reason", "policy_ids",
    "policy_version", "review_required", "restricted", "withheld", "payload_digest",
    "refers_to", "node", "personal",
}  # fmt: skip
RFC3339_UTC_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


# -- RFC 9162 section 2.1, written out from the RFC -----------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _leaf(data: bytes) -> bytes:
    return _sha256(b"\x00" + data)


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return _sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], *, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole=whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], whole=False), _mth(leaves[:k])]


def _verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = _node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def _verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2, step by step (for 0 < first < second)."""
    if not proof:
        return False
    if first & (first - 1) == 0:
        proof = [first_root, *proof]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# -- C2SP signed note, written out from the spec ------------------------------------------


def _parse_vkey(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    name, key_hash_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64, validate=True)
    assert key[0] == 1  # signature type: Ed25519
    assert len(key) == 33
    assert _sha256(name.encode() + b"\n" + key)[:4].hex() == key_hash_hex
    return name, bytes.fromhex(key_hash_hex), Ed25519PublicKey.from_public_bytes(key[1:])


def _open_note(note: str, vkey: str) -> list[str]:
    """Verify a signed note with the verifier key; return the text's lines."""
    name, key_hash, public = _parse_vkey(vkey)
    text, _, sig_block = note.rpartition("\n\n")
    text += "\n"
    [sig_line] = sig_block.rstrip("\n").split("\n")
    prefix = f"\N{EM DASH} {name} "
    assert sig_line.startswith(prefix)
    blob = base64.b64decode(sig_line[len(prefix) :], validate=True)
    assert blob[:4] == key_hash
    public.verify(blob[4:], text.encode("utf-8"))
    return text.rstrip("\n").split("\n")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _leaves() -> list[bytes]:
    return [_leaf(r["canonical_json"].encode("utf-8")) for r in RECORDS]


# -- the records ---------------------------------------------------------------------------


def test_each_records_leaf_is_the_hash_of_its_canonical_json():
    """A leaf is SHA-256(0x00 || the record's canonical JSON bytes), as section 2 says."""
    for record in RECORDS:
        assert _leaf(record["canonical_json"].encode()).hex() == record["leaf_hash"]


def test_canonical_json_is_sorted_compact_utf8_of_the_canonical_object():
    """Serialising the documented objects with sorted keys, no whitespace and raw UTF-8 gives
    exactly the hashed bytes, so any JCS library reproduces them; non-ASCII is not escaped."""
    for record in RECORDS:
        assert _canonical(record["canonical"]) == record["canonical_json"].encode()
    assert "\u2019" in RECORDS[1]["personal_fields_json"]
    assert "\\u2019" not in RECORDS[1]["personal_fields_json"]


def test_canonical_object_has_exactly_the_documented_members_and_no_personal_field():
    """Every member of section 1.1's table is present, nothing else is, the personal fields
    stay out of the hashed record, and every member is named in the doc's table."""
    for record in RECORDS:
        members = set(record["canonical"])
        assert members == CANONICAL_MEMBERS
        assert not members & PERSONAL_FIELDS
        assert record["canonical"]["seq"] == record["seq"]
        assert record["canonical"]["v"] == 1
        for stamp in ("occurred_at", "recorded_at"):
            assert RFC3339_UTC_MICROS.fullmatch(record["canonical"][stamp])
    for member in CANONICAL_MEMBERS | PERSONAL_FIELDS:
        assert f"| `{member}` |" in DOC


def test_personal_commitment_is_salted_sha256_of_the_personal_fields():
    """`personal` = hex SHA-256(32-byte salt || canonical JSON of the six personal fields):
    whoever holds the fields and the salt can check them against the hashed record."""
    for record in RECORDS:
        salt = bytes.fromhex(record["salt"])
        assert len(salt) == 32
        assert set(record["personal_fields"]) == PERSONAL_FIELDS
        fields = _canonical(record["personal_fields"])
        assert fields == record["personal_fields_json"].encode()
        assert _sha256(salt + fields).hex() == record["personal"] == record["canonical"]["personal"]


def test_grounds_quoted_in_the_doc_are_the_ones_records_carry():
    """Section 1.3 quotes every s 284 ground string exactly as the code writes it."""
    from audit import GROUNDS

    for purpose, ground in GROUNDS.items():
        assert f"| `{purpose}` | `{ground}` |" in DOC
    for record in RECORDS:
        assert record["canonical"]["ground"] == GROUNDS[record["canonical"]["purpose"]]


# -- the tree and proofs -------------------------------------------------------------------


def test_root_is_the_rfc9162_merkle_tree_hash_of_the_leaves_in_seq_order():
    """MTH over the leaves, leaf index = seq, is the documented root (hex and base64)."""
    root = _mth(_leaves())
    assert EXAMPLE["tree"]["size"] == len(RECORDS)
    assert root.hex() == EXAMPLE["tree"]["root"]
    assert base64.b64encode(root).decode() == EXAMPLE["tree"]["root_b64"]


def test_stored_nodes_are_the_perfect_subtrees():
    """Each audit_nodes row (level, idx) is MTH of leaves [idx*2^level, (idx+1)*2^level)."""
    leaves = _leaves()
    for row in EXAMPLE["audit_nodes"]:
        lo = row["idx"] << row["level"]
        span = leaves[lo : lo + (1 << row["level"])]
        assert len(span) == 1 << row["level"]
        assert _mth(span).hex() == row["hash"]


def test_inclusion_proofs_are_rfc9162_paths_and_verify():
    """Each documented audit path is PATH(m, D[n]) and verifies from the leaf to the root;
    with any hash flipped it does not."""
    leaves, root = _leaves(), _mth(_leaves())
    for proof in EXAMPLE["inclusion_proofs"]:
        m, n = proof["leaf_index"], proof["tree_size"]
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert path == _path(m, leaves[:n])
        assert _verify_inclusion(leaves[m], m, n, path, root)
        bad = [bytes(32), *path[1:]]
        assert not _verify_inclusion(leaves[m], m, n, bad, root)


def test_consistency_proof_is_rfc9162_and_links_the_two_checkpoints():
    """The documented consistency proof is PROOF(m, D[n]) and verifies from the size-1 root
    to the size-3 root; it would not verify against a different old root."""
    leaves = _leaves()
    cons = EXAMPLE["consistency_proof"]
    m, n = cons["old"], cons["new"]
    proof = [bytes.fromhex(h) for h in cons["proof"]]
    old_root, new_root = _mth(leaves[:m]), _mth(leaves[:n])
    assert old_root.hex() == cons["old_root"]
    assert proof == _subproof(m, leaves[:n], whole=True)
    assert _verify_consistency(m, n, old_root, new_root, proof)
    assert not _verify_consistency(m, n, bytes(32), new_root, proof)


# -- checkpoints ---------------------------------------------------------------------------


def test_verifier_key_is_the_log_public_key_with_its_key_hash():
    """The vkey is name+keyhash+base64(0x01||key), keyhash = SHA-256(name||0x0A||0x01||key)[:4],
    and the public key is the one the documented seed gives."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = EXAMPLE["log_key"]
    name, key_hash, public = _parse_vkey(key["verifier_key"])
    assert name == key["origin"]
    assert key_hash.hex() == key["key_hash"]
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert raw.hex() == key["public_key"]
    seed = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["private_seed"]))
    assert seed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == raw


def test_checkpoint_notes_verify_and_carry_the_tree_roots():
    """Each signed note verifies with the vkey over its text (origin, size, base64 root) and
    names the root of the tree at its size."""
    leaves, vkey = _leaves(), EXAMPLE["log_key"]["verifier_key"]
    for cp in EXAMPLE["checkpoints"]:
        origin, size, root_b64 = _open_note(cp["note"], vkey)
        assert origin == EXAMPLE["log_key"]["origin"]
        assert int(size) == cp["size"]
        assert base64.b64decode(root_b64) == _mth(leaves[: cp["size"]])
    assert EXAMPLE["checkpoints"][-1]["note"].startswith(EXAMPLE["checkpoints"][-1]["body"])


def test_a_changed_checkpoint_note_does_not_verify():
    """Changing the signed text (here, the size) breaks the Ed25519 signature."""
    note = EXAMPLE["checkpoints"][-1]["note"]
    forged = note.replace("\n3\n", "\n2\n", 1)
    with pytest.raises(InvalidSignature):
        _open_note(forged, EXAMPLE["log_key"]["verifier_key"])


def test_announcement_carries_the_note_and_a_consistency_proof_from_the_previous_size():
    """The s284.checkpoint message is the newest note, the previous checkpoint's size and the
    hex consistency proof between them: what an agency's keeper checks."""
    ann = EXAMPLE["announcement"]
    assert set(ann) == {"note", "previous_size", "consistency"}
    assert ann["note"] == EXAMPLE["checkpoints"][-1]["note"]
    assert ann["previous_size"] == EXAMPLE["checkpoints"][0]["size"]
    assert ann["consistency"] == EXAMPLE["consistency_proof"]["proof"]


def test_the_audit_package_accepts_the_example_as_an_agency_would():
    """The package's own keeper accepts both checkpoints in order, and its verifier accepts
    every inclusion proof: the independent reading above and the code agree."""
    from audit import (
        Announcement,
        CheckpointKeeper,
        leaf_hash,
        parse_verifier_key,
        verify_inclusion,
    )

    keeper = CheckpointKeeper(parse_verifier_key(EXAMPLE["log_key"]["verifier_key"]), {})
    first = EXAMPLE["checkpoints"][0]["note"]
    keeper.accept(Announcement(first, 0, []))
    keeper.accept(Announcement.from_json(json.dumps(EXAMPLE["announcement"]).encode()))
    assert keeper.latest == EXAMPLE["tree"]["size"]
    root = bytes.fromhex(EXAMPLE["tree"]["root"])
    for proof, record in zip(EXAMPLE["inclusion_proofs"], RECORDS, strict=True):
        leaf = leaf_hash(record["canonical_json"].encode())
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"], path, root)


# -- doc, JSON and generator agree ---------------------------------------------------------


def test_doc_quotes_the_same_example_as_the_json():
    """docs/audit-format.md shows the same root, notes, vkey, leaves and canonical records as
    audit-example.json, so the prose example cannot diverge from the checked one."""
    assert EXAMPLE["tree"]["root"] in DOC
    assert EXAMPLE["tree"]["root_b64"] in DOC
    assert EXAMPLE["log_key"]["verifier_key"] in DOC
    for cp in EXAMPLE["checkpoints"]:
        assert cp["note"].rstrip("\n") in DOC
    for record in RECORDS:
        assert record["canonical_json"] in DOC
        assert record["leaf_hash"] in DOC
        assert record["salt"] in DOC
    assert "EXAMPLE ONLY" in DOC


def test_generator_reproduces_the_json_and_the_doc_exactly():
    """Running docs/examples/make_audit_example.py again gives the committed JSON and the
    committed doc section byte for byte: the example is deterministic and up to date."""
    spec = importlib.util.spec_from_file_location(
        "make_audit_example", EXAMPLES / "make_audit_example.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    example = module.build()
    assert json.dumps(example, indent=2, ensure_ascii=False) + "\n" == EXAMPLE_TEXT
    assert f"{module.BEGIN_MARK}```text\n{module.render(example)}```\n{module.END_MARK}" in DOC


def test_every_problem_code_the_verifier_reports_is_documented():
    """Each `Problem("<code>", ...)` in audit/_verify*.py is explained in section 5."""
    source = "".join(p.read_text() for p in sorted((ROOT / "audit").glob("_verify*.py")))
    codes = set(re.findall(r'Problem\(\s*"([a-z_]+\.[a-z_]+)"', source))
    assert len(codes) >= 11
    for code in codes:
        assert f"`{code}`" in DOC, code
    assert "Exit codes" in DOC
    assert "**4**" in DOC
