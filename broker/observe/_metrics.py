"""The broker's Prometheus metrics, in a registry of their own (one per app or worker, so
two gateways in one test process never share a counter), and the gateway observer that
feeds them (broker/gateway/observer.py's protocol).

Names start with `s284_`; labels carry outcomes, reason codes, step names, stream and
agency names: never an id, an offender reference or a person (they would be both a
privacy leak and an unbounded label set)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# A batch step takes from tens of microseconds (frame) to a disk flush (record, publish).
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 256, 512, 1024, 4096)
# A designated contact acknowledges within minutes to a working day or two.
_ACK_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600)


class Metrics:
    """Every metric the broker exports; also a `GatewayObserver` (step, outcome, appended)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.messages = Counter(
            "s284_messages", "Messages answered by the gateway, by outcome and reason code",
            ["outcome", "reason"], registry=reg,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "s284_gateway_step_seconds", "Wall time of one gateway step for one batch",
            ["step"], buckets=_STEP_BUCKETS, registry=reg,
        )  # fmt: skip
        self.append_seconds = Histogram(
            "s284_audit_append_seconds", "Durable audit append (one transaction per batch)",
            buckets=_STEP_BUCKETS, registry=reg,
        )  # fmt: skip
        self.append_records = Histogram(
            "s284_audit_append_batch_records", "Records written by one audit append",
            buckets=_BATCH_BUCKETS, registry=reg,
        )  # fmt: skip
        self._gauges(reg)

    def _gauges(self, reg: CollectorRegistry) -> None:
        """Values read from the server and the databases when scraped (broker/observe/_gauges)."""
        self.consumer_pending = Gauge(
            "s284_consumer_pending_messages", "Ingress messages not yet delivered to a gateway",
            ["stream"], registry=reg,
        )  # fmt: skip
        self.consumer_ack_pending = Gauge(
            "s284_consumer_ack_pending_messages", "Delivered to a gateway, not yet acknowledged",
            ["stream"], registry=reg,
        )  # fmt: skip
        self.alerts_waiting = Gauge(
            "s284_alerts_waiting", "Routed alerts not yet acknowledged, by receiving agency",
            ["agency"], registry=reg,
        )  # fmt: skip
        self.alert_oldest_wait = Gauge(
            "s284_alert_oldest_wait_seconds", "Age of the oldest unacknowledged alert",
            ["agency"], registry=reg,
        )  # fmt: skip
        self.alert_ack_seconds = Histogram(
            "s284_alert_acknowledge_seconds", "From an alert's routing to its acknowledgement",
            buckets=_ACK_BUCKETS, registry=reg,
        )  # fmt: skip
        self.checkpoint_age = Gauge(
            "s284_checkpoint_age_seconds", "Age of the newest signed log checkpoint",
            registry=reg,
        )  # fmt: skip
        self.log_records = Gauge(
            "s284_audit_log_records", "Records in the disclosure log", registry=reg
        )
        self.unconfirmed = Gauge(
            "s284_unconfirmed_deliveries",
            "Disclosures no recipient has confirmed receiving (counted up to a bound)",
            registry=reg,
        )
        self.unconfirmed_oldest = Gauge(
            "s284_unconfirmed_oldest_age_seconds", "Age of the oldest unconfirmed disclosure",
            registry=reg,
        )  # fmt: skip
        self.witness_age = Gauge(
            "s284_witness_cosigned_age_seconds",
            "Seconds since each registered witness's newest cosignature (-1: never)",
            ["witness"], registry=reg,
        )  # fmt: skip
        self.source_up = Gauge(
            "s284_metrics_source_up", "1 if the last scrape could read this source, else 0",
            ["source"], registry=reg,
        )  # fmt: skip

    # -- the gateway observer -------------------------------------------------------------

    def step(self, name: str, seconds: float) -> None:
        self.step_seconds.labels(step=name).observe(seconds)

    def outcome(self, outcome: str, reason: str | None) -> None:
        self.messages.labels(outcome=outcome, reason=reason or "none").inc()

    def appended(self, records: int, seconds: float) -> None:
        self.append_seconds.observe(seconds)
        self.append_records.observe(records)

    # -- exposition -------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def names(self) -> set[str]:
        """Every series name this registry can export, whether or not it has a sample yet
        (a labelled metric has none until its first label set is used)."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        return {
            family.name + suffix
            for family in self.registry.collect()
            for suffix in suffixes.get(family.type, ("",))
        }
