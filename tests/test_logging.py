"""Logs carry ids and reason codes, never payload contents, names or offender references."""

from __future__ import annotations

import io
import json

import structlog

from broker import logs

SECRET_NAME = "Zebediah Quillfeather"  # invented
SECRET_NOTE = "synthetic-sentinel-7f3a"


async def test_gateway_and_sdk_logs_hold_no_payload_or_names(twin_deployment, twin_gateway):
    """Accepted and refused messages alike leave only ids and codes in the JSON log."""
    out = io.StringIO()
    logs.configure("DEBUG", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    async with await twin_deployment.client("corrections") as sender:
        payload = {"name": SECRET_NAME, "note": SECRET_NOTE}
        ok = await sender.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-987654",
            to=["police"],
            payload=payload,
        )
        refused = await sender.send(
            kind="risk.update",
            purpose="consent",
            offender="S284-987654",
            to=["police"],
            payload=payload,
            justification=f"asked by {SECRET_NAME}",
        )
    async with await twin_deployment.client("police") as police:
        got = [d.payload async for d in police.inbox()]
    logs.configure("INFO")
    text = out.getvalue()
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert ok.accepted
    assert refused.reason == "policy.denied"
    assert got == [payload]
    assert "message_accepted" in events
    assert "message_refused" in events
    assert ok.message_id in text
    for secret in (SECRET_NAME, SECRET_NOTE, "S284-987654"):
        assert secret not in text
