"""The CLI as a user drives it: `s284 up`, `send`, `inbox`, then Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import pytest

from tests.conftest import s284

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def test_up_send_inbox_and_clean_stop(running, tmp_path):
    """A user starts the broker, sends as Corrections, reads as Police, and stops it: the
    receipt is JSON with exit 0 / 3, the inbox shows the decrypted message, and SIGTERM
    leaves no nats-server behind."""
    home, proc, http = running
    payload = tmp_path / "update.json"
    payload.write_text(json.dumps({"risk_level": "high", "summary": "synthetic"}))
    common = [
        "--home",
        str(home),
        "--as",
        "corrections",
        "--kind",
        "risk.update",
        "--offender",
        "S284-000123",
        "--to",
        "police",
        "--payload",
        str(payload),
    ]

    ok = s284("send", *common, "--purpose", "offender_management")
    assert ok.returncode == 0, ok.stderr
    receipt = json.loads(ok.stdout)
    assert receipt["status"] == "accepted"
    assert [d["recipient"] for d in receipt["deliveries"]] == ["police"]

    refused = s284("send", *common, "--purpose", "risk_reduction")
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["reason"] == "policy.denied"
    assert "justification" in json.loads(refused.stdout)["detail"]

    justified = s284(
        "send",
        *common,
        "--purpose",
        "risk_reduction",
        "--justification",
        "Credible threat reported to the case manager on the 20th",
    )
    assert justified.returncode == 0, justified.stdout

    inbox = s284("inbox", "--home", str(home), "--as", "police", "--json")
    assert inbox.returncode == 0, inbox.stderr
    items = [json.loads(line) for line in inbox.stdout.splitlines()]
    assert [i["message_id"] for i in items] == [
        receipt["message_id"],
        json.loads(justified.stdout)["message_id"],
    ]
    assert items[0]["payload"] == {"risk_level": "high", "summary": "synthetic"}
    assert items[0]["from"]["agency"] == "corrections"
    again = s284("inbox", "--home", str(home), "--as", "police", "--json")
    assert again.stdout == ""  # acknowledged the first time

    assert httpx.get(f"http://127.0.0.1:{http}/healthz").json() == {"status": "ok"}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    leftover = subprocess.run(["pgrep", "-f", str(home / "nats")], capture_output=True, check=False)
    assert leftover.stdout == b""


def test_privacy_officer_queries_the_running_broker_and_the_log_verifies(running, tmp_path):
    """As the README shows: a token from `s284 token`, the audit API of `s284 up` answering
    a privacy officer's search about one offender, and `s284 audit verify` passing on the
    deployment after it stops."""
    home, proc, http = running
    payload = tmp_path / "update.json"
    payload.write_text(json.dumps({"risk_level": "high"}))
    sent = s284(
        "send",
        "--home",
        str(home),
        "--as",
        "corrections",
        "--kind",
        "risk.update",
        "--purpose",
        "offender_management",
        "--offender",
        "S284-000777",
        "--to",
        "police",
        "--to",
        "health",
        "--payload",
        str(payload),
    )
    assert sent.returncode == 0, sent.stderr
    token = s284(
        "token",
        "--home",
        str(home),
        "--role",
        "privacy_officer",
        "--agency",
        "police",
        "--subject",
        "A. Officer",
    )
    assert token.returncode == 0, token.stderr
    bearer = {"Authorization": f"Bearer {token.stdout.splitlines()[-1]}"}
    url = f"http://127.0.0.1:{http}/api/v1/audit/records?offender=S284-000777"
    page = httpx.get(url, headers=bearer, timeout=10).json()
    assert [r["recipient_agency"] for r in page["records"]] == ["police"]  # not Health's
    assert httpx.get(url, timeout=10).status_code == 401

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    verified = s284("audit", "verify", "--home", str(home))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: 3 records")  # 2 disclosures, 1 access-log seal


def test_send_without_a_deployment_is_a_clear_error(tmp_path):
    """No traceback: one line naming the problem and the fix, exit 1."""
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    result = s284(
        "send",
        "--home",
        str(tmp_path / "nowhere"),
        "--as",
        "police",
        "--kind",
        "risk.update",
        "--purpose",
        "consent",
        "--offender",
        "S284-000001",
        "--to",
        "dffh",
        "--payload",
        str(payload),
    )
    assert result.returncode == 1
    assert "s284 up" in result.stderr
    assert "Traceback" not in result.stderr


def test_send_rejects_a_payload_that_is_not_json(tmp_path):
    """A usage error points at the payload, before anything is sent."""
    payload = tmp_path / "p.json"
    payload.write_text("{not json")
    result = s284(
        "send",
        "--home",
        str(tmp_path),
        "--as",
        "police",
        "--kind",
        "risk.update",
        "--purpose",
        "consent",
        "--offender",
        "S284-000001",
        "--to",
        "dffh",
        "--payload",
        str(payload),
    )
    assert result.returncode == 2
    assert "--payload is not JSON" in result.stderr
