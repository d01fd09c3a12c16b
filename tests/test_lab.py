"""`s284 lab`: the production shape on loopback, as an operator starts it and as tests use
it (a context manager), and what it says when PostgreSQL is not there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from broker.lab import Lab, LabOptions
from broker.nats.client import Connection
from broker.nats.config import STREAM_DELIVER, ingress_stream
from tests import labtraffic
from tests.conftest import PG_URL, require_pg, s284


def test_lab_says_in_one_line_when_postgresql_is_unreachable(tmp_path: Path) -> None:
    done = s284("lab", "--root", str(tmp_path / "lab"), "--db-url",
                "postgresql+psycopg://postgres@127.0.0.1:1/test")  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "cannot reach PostgreSQL at postgresql+psycopg://postgres@127.0.0.1:1/test" in lines[0]


def _pg() -> None:
    require_pg()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of an exited child still answers signal 0
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.nats
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(180)
async def test_lab_carries_a_message_on_r3_streams_and_stops_everything(tmp_path: Path) -> None:
    """Three nodes, R3 streams, two workers, the API ready; Corrections' message reaches
    both recipients' own systems through the cluster; on exit no process is left."""
    _pg()
    async with Lab(LabOptions(tmp_path / "lab", db_url=PG_URL)) as lab:
        assert len(lab.nodes) == 3
        assert len([w for w in lab.workers if w.running]) == 2
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{lab.http_url}/readyz")).status_code == 200
        admin = await Connection.connect(lab.nats_url, lab.home.admin_credentials(), "t")
        try:
            for stream in (ingress_stream("corrections"), STREAM_DELIVER):
                info = await admin.js.stream_info(stream)
                assert info.config.num_replicas == 3
                assert info.cluster is not None
                assert len(info.cluster.replicas or []) == 2
        finally:
            await admin.close()
        sender = await labtraffic.client(lab, "corrections")
        frames = await labtraffic.sealed(sender, 5)
        await labtraffic.publish(sender, frames)
        await sender.close()
        counts = await labtraffic.count(lab, {mid for mid, _ in frames}, timeout=60.0)
        assert counts == labtraffic.Counts(0, 0, 0, 0)
        pids = [p.pid for p in [*lab.node_procs, *lab.workers, lab.api] if p and p.pid]
    assert len(pids) == 6
    assert all(_gone(pid) for pid in pids)


@pytest.mark.nats
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_s284_lab_prints_where_everything_is_and_stops_on_sigterm(tmp_path: Path) -> None:
    _pg()
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "lab", "--root", str(tmp_path / "lab"),
         "--db-url", PG_URL],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(out)
        assert "Press Ctrl-C" in text, text
        for name in ("s284-1", "s284-2", "s284-3", "gateway-1", "gateway-2", "HTTP API"):
            assert name in text
        for agency in ("police", "corrections", "dffh", "health"):
            assert f"agency-{agency}  pid" in text
        pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        assert len(pids) == 10  # three nodes, two workers, the API, four agencies
        time.sleep(2)  # an agency process that could not start would have exited by now
        assert not [pid for pid in pids if _gone(pid)], text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert all(_gone(pid) for pid in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
