"""Canonical JSON by orjson, where it gives the stdlib's answer (issue 14).

`dumps` is `audit._records.canonical_json` (sorted keys, compact, UTF-8, non-ASCII as
itself): orjson writes the same bytes for every value a record holds (checked on every
character of the BMP and by tests/test_audit_golden.py and tests/test_fastjson.py);
whatever orjson refuses (a lone surrogate, an integer beyond 64 bits) goes to the stdlib
encoder, which then writes the same bytes or fails exactly as it always did.

`loads` is the verifier's fast parse: orjson first, and anything orjson refuses goes to
the stdlib decoder, whose verdict stands (it accepts NaN and 1e400, which orjson does
not). One difference remains: orjson reads an integer beyond 64 bits as a float, where
the stdlib keeps the integer; so the verifier takes a mismatch found on the fast path
only as a doubt, and parses again with the stdlib before it reports anything.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from audit._records import canonical_json

_SORTED = orjson.OPT_SORT_KEYS
_parse = json.JSONDecoder().decode  # json.loads without its per-call checks


def dumps(value: Any) -> bytes:
    """`canonical_json(value)`: the same bytes, several times faster."""
    try:
        return orjson.dumps(value, option=_SORTED)
    except orjson.JSONEncodeError:
        return canonical_json(value)


def loads(text: str) -> Any:
    """`json.loads(text)`, raising `ValueError` where it does."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _parse(text)
