"""The gauges read at scrape time: consumer lag from the NATS server, alerts waiting from
the routing database, checkpoint age, log size and unconfirmed deliveries from the audit
store. Each source that cannot be read is reported as `s284_metrics_source_up{source}=0`
and its gauges keep their last value: a scrape never fails because one source is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import structlog

from audit import AuditError, AuditStore, unconfirmed
from broker.errors import TransportError
from broker.nats.config import GATEWAY_CONSUMER, STREAM_CONFIRM, ingress_streams
from broker.observe._metrics import Metrics
from routing import RoutingError, RoutingStore

log = structlog.get_logger("s284.metrics")

# The unconfirmed count reads rows; beyond this many the gauge says "at least this many".
UNCONFIRMED_BOUND = 10_000


@runtime_checkable
class LagSource(Protocol):
    """A NATS connection allowed to read consumer info (the gateway's)."""

    async def consumer_lag(self, stream: str, durable: str) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Sources:
    """What this process can read; a missing source is simply not reported."""

    audit: AuditStore | None = None
    routing: RoutingStore | None = None
    nats: LagSource | None = None
    agencies: tuple[str, ...] = ()
    # witness -> seconds since its newest cosignature (None: never); runtime wires
    # broker.witness.cosigned_ages, which this layer may not import
    witness_ages: Callable[[], dict[str, float | None]] | None = None


async def refresh(metrics: Metrics, sources: Sources) -> None:
    """Bring every gauge up to date; each source on its own (one down spares the rest)."""
    if sources.nats is not None:
        await _guarded(metrics, "nats", _lag(metrics, sources.nats))
    if sources.audit is not None:
        await _guarded(metrics, "audit", asyncio.to_thread(_audit, metrics, sources.audit))
    if sources.routing is not None:
        read = asyncio.to_thread(_alerts, metrics, sources.routing, sources.agencies)
        await _guarded(metrics, "routing", read)
    if sources.witness_ages is not None:
        ages = asyncio.to_thread(_witnesses, metrics, sources.witness_ages)
        await _guarded(metrics, "witnesses", ages)


def _witnesses(metrics: Metrics, read: Callable[[], dict[str, float | None]]) -> None:
    for witness, age in read().items():
        metrics.witness_age.labels(witness=witness).set(-1.0 if age is None else age)


async def _guarded(metrics: Metrics, source: str, reading: Awaitable[None]) -> None:
    try:
        await reading
    except (TransportError, AuditError, RoutingError) as exc:
        metrics.source_up.labels(source=source).set(0)
        log.warning("metrics_source_down", source=source, error=type(exc).__name__)
    else:
        metrics.source_up.labels(source=source).set(1)


async def _lag(metrics: Metrics, nats: LagSource) -> None:
    for stream in [*ingress_streams(), STREAM_CONFIRM]:
        pending, ack_pending = await nats.consumer_lag(stream, GATEWAY_CONSUMER)
        metrics.consumer_pending.labels(stream=stream).set(pending)
        metrics.consumer_ack_pending.labels(stream=stream).set(ack_pending)


def _audit(metrics: Metrics, store: AuditStore) -> None:
    now = datetime.now(UTC)
    latest = store.latest_checkpoint()
    if latest is not None:
        metrics.checkpoint_age.set(_age(now, latest.signed_at))
    metrics.log_records.set(store.size())
    waiting = unconfirmed(store, now, limit=UNCONFIRMED_BOUND)
    metrics.unconfirmed.set(len(waiting))
    oldest = _age(now, waiting[0]["occurred_at"]) if waiting else 0.0
    metrics.unconfirmed_oldest.set(oldest)


def _alerts(metrics: Metrics, routing: RoutingStore, agencies: tuple[str, ...]) -> None:
    now = datetime.now(UTC)
    for agency in agencies:
        waiting = routing.open_alerts(agency)
        metrics.alerts_waiting.labels(agency=agency).set(len(waiting))
        oldest = max((_age(now, a.created_at) for a in waiting), default=0.0)
        metrics.alert_oldest_wait.labels(agency=agency).set(oldest)


def _age(now: datetime, then: datetime | str) -> float:
    """Seconds since `then`; the databases may hand back naive UTC or an ISO string."""
    when = datetime.fromisoformat(then) if isinstance(then, str) else then
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())
