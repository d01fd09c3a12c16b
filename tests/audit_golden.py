"""The disclosure log's golden input: fixed records, salts, clock and key (issue 14).

`run(url)` appends a fixed sequence of batches (with checkpoints, a redelivery, an
in-batch duplicate and a retention expiry between them) through `AuditStore` and dumps
every stored row; tests/data/audit_golden.json holds that dump as the store wrote it
before the lean append (`python -m tests.audit_golden > tests/data/audit_golden.json`
regenerates it: only ever on purpose, when the record format itself changes).

Salts and the store's clock are the only inputs `AuditStore` draws itself; both are
replaced here by fixed sequences. Ed25519 signatures are deterministic, so checkpoint
notes are too. All people are invented.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditRecord, AuditStore, SeenMessage, checkpoint
from audit._records import DecisionInputs, rfc3339
from audit._schema import audit_checkpoints, audit_log, audit_nodes, audit_personal, seen_messages

ORIGIN = "s284.test/golden"
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"s284 golden key").digest())
T0 = datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
# Where the store draws salts and reads the clock (before the lean append: audit._store).
SALTS = ("audit._append",)
CLOCKS = ("audit._store", "audit._append")

AGENCIES = ("corrections", "police", "health", "dffh")
PURPOSES = ("offender_management", "risk_reduction", "consent", "authorised_by_law", "reports")
KINDS = ("risk.update", "risk.alert", "order.status")
TABLES = {
    audit_log: (audit_log.c.seq,),
    audit_personal: (audit_personal.c.seq,),
    audit_nodes: (audit_nodes.c.level, audit_nodes.c.idx),
    audit_checkpoints: (audit_checkpoints.c.size,),
    seen_messages: (seen_messages.c.message_id,),
}


class _Clock(datetime):
    """`datetime` whose `now()` steps one second from T0 per call."""

    calls = 0

    @classmethod
    def now(cls, tz: Any = None) -> _Clock:  # type: ignore[override]
        _Clock.calls += 1
        moment = (T0 + timedelta(seconds=_Clock.calls)).astimezone(tz or UTC)
        return cls.combine(moment.date(), moment.timetz())


@contextlib.contextmanager
def fixed_inputs() -> Iterator[None]:
    salts = (hashlib.sha256(b"salt %d" % i).digest() for i in range(1_000_000))
    _Clock.calls = 0
    with contextlib.ExitStack() as stack:
        for module in SALTS:
            stack.enter_context(mock.patch(f"{module}.new_salt", side_effect=lambda: next(salts)))
        for module in CLOCKS:
            stack.enter_context(mock.patch(f"{module}.datetime", _Clock))
        yield


def _record(rng: random.Random, n: int) -> tuple[AuditRecord, SeenMessage]:
    message_id = f"msg{n:06d}{rng.getrandbits(40):010x}"
    sender = rng.choice(AGENCIES)
    recipient = rng.choice([a for a in AGENCIES if a != sender])
    purpose = rng.choice(PURPOSES)
    refused = n % 5 == 3
    inputs = None
    if n % 3 == 0:
        inputs = DecisionInputs(
            sender_agency=sender,
            sender_role="case_manager",
            recipient_agency=recipient,
            kind="risk.update",
            purpose=purpose,
            order_status="active",
            justification_length=n,
            has_consent_reference=n % 2 == 0,
            has_law_reference=False,
        )
    record = AuditRecord(
        record_id=f"rec{n:06d}{rng.getrandbits(40):010x}",
        dedupe_key=f"{'refused' if refused else 'disclosed'}:{message_id}:{recipient}",
        event="refused" if refused else ("alert_routed" if n % 7 == 0 else "disclosed"),
        occurred_at=T0 - timedelta(days=30 - n % 40, microseconds=rng.randrange(10**6)),
        ingress_agency=sender,
        decision="deny" if refused else "permit",
        reason_code="policy.denied" if refused else None,
        reason=f'synthetic reason {n} \u2014 \u00e9t\u00e9 \u2713 "quoted" \\ tab\t',
        node="golden-node",
        message_id=message_id,
        ingress_seq=n + 1,
        sender_agency=sender,
        sender_person=f"staff-{rng.randrange(1000):04d}",
        recipient_agency=None if refused else recipient,
        recipient_contact=None if n % 4 else f"{recipient}-duty \U0001f600",
        offender=f"S284-{rng.randrange(100):06d}",
        kind=rng.choice(KINDS),
        purpose=purpose,
        justification=f"Invented grounds, case note {n}: \u201cMs Zo\u00eb Example\u201d"
        if purpose == "risk_reduction"
        else None,
        consent_reference=f"CONSENT-{n:04d}" if purpose == "consent" else None,
        law_reference="Invented Act 2001 s 1" if purpose == "authorised_by_law" else None,
        correlation_id=message_id if n % 2 else None,
        policy_ids=("forbid-default",) if refused else (f"permit-{purpose}", "permit-any"),
        policy_version="s284-golden",
        review_required=purpose == "risk_reduction",
        restricted=n % 11 == 0,
        payload_digest=hashlib.sha256(message_id.encode()).hexdigest(),
        withheld=("clinical_notes", "address") if recipient == "health" else (),
        refers_to=f"rec{n - 1:06d}" if n % 9 == 8 else None,
        inputs=inputs,
    )
    return record, SeenMessage(message_id, n + 1)


def batches() -> list[tuple[list[AuditRecord], list[SeenMessage]]]:
    """Six batches of 1, 40, 3, 150, 37 and 9 records (seed 284)."""
    rng = random.Random(284)  # noqa: S311 - synthetic data, not secrets
    out: list[tuple[list[AuditRecord], list[SeenMessage]]] = []
    n = 0
    for size in (1, 40, 3, 150, 37, 9):
        pairs = [_record(rng, n + i) for i in range(size)]
        n += size
        out.append(([r for r, _ in pairs], [s for _, s in pairs]))
    return out


def run(url: str) -> dict[str, list[dict[str, Any]]]:
    """Append the golden input to the empty log at `url`; every stored row, normalised."""
    store = AuditStore.open(url)
    try:
        with fixed_inputs():
            plan = batches()
            for i, (batch, seen) in enumerate(plan):
                records = batch
                if i == 2:  # a redelivery (all present) and an in-batch duplicate
                    store.append(plan[1][0][:5], plan[1][1][:5])
                    records = [*batch, batch[0]]
                store.append(records, seen)
                if i in {0, 3, 5}:
                    checkpoint(store, ORIGIN, KEY)
                if i == 4:  # retention erases the oldest personal rows; one more record
                    store.expire(T0 - timedelta(days=20), "golden-node", "recexpiry0000001")
            checkpoint(store, ORIGIN, KEY)
        return dump(store.engine)
    finally:
        store.close()


def dump(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table, order in TABLES.items():
            rows = conn.execute(sa.select(table).order_by(*order))
            out[table.name] = [{k: _plain(v) for k, v in row.items()} for row in rows.mappings()]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return rfc3339(value if value.tzinfo else value.replace(tzinfo=UTC))
    if value is None or isinstance(value, int | str):  # bool is an int: True, False
        return value
    raise TypeError(f"unexpected column value {type(value).__name__}")


if __name__ == "__main__":  # pragma: no cover - regenerates the data file, on purpose only
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        rows = run(f"sqlite:///{Path(tmp) / 'golden.db'}")
    json.dump(rows, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")
