# ruff: noqa: INP001 - a stand-alone script beside the docs, not a package
"""Generate the worked example of docs/audit-format.md.

EXAMPLE ONLY. The log key is derived from a public, fixed seed, the salts are fixed, and
every value is invented (the offender reference S284-000123 is synthetic). Never use this
key or these salts for anything but checking an implementation against this example.

    python docs/examples/make_audit_example.py \
        --json docs/examples/audit-example.json --doc docs/audit-format.md

prints the human-readable example, pastes it into docs/audit-format.md between the
GENERATED EXAMPLE markers, and writes the machine-readable one that
tests/test_audit_format_doc.py recomputes without the broker's code. Every input is fixed
and Ed25519 signatures are deterministic, so every run prints the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit import _merkle as merkle
from audit._checkpoints import Announcement
from audit._merkle import Position
from audit._note import Checkpoint, key_hash, sign_checkpoint, verifier_key
from audit._records import AuditRecord, canonical_json, canonical_record, personal_commitment
from broker.wire.jose import thumbprint

KEY_SEED = hashlib.sha256(b"s284 audit-format example only: log key").digest()
RECORDED_AT = datetime(2026, 11, 2, 23, 15, 43, 104211, tzinfo=UTC)
MESSAGE_ID = "01JBXR3T2E5EED00A10012345P"
PAYLOAD_DIGEST = hashlib.sha256(b"EXAMPLE ONLY: stands in for the sealed JWE").hexdigest()
FIRST_CHECKPOINT = 1  # the example signs the tree at size 1, then at size 3
CONSISTENCY_FROM = FIRST_CHECKPOINT


def example_salt(seq: int) -> bytes:
    """A fixed 32-byte salt per record; the store draws each one from `secrets`."""
    return hashlib.sha256(f"s284 audit-format example only: salt {seq}".encode()).digest()


def example_key() -> Ed25519PrivateKey:
    """The log key from a public seed: reproducible, and therefore worthless as a secret."""
    return Ed25519PrivateKey.from_private_bytes(KEY_SEED)


def example_origin(key: Ed25519PrivateKey) -> str:
    """Named as `LogSigner.generate` names a real log: host, path and key thumbprint."""
    return f"s284-broker.local/audit/{thumbprint(key.public_key())[:12]}"


def example_records() -> list[AuditRecord]:
    common: dict[str, Any] = {
        "ingress_agency": "corrections",
        "node": "gw-example-1",
        "message_id": MESSAGE_ID,
        "ingress_seq": 41,
        "sender_agency": "corrections",
        "sender_person": "staff-0042",
        "offender": "S284-000123",
        "kind": "risk.update",
        "purpose": "offender_management",
        "justification": "EXAMPLE ONLY: shared for the weekly case conference",
        "policy_version": "example-policy-v1",
        "payload_digest": PAYLOAD_DIGEST,
        "occurred_at": datetime(2026, 11, 2, 23, 15, 42, 911000, tzinfo=UTC),
    }
    return [
        AuditRecord(
            record_id="01JBXR3TBZ5EED00A100000001",
            dedupe_key=f"disclosed:{MESSAGE_ID}:police",
            event="disclosed",
            decision="permit",
            reason_code=None,
            reason="EXAMPLE: risk.update permitted for offender_management",
            recipient_agency="police",
            policy_ids=("example-permit",),
            **common,
        ),
        AuditRecord(
            record_id="01JBXR3TBZ5EED00A100000002",
            dedupe_key=f"disclosed:{MESSAGE_ID}:health",
            event="disclosed",
            decision="permit",
            reason_code=None,
            reason="EXAMPLE: risk.update permitted to health, clinical notes withheld",
            recipient_agency="health",
            policy_ids=("example-permit", "example-minimise"),
            withheld=("clinical_notes",),
            **{**common, "justification": "EXAMPLE ONLY: for the forensic clinician\u2019s review"},
        ),
        AuditRecord(
            record_id="01JBXR3TBZ5EED00A100000003",
            dedupe_key="refused:example-42",
            event="refused",
            decision="deny",
            reason_code="policy.denied",
            reason="disclosure to housing: no rule permits risk.update for purpose "
            "offender_management (default deny)",
            **{**common, "message_id": "01JBXR3V005EED00A10012345Q", "ingress_seq": 42},
        ),
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _record_entry(record: AuditRecord, seq: int) -> dict[str, Any]:
    salt = example_salt(seq)
    canonical = canonical_record(record, seq, RECORDED_AT, salt)
    encoded = canonical_json(canonical)
    personal = record.personal()
    return {
        "seq": seq,
        "canonical": canonical,
        "canonical_json": encoded.decode(),
        "leaf_hash": merkle.leaf_hash(encoded).hex(),
        "personal_fields": personal,
        "personal_fields_json": canonical_json(personal).decode(),
        "salt": salt.hex(),
        "personal": personal_commitment(salt, personal),
    }


class _Nodes:
    """Every perfect subtree of a small tree, as the store keeps them in audit_nodes."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes = {(lv, ix): h for lv, ix, h in merkle.completed_nodes(0, leaves, [])}

    def get_nodes(self, positions: Sequence[Position]) -> dict[Position, bytes]:
        return {p: self.nodes[p] for p in positions}


def build() -> dict[str, Any]:
    key = example_key()
    origin = example_origin(key)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    records = [_record_entry(r, seq) for seq, r in enumerate(example_records())]
    leaves = [bytes.fromhex(r["leaf_hash"]) for r in records]
    size = len(leaves)
    nodes = _Nodes(leaves)
    first = sign_checkpoint(Checkpoint(origin, FIRST_CHECKPOINT, merkle.root(leaves[:1])), key)
    root = merkle.root(leaves)
    latest = Checkpoint(origin, size, root)
    note = sign_checkpoint(latest, key)
    consistency = merkle.consistency_proof(CONSISTENCY_FROM, size, nodes)
    announcement = Announcement(note, CONSISTENCY_FROM, consistency)
    return {
        "_comment": "EXAMPLE ONLY: a log key from a public seed, fixed salts and invented "
        "data. Generated by docs/examples/make_audit_example.py; see docs/audit-format.md.",
        "log_key": {
            "origin": origin,
            "private_seed": KEY_SEED.hex(),
            "public_key": public.hex(),
            "key_hash": key_hash(origin, public).hex(),
            "verifier_key": verifier_key(origin, key.public_key()),
        },
        "records": records,
        "audit_nodes": [
            {"level": lv, "idx": ix, "hash": h.hex()} for (lv, ix), h in sorted(nodes.nodes.items())
        ],
        "tree": {"size": size, "root": root.hex(), "root_b64": _b64(root)},
        "inclusion_proofs": [
            {
                "leaf_index": seq,
                "tree_size": size,
                "audit_path": [h.hex() for h in merkle.inclusion_proof(seq, size, nodes)],
            }
            for seq in range(size)
        ],
        "consistency_proof": {
            "old": CONSISTENCY_FROM,
            "new": size,
            "old_root": merkle.root(leaves[:CONSISTENCY_FROM]).hex(),
            "proof": [h.hex() for h in consistency],
        },
        "checkpoints": [
            {"size": FIRST_CHECKPOINT, "note": first},
            {"size": size, "body": latest.body(), "note": note},
        ],
        "announcement": json.loads(announcement.to_json()),
    }


def render(ex: dict[str, Any]) -> str:
    key, tree, cons = ex["log_key"], ex["tree"], ex["consistency_proof"]
    out = [
        "=== EXAMPLE ONLY: a log key from a public seed and fixed salts; never use them ===",
        "",
        "--- log key (EXAMPLE ONLY) ---",
        f"origin (key name)       : {key['origin']}",
        f"Ed25519 private seed    : {key['private_seed']}",
        f"Ed25519 public key      : {key['public_key']}",
        f"key hash                : {key['key_hash']}",
        f"verifier key (.vkey)    : {key['verifier_key']}",
    ]
    for rec in ex["records"]:
        out += [
            "",
            f"--- record seq {rec['seq']} ---",
            "personal fields (canonical JSON, kept in audit_personal):",
            rec["personal_fields_json"],
            f"salt      : {rec['salt']}",
            f"personal  : {rec['personal']}",
            "canonical JSON (the leaf's bytes, one line):",
            rec["canonical_json"],
            f"leaf hash : {rec['leaf_hash']}",
        ]
    out += ["", "--- stored perfect subtrees (audit_nodes) ---"]
    out += [f"level {n['level']} idx {n['idx']} : {n['hash']}" for n in ex["audit_nodes"]]
    out += [
        "",
        f"--- tree of size {tree['size']} ---",
        f"root (hex)    : {tree['root']}",
        f"root (base64) : {tree['root_b64']}",
        "",
        "--- inclusion proofs (audit paths, nearest the leaf first) ---",
    ]
    out += [
        f"leaf {p['leaf_index']} in size {p['tree_size']} : {json.dumps(p['audit_path'])}"
        for p in ex["inclusion_proofs"]
    ]
    out += [
        "",
        f"--- consistency proof from size {cons['old']} to size {cons['new']} ---",
        f"old root : {cons['old_root']}",
        f"proof    : {json.dumps(cons['proof'])}",
    ]
    for cp in ex["checkpoints"]:
        out += ["", f"--- signed checkpoint of size {cp['size']} ---", cp["note"].rstrip("\n")]
    out += [
        "",
        "--- announcement on s284.checkpoint (JSON) ---",
        json.dumps(ex["announcement"], indent=2),
    ]
    return "\n".join(out) + "\n"


BEGIN_MARK = "<!-- BEGIN GENERATED EXAMPLE -->\n"
END_MARK = "<!-- END GENERATED EXAMPLE -->"


def paste_into(doc: Path, text: str) -> None:
    """Replace what lies between the markers in `doc` with `text` in a code block."""
    markdown = doc.read_text()
    start = markdown.index(BEGIN_MARK) + len(BEGIN_MARK)
    end = markdown.index(END_MARK, start)
    doc.write_text(f"{markdown[:start]}```text\n{text}```\n{markdown[end:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the machine-readable example")
    parser.add_argument("--doc", type=Path, help="also paste the example into this markdown")
    args = parser.parse_args(argv)
    example = build()
    text = render(example)
    if args.json is not None:
        args.json.write_text(json.dumps(example, indent=2, ensure_ascii=False) + "\n")
    if args.doc is not None:
        paste_into(args.doc, text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
