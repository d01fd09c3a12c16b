"""The s 284 engine inside the running gateway: minimisation, review flags, reload.
(Gateway logic: runs on the in-memory twin of NATS; tests/test_transport_contract.py holds
the twin to nats-server's behaviour.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from audit import AuditStore
from broker.wire.envelope import Sender
from policies import load_bundle

BUNDLE = Path(load_bundle().path)
JUSTIFIED = "Victim reported a credible threat to the case manager this morning"


async def test_recipient_receives_only_allowed_fields_and_log_names_the_rest(
    twin_deployment, twin_gateway
):
    """Police get attendance from a progress report, not the clinical notes; the disclosure
    record names the withheld field, never its value."""
    payload = {"programme": "MBCP", "sessions_attended": 7, "clinical_notes": "synthetic"}
    async with await twin_deployment.client("corrections") as sender:
        receipt = await sender.send(
            kind="service.progress",
            purpose="offender_management",
            offender="S284-000410",
            to=["police"],
            payload=payload,
        )
    assert receipt.accepted
    async with await twin_deployment.client("police") as police:
        [item] = [d async for d in police.inbox()]
    assert item.payload == {"programme": "MBCP", "sessions_attended": 7}
    assert item.withheld == ["clinical_notes"]
    rows = AuditStore.open(twin_deployment.settings.database_url).records(receipt.message_id)
    [record] = [r for r in rows if r["event"] == "disclosed"]  # beside police's `received`
    assert record["withheld"] == ["clinical_notes"]
    assert "synthetic" not in str(record)


async def test_risk_reduction_is_flagged_for_privacy_review(twin_deployment, twin_gateway):
    """A justified risk_reduction disclosure is delivered and marked for review in the log
    and in the recipient's copy of the decision. (It rests on a person's belief, so the
    sender is a staff member, not the SDK's default `system` role.)"""
    officer = Sender(agency="corrections", unit="north", person_id="staff-7", role="case_manager")
    async with await twin_deployment.client("corrections", officer) as sender:
        receipt = await sender.send(
            kind="risk.alert",
            purpose="risk_reduction",
            offender="S284-000411",
            to=["police"],
            payload={"summary": "synthetic"},
            justification=JUSTIFIED,
        )
    assert receipt.accepted
    async with await twin_deployment.client("police") as police:
        [item] = [d async for d in police.alerts()]  # a risk.alert is routed, not an inbox item
    assert item.content.decision.review_required is True
    assert item.contact == "duty"  # no routing table yet: Police's duty inbox
    rows = AuditStore.open(twin_deployment.settings.database_url).records(receipt.message_id)
    disclosed, routed = [r for r in rows if r["event"] != "received"]
    assert disclosed["review_required"] is True
    assert disclosed["policy_version"] == receipt.policy_version
    assert (routed["event"], routed["reason_code"]) == ("alert_routed", "routing.no_area")


async def _logged(logs: list[dict[str, Any]], event: str) -> None:
    """Wait (at most 60 s, polling) until the gateway has logged `event`: the reload runs
    in a thread after the signal, so the test waits for its outcome, not for a guess."""
    for _ in range(600):
        if any(e.get("event") == event for e in logs):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {event} logged within 60 s")


async def test_sighup_reload_keeps_the_running_bundle_when_the_new_one_is_bad(
    twin_deployment, tmp_path
):
    """An operator edits the bundle and sends SIGHUP: a broken bundle is rejected and messages
    keep being decided by the running one; a valid edit takes effect without a restart."""
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle)
    settings = twin_deployment.settings.model_copy(update={"policy_bundle": bundle})
    stop = asyncio.Event()
    async with (
        twin_deployment.gateway(stop, settings),
        await twin_deployment.client("corrections") as sender,
    ):

        async def send() -> str | None:
            r = await sender.send(
                kind="risk.update",
                purpose="offender_management",
                offender="S284-000412",
                to=["police"],
                payload={},
            )
            assert r.accepted
            return r.policy_version

        with capture_logs() as logs:
            before = await send()
            cedar = min(bundle.glob("*.cedar"))
            good = cedar.read_text()
            cedar.write_text(good + "\npermit (principal, action, resource) when { oops };\n")
            os.kill(os.getpid(), signal.SIGHUP)
            await _logged(logs, "policy_bundle_rejected")
            assert await send() == before
            cedar.write_text(good + "\n// reviewed by the privacy officer, synthetic note\n")
            os.kill(os.getpid(), signal.SIGHUP)
            await _logged(logs, "policy_bundle_reloaded")
            after = await send()
    assert after != before
