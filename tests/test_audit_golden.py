"""The log's append writes exactly the bytes it always wrote (issue 14's lean append).

tests/data/audit_golden.json was produced by the store before the lean append, from a
fixed input (tests/audit_golden.py: records from seed 284, fixed salts, clock and key).
Appending that input again must give every row byte for byte: canonical records, leaf
hashes, personal fields and salts, every Merkle node, every signed checkpoint, on SQLite
and on PostgreSQL. A different byte anywhere would change a leaf, a root or a signature
that agencies already hold.
"""

from __future__ import annotations

import json
from pathlib import Path

from audit import NoteVerifier, verify_log
from audit._store import AuditStore
from tests import audit_golden

GOLDEN = Path(__file__).parent / "data" / "audit_golden.json"


def test_append_is_byte_identical_to_the_golden_log(store_url: str) -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    got = audit_golden.run(store_url)
    assert set(got) == set(expected)
    for table, rows in expected.items():
        assert len(got[table]) == len(rows), table
        for stored, want in zip(got[table], rows, strict=True):
            assert stored == want, (table, want.get("seq", want.get("idx")))


def test_the_golden_log_verifies(store_url: str) -> None:
    audit_golden.run(store_url)
    store = AuditStore.open(store_url)
    try:
        verifier = NoteVerifier.from_public_key(audit_golden.ORIGIN, audit_golden.KEY.public_key())
        report = verify_log(store, verifier)
    finally:
        store.close()
    assert report.ok, report.problem
    assert report.records == 241
    assert report.checked_sizes[-1] == 241
