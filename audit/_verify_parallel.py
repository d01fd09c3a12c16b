"""Step 2 of verify on several processes: each checks a range of records on its own
connection and hands back their leaves; `audit._verify` does the rest in seq order.

Step 2 (parse, re-encode, hash, compare columns and personal fields: `_verify_record`)
is most of verify's CPU and needs nothing but the record, so on a machine with several
cores it runs beside the order-dependent steps (the tree, the checkpoints, the stored
nodes, erasures) instead of before them. A worker stops at its range's first problem, as
the serial verifier would, and the parent reports it once every check the serial order
puts before it has passed: the verdict and its message are the serial verifier's.

Only for a log in a file or on a server (a worker opens its own read-only connection)
and large enough to repay starting the processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Generator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, event, func, select

from audit._integrity import IntegrityCheck
from audit._schema import audit_log
from audit._store import AuditStore, StoredRecord
from audit._verify_record import Failed, Problem, checked_leaf

SPAN = 20_000  # records per range: one query each, and ~40 µs of work per record
THRESHOLD = 100_000  # fewer records: the serial verifier is done before workers start
_LEAF = 32


@dataclass(frozen=True)
class Range:
    """What a worker found in records `start`, `start + 1`, ...: the leaves of those
    that passed, in order, then the first problem if there was one."""

    start: int
    packed: bytes  # the leaves, 32 bytes each
    seen: list[StoredRecord] = field(default_factory=list)  # for `IntegrityCheck.see`
    problem: Problem | None = None

    def leaves(self) -> Generator[bytes, None, None]:
        packed = self.packed
        return (packed[i : i + _LEAF] for i in range(0, len(packed), _LEAF))


def checked_ranges(store: AuditStore, workers: int | None) -> Generator[Range, None, None] | None:
    """The log's records checked in ranges by `workers` processes, in seq order; None
    where the serial verifier is the better choice (`workers` None: decide here)."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None  # another process cannot open this log
    if workers is None:
        workers = cores()
        if workers < 2 or _last_seq(store) < THRESHOLD:  # noqa: PLR2004 - one core
            return None
    if workers < 1:
        return None
    return _ranges(url.render_as_string(hide_password=False), _last_seq(store), workers)


def cores() -> int:
    """Processes for step 2 when the caller does not say (tests set more, or fewer)."""
    return os.cpu_count() or 1


def _last_seq(store: AuditStore) -> int:
    with store.engine.connect() as conn:
        last = conn.execute(select(func.max(audit_log.c.seq))).scalar_one_or_none()
    return -1 if last is None else int(last)


def _ranges(url: str, last: int, workers: int) -> Generator[Range, None, None]:
    # The last range has no end: records appended meanwhile are read, as serially.
    bounds: list[tuple[int, int | None]] = [
        (start, start + SPAN) for start in range(0, last + 1 - SPAN, SPAN)
    ]
    bounds.append((len(bounds) * SPAN, None))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures: list[Future[Range]] = [
            pool.submit(check_range, url, start, stop) for start, stop in bounds
        ]
        for future in futures:
            part = future.result()
            yield part
            if part.problem is not None:
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_range(url: str, start: int, stop: int | None) -> Range:
    """Records `start` to `stop` (exclusive; None: to the end) of the log at `url`, on a
    connection of this process's own that cannot write."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _read_only)
    try:
        return _check(AuditStore(engine), start, stop)
    finally:
        engine.dispose()


def _check(store: AuditStore, start: int, stop: int | None) -> Range:
    packed = bytearray()
    seen: list[StoredRecord] = []
    expected = start
    try:
        for stored in store.iter_stored(start=start, stop=stop):
            packed += checked_leaf(stored, expected)
            relevant = IntegrityCheck.relevant(stored)
            if relevant is not None:
                seen.append(relevant)
            expected += 1
    except Failed as failed:
        return Range(start, bytes(packed), seen, failed.problem)
    if stop is not None and expected < stop:  # the next range's first seq is not this one
        missing = Problem("record.missing", f"record {expected} is missing", expected)
        return Range(start, bytes(packed), seen, missing)
    return Range(start, bytes(packed), seen)


def _read_only(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
