"""`s284 audit verify`: re-hash every record, rebuild the tree, check every checkpoint.

The steps, each labelled inline:

    1 checkpoints  every stored checkpoint is signed by the log's key and says what its row says
    2 records      each record sits at its own position, parses, is canonical, hashes to the
                   leaf the log stored, agrees with its search columns and personal fields
    3 roots        the rebuilt tree's root at each checkpoint's size is the signed root
                   (so consecutive checkpoints are consistent: both are prefixes of one tree)
    4 coverage     no checkpoint covers records the store no longer has (truncation)
    5 tree         every stored Merkle node (used for proofs) is the one the records give
    6 erasure      every erased personal row is covered by an expiry record (`_integrity`)
    7 access       the access log's hash chain holds and matches every head sealed in the log
    8 guards       the append-only triggers are all there, unaltered: reported, never repaired

With a witness policy, step 1b adds every checkpoint a registered witness cosigned: a
log-signed checkpoint that disagrees with one is a rewrite (`witness.fork`), and steps 3
and 4 then hold the records to the witnessed roots too (rewrite, truncation).

The verifier stops at the first problem and names the record: later positions are
meaningless once one is wrong.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from audit import _fastjson
from audit import _merkle as merkle
from audit._cosign_store import (
    CosignatureRefusedError,
    WitnessPolicy,
    check_cosignature,
    stored_cosignatures,
)
from audit._errors import AuditError, NoteError
from audit._integrity import Finding, IntegrityCheck
from audit._note import NoteVerifier, open_checkpoint
from audit._records import canonical_json, personal_commitment, rfc3339
from audit._store import AuditStore, CheckpointRow, StoredRecord

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


@dataclass
class VerifyReport:
    records: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    root: bytes = merkle.EMPTY_ROOT
    problem: Problem | None = None
    checked_sizes: list[int] = field(default_factory=list)
    witnessed: dict[str, int] = field(default_factory=dict)  # witness -> largest cosigned

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Failed(Exception):  # noqa: N818 - internal control flow, carries the first problem
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def verify_log(
    store: AuditStore,
    verifier: NoteVerifier,
    extra: Sequence[str] = (),
    witnesses: WitnessPolicy | None = None,
) -> VerifyReport:
    """`extra`: checkpoints held elsewhere (e.g. by an agency) to check as well;
    `witnesses`: whose stored cosignatures count (1b)."""
    report = VerifyReport()
    started = time.perf_counter()
    try:
        checkpoints = _checked_checkpoints(store.checkpoints(), extra, verifier)  # 1
        if witnesses is not None:
            _add_witnessed(store, witnesses, verifier.name, checkpoints, report)  # 1b
        report.checkpoints = len(checkpoints)
        integrity = IntegrityCheck()
        builder = _rebuild(store, checkpoints, report, integrity)  # 2, 3
        _check_coverage(checkpoints, builder.size)  # 4
        _check_stored_tree(store, builder)  # 5
        report.root = builder.root()
        _check_integrity(store, integrity)  # 6, 7, 8
    except _Failed as failed:
        report.problem = failed.problem
    report.seconds = time.perf_counter() - started
    return report


def _checked_checkpoints(
    rows: list[CheckpointRow], extra: Sequence[str], verifier: NoteVerifier
) -> dict[int, bytes]:
    roots: dict[int, bytes] = {}
    notes = [(row.note, row) for row in rows] + [(note, None) for note in extra]
    for note, row in notes:
        where = f"checkpoint of size {row.size}" if row else "a checkpoint given to verify"
        try:
            cp = open_checkpoint(note, verifier)
        except NoteError as exc:
            raise _Failed(Problem("checkpoint.bad_signature", f"{where}: {exc}")) from None
        if row is not None and (cp.size, cp.root) != (row.size, row.root):
            raise _Failed(Problem("checkpoint.mismatch", f"{where}: signed note says otherwise"))
        if roots.get(cp.size, cp.root) != cp.root:
            raise _Failed(
                Problem("checkpoint.fork", f"two signed checkpoints of size {cp.size} disagree")
            )
        roots[cp.size] = cp.root
    return roots


def _check_integrity(store: AuditStore, integrity: IntegrityCheck) -> None:
    try:
        integrity.check(store)
    except Finding as found:
        raise _Failed(Problem(found.code, found.detail, found.seq)) from None


def _rebuild(
    store: AuditStore,
    checkpoints: dict[int, bytes],
    report: VerifyReport,
    integrity: IntegrityCheck,
) -> merkle.TreeBuilder:
    builder = merkle.TreeBuilder()
    batch = _NodeBatch(store, builder)
    if 0 in checkpoints:
        _check_root(builder, checkpoints[0], report)
    for stored in store.iter_stored():
        leaf = _checked_leaf(stored, builder.size)  # 2
        integrity.see(stored)
        builder.append(leaf)
        batch.add(leaf)
        report.records += 1
        if builder.size in checkpoints:
            _check_root(builder, checkpoints[builder.size], report)  # 3
    batch.check()
    return builder


class _NodeBatch:
    """Every Merkle node the rebuilt leaves complete must equal the stored one (5), checked
    a batch at a time with one range query per tree level."""

    SIZE = 8192

    def __init__(self, store: AuditStore, builder: merkle.TreeBuilder) -> None:
        self._store = store
        self._builder = builder
        self._start = 0
        self._frontier: list[bytes] = []
        self._leaves: list[bytes] = []

    def add(self, leaf: bytes) -> None:
        self._leaves.append(leaf)
        if len(self._leaves) >= self.SIZE:
            self.check()

    def check(self) -> None:
        nodes = merkle.completed_nodes(self._start, self._leaves, self._frontier)
        by_level: dict[int, dict[int, bytes]] = {}
        for level, index, digest in nodes:
            by_level.setdefault(level, {})[index] = digest
        for level, rebuilt in by_level.items():
            stored = self._store.nodes_between(level, min(rebuilt), max(rebuilt))
            for index, digest in rebuilt.items():
                if stored.get(index) != digest:
                    raise _Failed(_bad_node(level, index))
        self._start, self._frontier = self._builder.size, self._builder.frontier()
        self._leaves = []


def _bad_node(level: int, index: int) -> Problem:
    first = index << level
    return Problem(
        "tree.nodes_altered",
        f"the stored Merkle node over records {first}..{first + (1 << level) - 1} is missing "
        "or wrong; proofs served from it would not verify",
        first,
    )


def _check_root(builder: merkle.TreeBuilder, signed: bytes, report: VerifyReport) -> None:
    if builder.root() != signed:
        raise _Failed(
            Problem(
                "checkpoint.root_mismatch",
                f"records 0..{builder.size - 1} do not hash to the root signed at size "
                f"{builder.size}: a record was altered, inserted, removed or reordered",
                builder.size - 1,
            )
        )
    report.checked_sizes.append(builder.size)


def _checked_leaf(stored: StoredRecord, expected_seq: int) -> bytes:
    seq = stored.seq
    if seq != expected_seq:
        raise _Failed(Problem("record.missing", f"record {expected_seq} is missing", expected_seq))
    try:
        data: dict[str, Any] = _fastjson.loads(stored.canonical)
    except ValueError:
        raise _Failed(Problem("record.unparseable", f"record {seq} is not JSON", seq)) from None
    if data.get("seq") != seq:
        raise _Failed(
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
            raise _Failed(
                Problem("record.altered", f"record {seq} no longer hashes to its stored leaf", seq)
            )
    if leaf != stored.leaf_hash:
        raise _Failed(
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
        raise _Failed(
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
        raise _Failed(
            Problem(
                "record.personal_altered",
                f"record {stored.seq}: personal fields differ from their commitment",
                stored.seq,
            )
        )


def _check_coverage(checkpoints: dict[int, bytes], size: int) -> None:
    largest = max(checkpoints, default=0)
    if largest > size:
        raise _Failed(
            Problem(
                "log.truncated",
                f"a signed checkpoint covers {largest} records but the store has {size}: "
                f"record {size} onwards is missing",
                size,
            )
        )


def _check_stored_tree(store: AuditStore, builder: merkle.TreeBuilder) -> None:
    try:
        size, stored_root = store.root(builder.size)
    except AuditError as exc:
        raise _Failed(Problem("tree.nodes_altered", str(exc))) from None
    if stored_root != builder.root():
        raise _Failed(
            Problem(
                "tree.nodes_altered",
                f"the stored Merkle nodes of size {size} do not give the rebuilt root; "
                "proofs served from them would not verify",
            )
        )


# -- 1b witnesses: checkpoints the agencies' witnesses cosigned ------------------------------


def _add_witnessed(
    store: AuditStore,
    policy: WitnessPolicy,
    origin: str,
    checkpoints: dict[int, bytes],
    report: VerifyReport,
) -> None:
    for witness in policy.witnesses:
        report.witnessed[witness.name] = 0
    for body, line in stored_cosignatures(store):
        name = line.removeprefix("\N{EM DASH} ").partition(" ")[0]
        if policy.key(name) is None:
            continue  # a witness this verifier does not trust says nothing
        try:
            cosigned = check_cosignature(policy, origin, body, line)
        except CosignatureRefusedError as exc:
            raise _Failed(Problem("witness.bad_cosignature", f"{name}: {exc}")) from None
        size, root = cosigned.checkpoint.size, cosigned.checkpoint.root
        if checkpoints.get(size, root) != root:
            raise _Failed(
                Problem(
                    "witness.fork",
                    f"the log's checkpoint of size {size} is not the one witness {name} "
                    "cosigned: the log was rewritten and re-signed",
                )
            )
        checkpoints[size] = root
        report.witnessed[name] = max(report.witnessed.get(name, 0), size)
