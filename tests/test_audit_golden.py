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
import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

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


def test_sqlite_stores_times_and_flags_as_sqlalchemy_binds_them(tmp_path: Path) -> None:
    """The rows are written by the driver directly: the stored text must be the one
    SQLAlchemy's types wrote (range queries on SQLite compare it as text)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    audit_golden.run(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT occurred_at, recorded_at, typeof(occurred_at), typeof(review_required), "
            "review_required, restricted, typeof(leaf_hash), typeof(seq) FROM audit_log"
        ).all()
    dialect = engine.dialect
    engine.dispose()
    bind = sa.DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    assert len(rows) == 241
    shape = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
    for occurred, recorded, kind, flag_kind, review, restricted, leaf_kind, seq_kind in rows:
        assert shape.fullmatch(occurred), occurred
        assert shape.fullmatch(recorded), recorded
        for text in (occurred, recorded):  # what SQLAlchemy binds for the same instant
            assert bind(datetime.fromisoformat(text).replace(tzinfo=UTC)) == text
        assert (kind, flag_kind, leaf_kind, seq_kind) == ("text", "integer", "blob", "integer")
        assert review in {0, 1}
        assert restricted in {0, 1}
