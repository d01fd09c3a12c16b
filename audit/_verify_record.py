"""Step 2 of `s284 audit verify` for one record: the checks that need nothing but the
record itself, so several processes can run them over ranges of the log
(`audit._verify_parallel`) while the order-dependent steps stay in one place
(`audit._verify`).

A record sits at its own position, parses, is canonical, hashes to the leaf the log
stored, agrees with its search columns and with its personal fields' commitment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from audit import _fastjson
from audit import _merkle as merkle
from audit._records import canonical_json, personal_commitment, rfc3339
from audit._store import StoredRecord

# Records are parsed and re-encoded by orjson (`audit._fastjson`); where that finds a
# difference, the stdlib parses and encodes again and its answer is the verdict: orjson
# reads an integer beyond 64 bits as a float, which a canonical record may hold.
# json.loads without its per-call checks and lookups (a BOM still fails to parse).
_parse = json.JSONDecoder().decode

# Search columns whose value must equal the canonical member of the same name.
_PLAIN_COLUMNS = (
    "record_id",
    "event",
    "message_id",
    "correlation_id",
    "ingress_agency",
    "sender_agency",
    "recipient_agency",
    "kind",
    "purpose",
    "decision",
    "reason_code",
    "review_required",
    "restricted",
    "refers_to",
)


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str
    seq: int | None = None


class Failed(Exception):  # noqa: N818 - internal control flow, carries the first problem
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def checked_leaf(stored: StoredRecord, expected_seq: int) -> bytes:
    seq = stored.seq
    if seq != expected_seq:
        raise Failed(Problem("record.missing", f"record {expected_seq} is missing", expected_seq))
    try:
        data: dict[str, Any] = _fastjson.loads(stored.canonical)
    except ValueError:
        raise Failed(Problem("record.unparseable", f"record {seq} is not JSON", seq)) from None
    if data.get("seq") != seq:
        raise Failed(
            Problem(
                "record.out_of_place",
                f"record {seq} says it is record {data.get('seq')}: inserted or reordered",
                seq,
            )
        )
    encoded = stored.canonical.encode()
    leaf = merkle.leaf_hash(encoded)
    if _fastjson.dumps(data) != encoded:  # the fast path's doubt: the stdlib decides
        data = _parse(stored.canonical)
        if canonical_json(data) != encoded:
            raise Failed(
                Problem("record.altered", f"record {seq} no longer hashes to its stored leaf", seq)
            )
    if leaf != stored.leaf_hash:
        raise Failed(
            Problem("record.altered", f"record {seq} no longer hashes to its stored leaf", seq)
        )
    _check_projection(stored, data)
    _check_personal(stored, data)
    return leaf


def _check_projection(stored: StoredRecord, data: dict[str, Any]) -> None:
    row = stored.projection
    differs = [name for name in _PLAIN_COLUMNS if row[name] != data.get(name)]
    ids, column = data.get("policy_ids"), row["policy_ids"]
    if _fastjson.loads(column) != ids and _parse(column) != ids:
        differs.append("policy_ids")
    differs += [
        name for name in ("occurred_at", "recorded_at") if _as_rfc3339(row[name]) != data[name]
    ]
    if differs:
        names = ", ".join(differs)
        raise Failed(
            Problem(
                "record.altered",
                f"record {stored.seq}: column(s) {names} differ from the hashed record",
                stored.seq,
            )
        )


@lru_cache(maxsize=4)  # a batch's records share one recorded_at
def _as_rfc3339(value: datetime) -> str:
    # SQLite hands back naive datetimes; the store writes UTC only.
    if value.tzinfo is None and value.year >= 1000:  # noqa: PLR2004 - rfc3339's own test
        return value.isoformat(timespec="microseconds") + "Z"  # rfc3339's text, directly
    return rfc3339(value.replace(tzinfo=UTC) if value.tzinfo is None else value)


def _check_personal(stored: StoredRecord, data: dict[str, Any]) -> None:
    if stored.salt is None or stored.personal is None:
        return  # erased by retention: the commitment stays, nothing to compare
    committed = data.get("personal")
    fast = hashlib.sha256(stored.salt + _fastjson.dumps(_fastjson.loads(stored.personal)))
    if (
        fast.hexdigest() != committed  # the fast path's doubt: the stdlib decides
        and personal_commitment(stored.salt, _parse(stored.personal)) != committed
    ):
        raise Failed(
            Problem(
                "record.personal_altered",
                f"record {stored.seq}: personal fields differ from their commitment",
                stored.seq,
            )
        )
