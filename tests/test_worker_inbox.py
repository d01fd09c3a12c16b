"""`s284 gateway --inbox-port`: the designated contacts' inbox served by a gateway worker.

In production the API runs apart from the gateways (`s284 api`), but an acknowledgement or
a reply is acted on by the alert flow, which runs in each gateway worker. A worker started
with `--inbox-port` serves the contacts' alert API and web inbox beside that flow, and
nothing else: no disclosure log, no console.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from tests.conftest import _wait_ready, free_port, s284
from tests.test_web_inbox_e2e import TABLE, _send

pytestmark = [pytest.mark.nats, pytest.mark.slow]

def test_a_gateway_worker_serves_the_contacts_inbox(deployment, tmp_path):
    """A contact lists the alert routed to them and acknowledges it through the worker's
    inbox port; the managing officer at Corrections receives the acknowledgement; the
    disclosure log is not served there."""
    home = deployment.home.path
    imported = s284("routing", "import", str(TABLE), "--home", str(home), "--as", "ops-0001")
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "gateway", "--home", str(home),
         "--inbox-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, worker)
        _send(
            home, tmp_path, "--kind", "order.status", "--order-status", "supervision_order",
            payload={"area": "north-west-metro", "managing_officer": "cm-0042"},
        )  # fmt: skip
        receipt = _send(
            home, tmp_path, "--kind", "risk.alert", "--topic", "risk",
            payload={"alert_level": "high", "summary": "synthetic"},
        )  # fmt: skip
        [delivery] = receipt["deliveries"]
        token = s284(
            "token", "--home", str(home), "--role", "contact", "--agency", "police",
            "--subject", delivery["contact"],
        ).stdout.splitlines()[-1]  # fmt: skip
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            listed = http.get("/api/v1/alerts").json()["alerts"]
            acked = http.post(f"/api/v1/alerts/{delivery['delivery_id']}/ack")
            after = http.get("/api/v1/alerts").json()["alerts"]
            inbox = http.get("/inbox", follow_redirects=False)
            log = http.get("/api/v1/audit/records")
            console = http.get("/console", follow_redirects=False)
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert [a["alert_id"] for a in listed] == [delivery["delivery_id"]], listed
    assert acked.status_code == 200, acked.text
    assert after == []
    assert inbox.status_code in (200, 303), inbox.text  # the inbox page (or its sign-in)
    assert (log.status_code, console.status_code) == (404, 404)
    assert worker.returncode == 0, output
    assert "Traceback" not in output
    notices = s284("inbox", "--home", str(home), "--as", "corrections", "--notices", "--json")
    assert notices.returncode == 0, notices.stderr
    [notice] = [json.loads(line) for line in notices.stdout.splitlines()]
    assert (notice["event"], notice["alert_id"]) == ("acknowledged", delivery["delivery_id"])
