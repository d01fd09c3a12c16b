"""Bounds checked on untrusted JSON before any parser sees it.

Python's `json` recurses once per nesting level: a JWS header nested 20,000 deep raised
`RecursionError`, which the gateway took for a bug and retried ten times, each with a
traceback (issue 17). A linear scan that never recurses refuses such a document first, with
the `CryptoError` every malformed JOSE part already raises, so the gateway refuses the
frame once as `frame.malformed`. Kept apart from broker/wire/jose.py (tuned for speed) and
called at each entry point that parses untrusted bytes.
"""

from __future__ import annotations

import re

from broker.errors import CryptoError

HEADER_MAX_BYTES = 8 * 1024  # a protected header is ~100-300 bytes of alg, kid, typ, epk
HEADER_MAX_DEPTH = 4  # the JWE header's `epk` object is the deepest part (2)
DOCUMENT_MAX_DEPTH = 64  # claims, envelope and payload: agencies' records nest far less

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_OPENING = frozenset(b"[{")


def check_json(raw: bytes | str, *, max_bytes: int, max_depth: int) -> None:
    """Raise `CryptoError` if `raw` is longer than `max_bytes` or nests deeper than
    `max_depth`; otherwise return and let the real parser judge the syntax."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > max_bytes:
        raise CryptoError(f"JSON document of {len(data)} bytes; the limit is {max_bytes}")
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return  # the common case: too few brackets to be too deep, whatever the strings hold
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', data)):
        depth += 1 if match.group()[0] in _OPENING else -1
        if depth > max_depth:
            raise CryptoError(f"JSON nested more than {max_depth} levels deep")
