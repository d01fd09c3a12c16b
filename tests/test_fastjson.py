"""audit._fastjson gives the stdlib's answers: the same canonical bytes, the same parse,
the same refusals (issue 14: the lean append and verify must change no byte)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditStore, NoteVerifier, _fastjson, checkpoint, verify_log
from audit._records import canonical_json
from tests.auditlog import record

_CHARACTERS = [chr(c) for c in range(0x3000) if not 0xD800 <= c < 0xE000] + [
    "\ufeff",
    "\uffff",
    "\u2028\u2029",
    "\U0001f600",
    "\U0010ffff",
]


def test_dumps_writes_the_canonical_bytes_for_every_character() -> None:
    for char in _CHARACTERS:
        value = {"b": char, "a": [char, None, True, False, 0, -3, 2**63 - 1], "c": {"z": char * 3}}
        assert _fastjson.dumps(value) == canonical_json(value), ascii(char)


def test_dumps_hands_what_orjson_refuses_to_the_stdlib() -> None:
    big = {"n": 2**70}
    assert _fastjson.dumps(big) == canonical_json(big) == b'{"n":1180591620717411303424}'
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate fails as it always did
        _fastjson.dumps({"s": "\ud800"})


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        '{"a":1.0,"b":[1E2,-0,null,true]}',
        '["\\u0000","\\u00e9",""]',
        " [1] ",
        "[1e400]",
        "[NaN]",
        '"\\ud800"',
        "[18446744073709551615, -9223372036854775808]",
    ],
)
def test_loads_parses_as_the_stdlib_does(text: str) -> None:
    expected = json.loads(text)
    got = _fastjson.loads(text)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("text", ["\ufeff[1]", "[1,]", "[01]", '"\x01"', '{"a":1}x', "", "{"])
def test_loads_refuses_what_the_stdlib_refuses(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's own error, a ValueError
        json.JSONDecoder().decode(text)
    with pytest.raises(ValueError):  # noqa: PT011
        _fastjson.loads(text)


def test_a_record_with_an_integer_beyond_64_bits_is_written_and_verifies(tmp_path) -> None:
    """orjson cannot write it (the stdlib does) and reads it as a float: the verifier's
    fast path doubts it, the stdlib re-check clears it; a tampered one still fails."""
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    verifier = NoteVerifier.from_public_key("s284.test/big", key.public_key())
    try:
        store.append([record(0, ingress_seq=2**70), record(1)])
        checkpoint(store, "s284.test/big", key)
        assert store.records()[0]["ingress_seq"] == 2**70
        report = verify_log(store, verifier)
        assert report.ok, report.problem
        assert report.records == 2
    finally:
        store.close()
