"""`s284 bench audit`: the disclosure log at scale, measured (not a test: prints figures).

Longer than the ~400-line norm on purpose: one benchmark, read top to bottom (set-up,
load, figures, report), outside the library's import graph.

1. append   synthetic records go through `AuditStore.append` in gateway-sized batches
            (256 messages, mostly two recipients each, with their `SeenMessage`s), a signed
            checkpoint every 100,000 records and one at the end;
2. verify   `audit.verify_log` over the whole log, every checkpoint included;
3. search   `audit.search` (and the review queue) as an auditor and as a privacy
            officer, one filter at a time: p50/p95/p99 of the first page (100 rows).

All data is invented: offender references `S284-NNNNNN` and staff ids `staff-NNNN` name
nobody. See bench/README.md for the figures measured here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import (
    AuditRecord,
    AuditStore,
    Filters,
    NoteVerifier,
    SeenMessage,
    Viewer,
    checkpoint,
    review_queue,
    search,
    verify_log,
)
from broker.errors import ConfigError
from broker.ids import new_id
from broker.wire.envelope import Agency, Kind, Purpose

BATCH_MESSAGES = 256  # the gateway's fetch batch: one append (one transaction) per batch
CHECKPOINT_EVERY = 100_000
QUERY_RUNS = 100  # per filter and viewer
QUERY_BUDGET_SECONDS = 20.0  # per filter and viewer, so a slow filter cannot stall the run
PAGE = 100  # the API's default page size
ORIGIN = "s284.bench/audit"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MESSAGE_SPACING = timedelta(seconds=60)  # 1,000,000 records span about a year
OFFENDERS = 5_000
STAFF = 400
AGENCIES = [a.value for a in Agency]
KINDS = [k.value for k in Kind]
PURPOSE_WEIGHTS = {
    Purpose.OFFENDER_MANAGEMENT: 35,
    Purpose.CSP_SERVICE_DELIVERY: 15,
    Purpose.RISK_REDUCTION: 12,
    Purpose.CSP_PREPARATION: 10,
    Purpose.REPORTS: 10,
    Purpose.CONSENT: 6,
    Purpose.AUTHORISED_BY_LAW: 6,
    Purpose.ORDER_APPLICATION: 6,
}
REFUSED_SHARE = 0.08
ACKNOWLEDGED_SHARE = 0.03
RESTRICTED_SHARE_OF_POLICE = 0.02
REFUSAL_CODES = ("policy.denied", "purpose.justification_missing", "signature.invalid")


# -- the synthetic log -----------------------------------------------------------------


class Synthetic:
    """Gateway-shaped records, message by message (reproducible mix, fresh ids)."""

    def __init__(self, seed: int = 284) -> None:
        self._rng = random.Random(seed)
        self.messages = 0

    def batch(self, messages: int) -> tuple[list[AuditRecord], list[SeenMessage]]:
        records: list[AuditRecord] = []
        seen: list[SeenMessage] = []
        for _ in range(messages):
            message_id = new_id()
            self.messages += 1
            records += self._message(message_id, self.messages)
            seen.append(SeenMessage(message_id, self.messages))
        return records, seen

    def _message(self, message_id: str, seq: int) -> list[AuditRecord]:
        rng = self._rng
        sender = rng.choice(AGENCIES)
        purpose = rng.choices(list(PURPOSE_WEIGHTS), weights=list(PURPOSE_WEIGHTS.values()))[0]
        common: dict[str, Any] = {
            "occurred_at": T0 + seq * MESSAGE_SPACING + timedelta(seconds=rng.random() * 59),
            "ingress_agency": sender,
            "node": "bench-node",
            "message_id": message_id,
            "ingress_seq": seq,
            "sender_agency": sender,
            "sender_person": f"staff-{rng.randrange(1, STAFF):04d}",
            "offender": f"S284-{rng.randrange(OFFENDERS):06d}",
            "kind": rng.choice(KINDS),
            "purpose": purpose.value,
            "correlation_id": message_id,
            "policy_version": "s284-bench",
            "payload_digest": hashlib.sha256(message_id.encode()).hexdigest(),
            "restricted": sender == "police" and rng.random() < RESTRICTED_SHARE_OF_POLICE,
            **_grounds(purpose, seq),
        }
        if rng.random() < REFUSED_SHARE:
            return [_refused(message_id, rng.choice(REFUSAL_CODES), common)]
        recipients = rng.sample([a for a in AGENCIES if a != sender], 2)
        records = [_disclosed(message_id, to, purpose, common) for to in recipients]
        if rng.random() < ACKNOWLEDGED_SHARE:
            records.append(_acknowledged(records[0], common))
        return records


def _grounds(purpose: Purpose, seq: int) -> dict[str, Any]:
    if purpose is Purpose.RISK_REDUCTION:
        return {"justification": f"synthetic reasonable grounds, case note {seq}"}
    if purpose is Purpose.CONSENT:
        return {"consent_reference": f"CONSENT-{seq:07d}"}
    if purpose is Purpose.AUTHORISED_BY_LAW:
        return {"law_reference": "Family Violence Protection Act 2008 (Vic) s 144"}
    return {}


def _disclosed(
    message_id: str, recipient: str, purpose: Purpose, common: dict[str, Any]
) -> AuditRecord:
    alert = common["kind"] == Kind.RISK_ALERT.value
    return AuditRecord(
        record_id=new_id(),
        dedupe_key=f"disclosed:{message_id}:{recipient}",
        event="alert_routed" if alert else "disclosed",
        decision="permit",
        reason_code=None,
        reason=f"{common['kind']} may be disclosed for {purpose.value}",
        recipient_agency=recipient,
        recipient_contact=f"{recipient}-duty-officer" if alert else None,
        policy_ids=(f"permit-{purpose.value.replace('_', '-')}",),
        review_required=purpose is Purpose.RISK_REDUCTION,
        withheld=("clinical_notes",) if recipient == "health" else (),
        **common,
    )


def _refused(message_id: str, code: str, common: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        record_id=new_id(),
        dedupe_key=f"refused:{message_id}",
        event="refused",
        decision="deny",
        reason_code=code,
        reason=f"refused: {code}",
        policy_ids=("forbid-default",) if code == "policy.denied" else (),
        **common,
    )


def _acknowledged(disclosure: AuditRecord, common: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        record_id=new_id(),
        dedupe_key=f"acknowledged:{disclosure.record_id}",
        event="acknowledged",
        decision="none",
        reason_code=None,
        reason="delivery acknowledged by the recipient",
        recipient_agency=disclosure.recipient_agency,
        refers_to=disclosure.record_id,
        **{**common, "occurred_at": common["occurred_at"] + timedelta(seconds=30)},
    )


# -- figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class AppendFigures:
    records: int
    store_seconds: float  # inside AuditStore.append only
    wall_seconds: float  # generation and checkpoints included
    first_records: int
    first_store_seconds: float
    checkpoints: int
    checkpoint_seconds: float
    store_cpu_seconds: float = 0.0  # this process's CPU inside append (/proc, via rusage)

    @property
    def rate(self) -> float:
        return _rate(self.records, self.store_seconds)

    @property
    def cpu_us_per_record(self) -> float:
        return 1e6 * self.store_cpu_seconds / self.records if self.records else 0.0

    @property
    def first_rate(self) -> float:
        return _rate(self.first_records, self.first_store_seconds)


@dataclass(frozen=True)
class VerifyFigures:
    records: int
    checkpoints: int
    seconds: float
    problem: str | None
    cpu_seconds: float = 0.0  # this process and its verify workers (/proc, via rusage)

    @property
    def cpu_us_per_record(self) -> float:
        return 1e6 * self.cpu_seconds / self.records if self.records else 0.0

    @property
    def rate(self) -> float:
        return _rate(self.records, self.seconds)


@dataclass(frozen=True)
class QueryFigures:
    name: str
    viewer: str
    runs: int
    mean_rows: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class AuditBenchReport:
    dialect: str
    records: int
    machine: str
    append: AppendFigures | None = None
    verify: VerifyFigures | None = None
    queries: list[QueryFigures] = field(default_factory=list)
    database_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.append is not None:
            data["append"].update(
                rate=self.append.rate,
                first_rate=self.append.first_rate,
                cpu_us_per_record=self.append.cpu_us_per_record,
            )
        if self.verify is not None:
            data["verify"].update(
                rate=self.verify.rate, cpu_us_per_record=self.verify.cpu_us_per_record
            )
        return data


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _progress(text: str) -> None:
    click.echo(text, err=True)


# -- 1 append -------------------------------------------------------------------------


def append_log(store: AuditStore, total: int, key: Ed25519PrivateKey) -> AppendFigures:
    synthetic, appended, store_s, cp_s, checkpoints = Synthetic(), 0, 0.0, 0.0, 0
    cpu_s = 0.0
    first: tuple[int, float] | None = None
    started = time.perf_counter()
    while appended < total:
        records, seen = synthetic.batch(BATCH_MESSAGES)
        before, t, cpu = appended, time.perf_counter(), _cpu_seconds()
        appended += store.append(records[: total - appended], seen).added
        store_s += time.perf_counter() - t
        cpu_s += _cpu_seconds() - cpu
        if appended // CHECKPOINT_EVERY > before // CHECKPOINT_EVERY or appended == total:
            cp_s += _timed(lambda: checkpoint(store, ORIGIN, key))
            checkpoints += 1
            first = first or (appended, store_s)
            _progress(f"  appended {appended:>9,}: {_rate(appended, store_s):,.0f} records/s")
    wall = time.perf_counter() - started
    first = first or (appended, store_s)
    return AppendFigures(appended, store_s, wall, *first, checkpoints, cp_s, cpu_s)


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have ended (verify's
    workers): what /proc counts, unlike wall-clock time on a shared machine."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


# -- 2 verify -------------------------------------------------------------------------


def verify(store: AuditStore, key: Ed25519PrivateKey) -> VerifyFigures:
    verifier = NoteVerifier.from_public_key(ORIGIN, key.public_key())
    cpu = _cpu_seconds()
    report = verify_log(store, verifier)
    cpu = _cpu_seconds() - cpu
    problem = None if report.problem is None else f"{report.problem.code}: {report.problem.detail}"
    return VerifyFigures(report.records, report.checkpoints, report.seconds, problem, cpu)


# -- 3 search -------------------------------------------------------------------------

Query = Callable[[random.Random], Filters]
_DAY = timedelta(days=1)


def _span(records: int) -> timedelta:
    return MESSAGE_SPACING * max(1, records // 2)  # about two records per message


def _some_day(rng: random.Random, records: int) -> datetime:
    return T0 + _DAY * rng.randrange(max(1, _span(records) // _DAY))


def query_mix(records: int) -> dict[str, Query]:
    purposes = [p.value for p in Purpose]

    def offender(rng: random.Random) -> str:
        return f"S284-{rng.randrange(OFFENDERS):06d}"

    def days(rng: random.Random, length: int) -> Filters:
        start = _some_day(rng, records)
        return Filters(occurred_from=start, occurred_before=start + _DAY * length)

    return {
        "newest, no filter": lambda _: Filters(),
        "offender": lambda rng: Filters(offender=offender(rng)),
        "offender + event=disclosed": lambda rng: Filters(
            offender=offender(rng), event="disclosed"
        ),
        "sender + purpose": lambda rng: Filters(
            sender_agency=rng.choice(AGENCIES), purpose=rng.choice(purposes)
        ),
        "event=refused": lambda _: Filters(event="refused"),
        "date range, 7 days": lambda rng: days(rng, 7),
        "recipient + 30 days": lambda rng: replace(
            days(rng, 30), recipient_agency=rng.choice(AGENCIES)
        ),
        "decision=deny (unindexed)": lambda _: Filters(decision="deny"),
        "policy_id (LIKE)": lambda rng: Filters(
            policy_id=f"permit-{rng.choice(purposes).replace('_', '-')}"
        ),
    }


VIEWERS = {
    "auditor": Viewer("auditor", None, "bench-auditor"),
    "privacy_officer/health": Viewer("privacy_officer", "health", "bench-officer"),
}


def measure_queries(store: AuditStore, records: int) -> list[QueryFigures]:
    rng = random.Random(4)
    figures = [
        _latencies(name, label, partial(_search, store, viewer, make, rng))
        for name, make in query_mix(records).items()
        for label, viewer in VIEWERS.items()
    ]
    figures += [
        _latencies("review queue", label, partial(_review, store, viewer))
        for label, viewer in VIEWERS.items()
    ]
    return figures


def _search(store: AuditStore, viewer: Viewer, make: Query, rng: random.Random) -> int:
    return len(search(store, viewer, make(rng), limit=PAGE).rows)


def _review(store: AuditStore, viewer: Viewer) -> int:
    return len(review_queue(store, viewer, limit=PAGE).rows)


def _latencies(name: str, viewer: str, run: Callable[[], int]) -> QueryFigures:
    run()  # warm the page cache and the statement cache once
    times: list[float] = []
    rows = 0
    budget = time.perf_counter() + QUERY_BUDGET_SECONDS
    while len(times) < QUERY_RUNS and time.perf_counter() < budget:
        t = time.perf_counter()
        rows += run()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    figures = [_percentile(times, f) for f in (0.5, 0.95, 0.99)]
    _progress(f"  {name:<28} {viewer:<24} p95 {figures[1]:8.1f} ms")
    return QueryFigures(name, viewer, len(times), rows / len(times), *figures)


# -- the run ----------------------------------------------------------------------------


@contextmanager
def _database(db: str | None, keep: bool) -> Iterator[tuple[str, Path | None]]:
    if db is not None:
        yield db, None
        return
    directory = Path(tempfile.mkdtemp(prefix="s284-bench-audit-"))
    path = directory / "audit.db"
    try:
        yield f"sqlite:///{path}", path
    finally:
        if keep:
            _progress(f"kept {path}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _open(url: str) -> AuditStore:
    try:
        return AuditStore.open(url)
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(f"cannot open the audit log at --db: {exc.__class__.__name__}") from None


def _file_bytes(path: Path | None) -> int | None:
    if path is None:
        return None
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def measure(records: int, db: str | None, keep: bool) -> AuditBenchReport:
    key = Ed25519PrivateKey.generate()
    with _database(db, keep) as (url, path):
        store = _open(url)
        if store.size():
            store.close()
            raise ConfigError("--db must name an empty log (the benchmark appends to it)")
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        report = AuditBenchReport(store.engine.dialect.name, records, machine)
        try:
            _progress(f"1 append {records:,} records ({url.split('?')[0]})")
            report.append = append_log(store, records, key)
            report.database_bytes = _file_bytes(path)
            _progress("2 verify")
            report.verify = verify(store, key)
            _progress("3 search")
            report.queries = measure_queries(store, records)
        finally:
            store.close()
    return report


def render_table(report: AuditBenchReport) -> str:
    a, v = report.append, report.verify
    lines = [f"s284 bench audit: {report.records:,} records on {report.dialect}; {report.machine}"]
    if a is not None:
        lines += [
            "",
            f"append (AuditStore.append, {BATCH_MESSAGES} messages a batch)",
            f"  first {a.first_records:,}: {a.first_rate:>9,.0f} records/s",
            (
                f"  all {a.records:,}: {a.rate:>9,.0f} records/s ({a.store_seconds:.1f} s in"
                f" append; {a.wall_seconds:.1f} s wall with generation and {a.checkpoints}"
                f" checkpoints, {a.checkpoint_seconds:.1f} s)"
            ),
            f"  CPU in append: {a.cpu_us_per_record:,.1f} µs/record",
        ]
        if report.database_bytes:
            size = report.database_bytes
            lines.append(f"  database {size / 2**20:,.0f} MiB ({size / a.records:,.0f} B/record)")
    if v is not None:
        verdict = "OK" if v.problem is None else f"FAILED: {v.problem}"
        lines += [
            "",
            (
                f"verify (audit.verify_log): {v.records:,} records, {v.checkpoints} checkpoints"
                f" in {v.seconds:.1f} s = {v.rate:,.0f} records/s; {verdict}"
            ),
            f"  CPU: {v.cpu_us_per_record:,.1f} µs/record (with the worker processes)",
        ]
    lines += ["", f"search, first page of {PAGE} ({QUERY_RUNS} runs each; ms)"]
    lines.append(f"  {'filter':<28} {'viewer':<24} {'rows':>5} {'p50':>8} {'p95':>8} {'p99':>8}")
    lines += [
        f"  {q.name:<28} {q.viewer:<24} {q.mean_rows:>5.0f} {q.p50_ms:>8.1f} {q.p95_ms:>8.1f}"
        f" {q.p99_ms:>8.1f}"
        for q in report.queries
    ]
    return "\n".join(lines)


def run_bench_audit(records: int, db: str | None, keep: bool, as_json: bool) -> int:
    """Entry point of `s284 bench audit`: 0 when the log verified."""
    if records < 1:
        raise click.UsageError("--records must be at least 1")
    report = measure(records, db, keep)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else render_table(report))
    return 0 if report.verify is not None and report.verify.problem is None else 1
