"""`s284 adapter`: the commands a user runs, as subprocesses against a real nats-server and
gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys

import httpx
import pytest
import yaml

from tests.adapter_kit import drain
from tests.conftest import free_port, s284

pytestmark = pytest.mark.nats


def _config(tmp_path, home, agency: str, **extra):
    path = tmp_path / f"{agency}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **extra,
                "agency": agency,
                "home": str(home),
                "source": f"{agency}/in",
                "destination": f"{agency}/out",
                "state_dir": f"{agency}/state",
                "mapping": f"{agency}/offenders.csv",
                "poll_interval_s": 0.2,
            }
        )
    )
    return path


async def test_run_generate_and_quarantine_from_the_cli(deployment, gateway, tmp_path, cli):
    """`generate` writes synthetic sources and an offender map; the long-running adapter sends
    them and an event POSTed to its webhook, and stops cleanly on SIGTERM (exit 0);
    `quarantine` lists an unmappable record."""
    port = free_port()
    config = _config(tmp_path, deployment.home.path, "police", webhook_port=port)
    done = cli("adapter", "police", "generate", "--config", str(config), "--count", "6")
    assert done.returncode == 0, done.stderr
    bad = {
        "event_id": "X1",
        "event_type": "breach",
        "person_id": "VP-P-00000",
        "occurred_at": "2026-01-01T00:00:00+11:00",
        "condition": "curfew",
    }
    (tmp_path / "police/in/zz.ndjson").write_text(json.dumps(bad) + "\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker.cli",
        "adapter",
        "police",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    received = []
    posted = {**bad, "event_id": "W1", "person_id": "VP-P-70000"}
    async with await deployment.client("corrections") as corrections:
        for _ in range(60):
            received += await drain(corrections)
            if len(received) >= 7:
                break
            with contextlib.suppress(httpx.TransportError):
                if posted:
                    url = f"http://127.0.0.1:{port}/events"
                    async with httpx.AsyncClient(trust_env=False) as http:
                        assert (await http.post(url, json=posted)).status_code == 202
                    posted = {}
            await asyncio.sleep(0.25)
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()
    assert len(received) == 7
    assert "W1" in {i.payload["event_id"] for i in received}
    listed = cli("adapter", "police", "quarantine", "--config", str(config), "--json")
    assert listed.returncode == 0
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["record"], row["reason"]) == ("police:X1", "offender.unmapped")


def test_config_for_another_agency_is_refused(tmp_path, cli):
    """Running the Health adapter with the Police config is a one-line error, exit 1."""
    config = _config(tmp_path, tmp_path / "home", "police")
    done = cli("adapter", "health", "quarantine", "--config", str(config))
    assert done.returncode == 1
    assert "configures the police adapter, not health" in done.stderr
    assert "Traceback" not in done.stderr


def test_counts_command(tmp_path, cli):
    """`s284 adapter corrections counts` prints new cases per month, provider and program."""
    config = _config(tmp_path, tmp_path / "home", "corrections")
    source = tmp_path / "corrections/in"
    source.mkdir(parents=True)
    (source / "attendance-1.csv").write_text(
        "record_id,provider,program,client_id,incident_id,session_date,attended,case_status\n"
        "1,P,ICM,CCS-1,I1,2026-05-05,Y,open\n"
    )
    done = cli("adapter", "corrections", "counts", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    expected = {"month": "2026-05", "provider": "P", "program": "ICM", "new_cases": 1}
    assert json.loads(done.stdout) == expected


@pytest.mark.parametrize("agency", ["police", "corrections", "dffh", "health"])
def test_adapter_help_shows_a_config_for_that_agency(agency):
    """`s284 adapter X --help` shows a config example for X (not another agency's), and only
    the police adapter's example has the webhook port."""
    shown = s284("adapter", agency, "--help")
    assert shown.returncode == 0, shown.stderr
    assert f"agency: {agency}\n" in shown.stdout
    assert ("webhook_port" in shown.stdout) == (agency == "police")
