"""docs/reason-codes.md documents exactly the reason codes the gateway can put in a receipt:
no code an agency may receive is missing from it, and it lists none that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from broker.errors import ReasonCode

DOC = Path(__file__).resolve().parents[1] / "docs" / "reason-codes.md"
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def _table_rows() -> list[list[str]]:
    """Cells of each table row whose first cell is a backticked code."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in DOC.read_text().splitlines()
        if _ROW.match(line)
    ]


def _documented_codes() -> list[str]:
    return [row[0].strip("`") for row in _table_rows()]


def test_table_lists_every_reason_code_exactly_once():
    """Every ReasonCode value has a row and every row is a ReasonCode value, with no repeats:
    a code added to broker/errors.py without documentation fails here."""
    documented = _documented_codes()
    assert len(documented) == len(set(documented)), "a code is documented twice"
    assert set(documented) == {code.value for code in ReasonCode}


def test_every_row_says_when_and_what_to_do():
    """Each row has the three columns filled in: the code, when the gateway uses it (naming
    the pipeline step), and what the sender should do."""
    rows = _table_rows()
    assert rows
    for row in rows:
        assert len(row) == 3, row[0]
        code, when, action = row
        assert re.search(r"\b[Ss]tep \d|[Aa]ny step", when), code
        assert len(action) > 20, code


def test_parser_would_notice_a_missing_or_extra_code():
    """The check above can fail: the row pattern recognises table rows and nothing else."""
    assert _ROW.match("| `policy.denied` | Step 5 | do x |")
    assert not _ROW.match("| code | when | what |")
    assert not _ROW.match("|---|---|---|")
    assert not _ROW.match("The `policy.denied` code | is prose")
