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

import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from audit import _merkle as merkle
from audit import _verify_parallel as parallel
from audit._cosign_store import (
    CosignatureRefusedError,
    WitnessPolicy,
    check_cosignature,
    stored_cosignatures,
)
from audit._errors import AuditError, NoteError
from audit._integrity import Finding, IntegrityCheck
from audit._note import NoteVerifier, open_checkpoint
from audit._store import AuditStore, CheckpointRow
from audit._verify_record import Failed as _Failed
from audit._verify_record import Problem, checked_leaf

__all__ = ["Problem", "VerifyReport", "verify_log"]


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


def verify_log(
    store: AuditStore,
    verifier: NoteVerifier,
    extra: Sequence[str] = (),
    witnesses: WitnessPolicy | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """`extra`: checkpoints held elsewhere (e.g. by an agency) to check as well;
    `witnesses`: whose stored cosignatures count (1b); `workers`: processes for step 2
    (None: one per core for a large log in a file or a server, else none). If a worker
    process dies (killed for memory, say), the log is verified again in this process:
    a lost worker says nothing about the log."""
    if workers != 0:
        try:
            return _verify_log(store, verifier, extra, witnesses, workers)
        except BrokenProcessPool:
            pass  # verified again below, in this process
    return _verify_log(store, verifier, extra, witnesses, 0)


def _verify_log(
    store: AuditStore,
    verifier: NoteVerifier,
    extra: Sequence[str],
    witnesses: WitnessPolicy | None,
    workers: int | None,
) -> VerifyReport:
    report = VerifyReport()
    started = time.perf_counter()
    try:
        checkpoints = _checked_checkpoints(store.checkpoints(), extra, verifier)  # 1
        if witnesses is not None:
            _add_witnessed(store, witnesses, verifier.name, checkpoints, report)  # 1b
        report.checkpoints = len(checkpoints)
        integrity = IntegrityCheck()
        builder = _rebuild(store, checkpoints, report, integrity, workers)  # 2, 3
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
    workers: int | None,
) -> merkle.TreeBuilder:
    builder = merkle.TreeBuilder()
    batch = _NodeBatch(store, builder)
    if 0 in checkpoints:
        _check_root(builder, checkpoints[0], report)

    def add(leaf: bytes) -> None:
        builder.append(leaf)
        batch.add(leaf)
        report.records += 1
        if builder.size in checkpoints:
            _check_root(builder, checkpoints[builder.size], report)  # 3

    ranges = parallel.checked_ranges(store, workers)
    if ranges is None:
        for stored in store.iter_stored():
            leaf = checked_leaf(stored, builder.size)  # 2
            integrity.see(stored)
            add(leaf)
    else:
        # Each range's records were checked (2) elsewhere, in order; everything that
        # depends on the records before them happens here, in the serial order: the
        # first problem reported is the one the serial verifier reports.
        try:
            for part in ranges:
                for stored in part.seen:
                    integrity.see(stored)  # only read by `check`, at the end
                for leaf in part.leaves():
                    add(leaf)
                if part.problem is not None:
                    raise _Failed(part.problem)
        finally:
            ranges.close()  # a problem found: the other ranges' work is cancelled
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
