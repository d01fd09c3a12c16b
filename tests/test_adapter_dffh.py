"""DFFH adapter: housing, disability and child-protection exports in, one-row CSVs out
(gateway on the in-memory twin of NATS)."""

from __future__ import annotations

import csv
import json

from adapters.dffh import generate
from tests.adapter_kit import LOCAL_IDS, adapter, drain, make_config


async def test_tenancy_and_child_safety_concerns(twin_deployment, twin_gateway, tmp_path):
    """Tenancy status reaches Corrections as service.progress; a child-safety concern reaches
    Corrections and Police as risk.alert."""
    config = make_config(tmp_path, twin_deployment.home.path, "dffh")
    generate(config.source, LOCAL_IDS["dffh"], 4)
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
    async with (
        await twin_deployment.client("corrections") as c,
        await twin_deployment.client("police") as p,
    ):
        to_corrections, to_police = await drain(c), await drain(p)
    kinds = sorted(i.envelope.kind.value for i in to_corrections)
    assert kinds == ["risk.alert"] + ["service.progress"] * 4
    (alert,) = to_police
    assert alert.envelope.kind.value == "risk.alert"
    assert alert.payload["safety_concerns_at_address"] is True


async def test_quarantine_then_requeue_after_a_fix(twin_deployment, twin_gateway, tmp_path, cli):
    """A referral to an unknown service, an unmapped client and an export with a wrong header
    are quarantined with reasons while the good referral is sent; once the operator adds the
    client to the mapping file and runs `requeue`, that record is sent, and nothing sent
    before is sent again."""
    config = make_config(tmp_path, twin_deployment.home.path, "dffh")
    (config.source / "referrals-01.csv").write_text(
        "record_id,client_id,service,referred_on,status\n"
        "R1,DFFH-C-3001,housing,2026-01-05,accepted\n"
        "R2,DFFH-C-3001,gardening,2026-01-05,accepted\n"
        "R3,DFFH-C-4444,disability,2026-01-05,accepted\n"
    )
    (config.source / "outcomes-01.csv").write_text("id,who\n1,2\n")
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        reasons = {r.record_key: r.reason for r in a.state.quarantined()}
    assert reasons == {
        "dffh:referrals:R2": "record.bad_value",
        "dffh:referrals:R3": "offender.unmapped",
        "outcomes-01.csv#file": "file.bad_header",
    }
    assert config.mapping is not None
    with config.mapping.open("a") as fh:
        fh.write("DFFH-C-4444,S284-000150\n")
    config_file = tmp_path / "dffh.yaml"
    config_file.write_text(json.dumps(config.model_dump(mode="json")))
    done = cli("adapter", "dffh", "requeue", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 record(s) released")
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        still = {r.record_key for r in a.state.quarantined()}
    assert still == {"dffh:referrals:R2", "outcomes-01.csv#file"}
    async with await twin_deployment.client("corrections") as c:
        offenders = sorted(i.envelope.offender for i in await drain(c))
    assert offenders == ["S284-000101", "S284-000150"]


async def test_order_status_written_as_csv(twin_deployment, twin_gateway, tmp_path):
    """A Corrections order status delivered to DFFH is written as a one-row CSV in DFFH's
    client id, holding only the fields DFFH may see and naming those withheld."""
    config = make_config(tmp_path, twin_deployment.home.path, "dffh")
    async with await twin_deployment.client("corrections") as corrections:
        receipt = await corrections.send(
            kind="order.status",
            purpose="offender_management",
            offender="S284-000102",
            to=["dffh"],
            payload={"order_type": "supervision_order", "residence_restrictions": ["r1"]},
        )
    assert receipt.accepted
    async with adapter(config, twin_deployment) as a:
        assert await a.drain_outbound() == 1
    (path,) = config.destination.glob("*.csv")
    with path.open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["local_id"] == "DFFH-C-3002"
    assert json.loads(row["payload_json"]) == {"residence_restrictions": ["r1"]}
    assert row["withheld"] == "order_type"
