"""Police adapter: NDJSON drops and the webhook in, JSON documents out (real nats-server and
gateway)."""

from __future__ import annotations

import io
import json

import httpx
import structlog

from adapters.police import generate, webhook_app
from broker import logs
from tests.adapter_kit import LOCAL_IDS, adapter, drain, make_config


async def test_events_map_to_risk_and_breach_kinds(twin_deployment, twin_gateway, tmp_path):
    """Incidents and risk tiers arrive as risk.update, intelligence flags as risk.alert (to
    Corrections and Health), detected breaches as order.breach (sent to Corrections, and
    pushed to Health too, which already follows those offenders)."""
    config = make_config(tmp_path, twin_deployment.home.path, "police")
    generate(config.source, LOCAL_IDS["police"], 8)
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
    async with (
        await twin_deployment.client("corrections") as c,
        await twin_deployment.client("health") as h,
    ):
        to_corrections, to_health = await drain(c), await drain(h)
    kinds = sorted(i.envelope.kind.value for i in to_corrections)
    assert kinds == ["order.breach"] * 2 + ["risk.alert"] * 2 + ["risk.update"] * 4
    assert (
        sorted(i.envelope.kind.value for i in to_health)
        == ["order.breach"] * 2 + ["risk.alert"] * 2 + ["risk.update"] * 4
    )
    tiers = [i.payload for i in to_corrections if "risk_tier" in i.payload]
    assert all(p["risk_level"] in {"very_high", "high", "medium", "low"} for p in tiers)


async def test_webhook_spools_then_adapter_sends(twin_deployment, twin_gateway, tmp_path):
    """A POST to the webhook is answered 202 once the events are on disk, and the adapter
    then sends them; a malformed body is refused with 422 and nothing is spooled."""
    config = make_config(tmp_path, twin_deployment.home.path, "police")
    app = webhook_app(config.source)
    event = {
        "event_id": "VP-EV-W1",
        "event_type": "intel_flag",
        "person_id": "VP-P-70001",
        "occurred_at": "2026-02-01T21:00:00+11:00",
        "flag": "stalking",
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://adapter") as http:
        ok = await http.post("/events", json=[event])
        bad = await http.post("/events", json=[1, 2])
    assert (ok.status_code, ok.json()) == (202, {"accepted": 1})
    assert bad.status_code == 422
    assert len(list(config.source.glob("webhook-*.ndjson"))) == 1
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
    async with await twin_deployment.client("corrections") as c:
        (item,) = await drain(c)
    assert item.envelope.kind.value == "risk.alert"
    assert item.payload["flag"] == "stalking"


async def test_bad_lines_quarantined_rest_flows(twin_deployment, twin_gateway, tmp_path):
    """A line that is not JSON, an unknown event type, a missing field and an unknown person
    are each quarantined with their own reason; the good event in the same file is sent."""
    config = make_config(tmp_path, twin_deployment.home.path, "police")
    good = {
        "event_id": "E1",
        "event_type": "breach",
        "person_id": "VP-P-70002",
        "occurred_at": "2026-02-01T21:00:00+11:00",
        "condition": "curfew",
    }
    lines = [
        json.dumps(good),
        "{oops",
        json.dumps({**good, "event_id": "E2", "event_type": "parking"}),
        json.dumps({**good, "event_id": "E3", "condition": ""}),
        json.dumps({**good, "event_id": "E4", "person_id": "VP-P-99999"}),
    ]
    (config.source / "drop.ndjson").write_text("\n".join(lines) + "\n")
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        reasons = {r.record_key: r.reason for r in a.state.quarantined()}
    assert reasons == {
        "police:drop.ndjson#2": "record.not_json",
        "police:E2": "record.unknown_type",
        "police:E3": "record.missing_field",
        "police:E4": "offender.unmapped",
    }
    async with await twin_deployment.client("corrections") as c:
        assert [i.payload["event_id"] for i in await drain(c)] == ["E1"]


async def test_deliveries_written_as_json_in_police_ids(twin_deployment, twin_gateway, tmp_path):
    """A DFFH child-safety alert delivered to Police is written as one JSON document named by
    its delivery id, carrying Police's own person id."""
    config = make_config(tmp_path, twin_deployment.home.path, "police")
    async with await twin_deployment.client("dffh") as dffh:
        receipt = await dffh.send(
            kind="risk.alert",
            purpose="offender_management",
            offender="S284-000103",
            to=["police"],
            payload={"alert_level": "high", "concern_type": "synthetic"},
        )
    assert receipt.accepted
    async with adapter(config, twin_deployment) as a:
        assert await a.drain_outbound() == 1
    (path,) = config.destination.glob("*.json")
    doc = json.loads(path.read_text())
    assert path.stem == doc["delivery_id"]
    assert (doc["local_id"], doc["kind"], doc["from"]) == ("VP-P-70003", "risk.alert", "dffh")


async def test_adapter_logs_hold_no_payload_or_offender(twin_deployment, twin_gateway, tmp_path):
    """Sent, quarantined and written records leave only keys, ids and reason codes in the
    adapter's JSON log: no payload content, no person id, no offender reference."""
    sentinel = "synthetic-sentinel-4c1d"
    config = make_config(tmp_path, twin_deployment.home.path, "police")
    event = {
        "event_id": "E1",
        "event_type": "incident",
        "person_id": "VP-P-70001",
        "occurred_at": "2026-02-01T21:00:00+11:00",
        "incident_type": sentinel,
    }
    unmapped = {**event, "event_id": "E2", "person_id": "VP-P-99999"}
    (config.source / "d.ndjson").write_text(f"{json.dumps(event)}\n{json.dumps(unmapped)}\n")
    async with await twin_deployment.client("dffh") as dffh:
        await dffh.send(
            kind="risk.alert",
            purpose="offender_management",
            offender="S284-000102",
            to=["police"],
            payload={"alert_level": sentinel},
        )
    out = io.StringIO()
    logs.configure("DEBUG", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    try:
        async with adapter(config, twin_deployment) as a:
            await a.poll_once()
            await a.drain_outbound()
    finally:
        logs.configure("INFO")
    text = out.getvalue()
    events = {json.loads(line)["event"] for line in text.splitlines()}
    assert {"record_sent", "record_quarantined", "delivery_written"} <= events
    for secret in (sentinel, "VP-P-70001", "VP-P-99999", "VP-P-70002", "S284-000101"):
        assert secret not in text
