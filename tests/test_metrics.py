"""What an operator sees on /metrics: the gateway's counts by outcome and reason code, its
step latencies, the audit appends, the ingress consumers' lag, alerts waiting, their
acknowledgement times and unconfirmed deliveries; and that the Grafana dashboard only
queries names the code exports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit import AuditStore
from broker.errors import TransportError
from broker.home import GATEWAY
from broker.http.app import create_app
from broker.nats.client import Connection
from broker.nats.config import ingress_stream
from broker.observe import Metrics, ObservedAlerts, Sources
from broker.runtime import gateway_running, scraper
from broker.wire.envelope import Sender
from routing import Alert, AlertStatus, Topic
from tests.conftest import _wait_ready, free_port

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "s284.json"
STEPS = {"frame", "authenticate", "replay", "open", "decide", "minimise", "seal", "route",
         "record", "publish", "answer"}  # fmt: skip


async def scraped(scrape) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics through the real app; {(sample name, sorted labels): value}."""
    app = create_app({}, metrics=scrape)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.nats
async def test_metrics_count_what_a_real_gateway_did(deployment):
    """Five messages wait on the ingress with no gateway (the lag shows 5), then a gateway
    takes them: three accepted for two recipients each, two refused `policy.denied`;
    /metrics counts exactly that, times every step, and shows the six deliveries no
    recipient has confirmed yet and the consumer drained."""
    async with await deployment.client("corrections") as sender:
        ids = []
        for n in range(5):
            purpose = "offender_management" if n < 3 else "risk_reduction"  # unjustified
            env = sender.envelope(kind="risk.update", purpose=purpose,
                                  offender=f"S284-00090{n}", to=["police", "dffh"])  # fmt: skip
            await sender.publish_frame(sender.seal(env, {"note": "synthetic"}), env.id)
            ids.append(env.id)

        home = deployment.home
        conn = await Connection.connect(home.nats_url, home.credentials(GATEWAY), name="t")
        try:
            waiting = Metrics()
            samples = await scraped(scraper(waiting, Sources(nats=conn)))
        finally:
            await conn.close()
        stream = ingress_stream("corrections")
        assert value(samples, "s284_consumer_pending_messages", stream=stream) == 5
        assert value(samples, "s284_metrics_source_up", source="nats") == 1

        async with gateway_running(deployment.settings, asyncio.Event()) as running:
            receipts = [await sender.receipt(i, timeout=30) for i in ids]
            samples = await scraped(running.scrape)

    assert [r.status for r in receipts] == ["accepted"] * 3 + ["refused"] * 2
    assert value(samples, "s284_messages_total", outcome="accepted", reason="none") == 3
    assert value(samples, "s284_messages_total", outcome="refused", reason="policy.denied") == 2
    for step in STEPS:
        assert value(samples, "s284_gateway_step_seconds_count", step=step) >= 1, step
    # 3 x 2 disclosures and 2 refusals, all through the pipeline's durable appends
    assert value(samples, "s284_audit_append_batch_records_sum") == 8
    assert value(samples, "s284_audit_append_seconds_count") >= 1
    assert value(samples, "s284_consumer_pending_messages", stream=stream) == 0
    assert value(samples, "s284_unconfirmed_deliveries") == 6
    assert value(samples, "s284_unconfirmed_oldest_age_seconds") >= 0
    assert value(samples, "s284_alerts_waiting", agency="police") == 0
    assert value(samples, "s284_audit_log_records") >= 8
    assert {value(samples, "s284_metrics_source_up", source=s) for s in
            ("nats", "audit", "routing")} == {1}  # fmt: skip


class _Down:
    async def consumer_lag(self, _stream: str, _durable: str) -> tuple[int, int]:
        raise TransportError("connection closed")


async def test_a_source_that_cannot_be_read_is_reported_not_fatal():
    """NATS unreachable: /metrics still answers, and says which source is down."""
    metrics = Metrics()
    samples = await scraped(scraper(metrics, Sources(nats=_Down())))
    assert value(samples, "s284_metrics_source_up", source="nats") == 0


class _Acking:
    def __init__(self, alert: Alert) -> None:
        self.alert = alert

    async def acknowledge(self, _alert_id, _contact):
        return self.alert

    async def reply(self, _alert_id, _contact, _text):
        return "m-1"


async def test_acknowledgement_time_is_observed_when_a_contact_acknowledges():
    """An alert acknowledged 90 s after it was routed adds one 90 s observation."""
    created = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    alert = Alert("a-1", "m-1", "police", "duty", "S284-000901", Topic.RISK, "corrections",
                  "risk_reduction", created, None, AlertStatus.ACKNOWLEDGED, 2, None,
                  "duty-officer", (created + timedelta(seconds=90)).replace(tzinfo=None),
                  )  # fmt: skip
    metrics = Metrics()
    await ObservedAlerts(_Acking(alert), metrics).acknowledge("a-1", object())
    samples = await scraped(scraper(metrics, Sources()))
    assert value(samples, "s284_alert_acknowledge_seconds_count") == 1
    assert value(samples, "s284_alert_acknowledge_seconds_sum") == 90


def test_two_metrics_objects_do_not_share_counts():
    """One registry per app: two gateways in one process never add to each other."""
    one, two = Metrics(), Metrics()
    one.outcome("accepted", None)
    assert b'outcome="accepted"' in one.render()[0]
    assert b'outcome="accepted"' not in two.render()[0]


# PromQL: an identifier not followed by `(` (a function) and not inside {...} or [...]
_PROMQL_WORDS = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_SKIP = re.compile(
    r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                    "or", "unless", "offset", "bool", "le", "inf", "nan"}  # fmt: skip


def _dashboard_exprs() -> list[str]:
    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                yield node["expr"]
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    return list(walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))))


def _metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (labels, ranges, strings removed)."""
    bare = _PROMQL_SKIP.sub(" ", expr)
    names = set()
    for match in _PROMQL_WORDS.finditer(bare):
        word, rest = match.group(), bare[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def test_every_dashboard_query_names_an_exported_metric():
    """The dashboard an operator imports shows data: each query names only series the
    code exports (a renamed metric breaks this test, not a panel in production)."""
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    exported = Metrics().names()
    for expr in exprs:
        names = _metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
        assert all(name.startswith("s284_") for name in names)


def test_the_promql_reader_finds_names_and_skips_functions_and_labels():
    """The checker above is itself checked: it would catch a wrong name."""
    expr = 'sum by (reason) (rate(s284_messages_total{outcome="refused"}[5m])) / on() x_y'
    assert _metric_names(expr) == {"s284_messages_total", "x_y"}


def _start_worker(home: Path, port: int) -> subprocess.Popen[str]:
    """`s284 gateway` as production runs it: a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "gateway", "--home", str(home),
         "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.nats
@pytest.mark.slow
async def test_a_gateway_worker_serves_its_own_metrics_and_probes(deployment):
    """`s284 gateway --metrics-port`: a worker with no API answers the probes Kubernetes
    sends (/healthz, /readyz) and Prometheus's scrape, counting what it processed."""
    port = free_port()
    worker = _start_worker(deployment.home.path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(_wait_ready, url, worker)
        async with await deployment.client("corrections") as sender:
            receipt = await sender.send(
                kind="risk.update", purpose="offender_management", offender="S284-000960",
                to=["police"], payload={"note": "synthetic"}, timeout=30,
            )  # fmt: skip
        async with httpx.AsyncClient(base_url=url) as http:
            alive = await http.get("/healthz")
            text = (await http.get("/metrics")).text
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert receipt.accepted
    assert alive.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert value(samples, "s284_messages_total", outcome="accepted", reason="none") == 1
    assert worker.returncode == 0


def test_a_worker_refuses_to_serve_metrics_off_loopback_in_clear(tmp_path):
    """Like the API: a metrics listener on a public address needs a TLS pair, and saying
    so is one line, not a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "gateway", "--home", str(tmp_path / "home"),
         "--metrics-port", "9284"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "S284_METRICS_HOST": "0.0.0.0"},  # noqa: S104 - the point
    )  # fmt: skip
    assert result.returncode != 0
    assert "refusing to serve HTTP on 0.0.0.0 without TLS" in result.stderr
    assert "Traceback" not in result.stderr


JUSTIFIED = "Victim reported a credible threat to the case manager this morning"


async def test_alerts_waiting_and_checkpoint_age_on_the_twin(twin_deployment, twin_gateway):
    """A routed alert nobody has acknowledged shows as waiting for Police; once the log has
    a signed checkpoint its age is reported (gateway logic on the in-memory twin)."""
    officer = Sender(agency="corrections", unit="north", person_id="staff-7", role="case_manager")
    async with await twin_deployment.client("corrections", officer) as sender:
        receipt = await sender.send(
            kind="risk.alert", purpose="risk_reduction", offender="S284-000970", to=["police"],
            payload={"summary": "synthetic"}, justification=JUSTIFIED,
        )  # fmt: skip
    assert receipt.accepted
    store = AuditStore.open(twin_deployment.settings.database_url)
    try:
        size, root = store.root()
        store.add_checkpoint(size, root, "synthetic note")
    finally:
        store.close()
    samples = await scraped(twin_gateway.scrape)
    assert value(samples, "s284_alerts_waiting", agency="police") == 1
    assert value(samples, "s284_alerts_waiting", agency="dffh") == 0
    assert 0 <= value(samples, "s284_alert_oldest_wait_seconds", agency="police") < 300
    assert 0 <= value(samples, "s284_checkpoint_age_seconds") < 300
    # the twin has no consumer info: no lag is reported rather than a made-up one
    assert not [name for name, _ in samples if name == "s284_consumer_pending_messages"]


async def test_audit_gauges_read_from_sqlite_and_postgresql(store_url):
    """The scrape-time audit gauges on both databases production may use: an empty log
    with one checkpoint has no unconfirmed delivery and a fresh checkpoint."""
    store = AuditStore.open(store_url)
    try:
        size, root = store.root()
        store.add_checkpoint(size, root, "synthetic note")
        metrics = Metrics()
        samples = await scraped(scraper(metrics, Sources(audit=store)))
    finally:
        store.close()
    assert value(samples, "s284_metrics_source_up", source="audit") == 1
    assert value(samples, "s284_audit_log_records") == 0
    assert value(samples, "s284_unconfirmed_deliveries") == 0
    assert 0 <= value(samples, "s284_checkpoint_age_seconds") < 300


async def test_witness_cosignature_ages_are_exported():
    """Each registered witness's cosignature age (from broker.witness.cosigned_ages, wired
    by the runtime); one that never cosigned shows -1 rather than vanishing."""
    metrics = Metrics()
    ages = {"witness.police.example/w1": 42.0, "witness.health.example/w1": None}
    samples = await scraped(scraper(metrics, Sources(witness_ages=lambda: ages)))
    name = "s284_witness_cosigned_age_seconds"
    assert value(samples, name, witness="witness.police.example/w1") == 42.0
    assert value(samples, name, witness="witness.health.example/w1") == -1.0
    assert value(samples, "s284_metrics_source_up", source="witnesses") == 1
