"""`s284 witness` as people use it: the agency initialises and runs its witness against the
broker's API over HTTP; the operator registers keys and the quorum and reads the status.
Bad input gets one clear line, never a traceback."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import sqlalchemy as sa
import uvicorn

from audit import AuditStore, checkpoint, verifier_key
from broker.witness import WitnessHome
from tests.auditlog import record, untrigger
from tests.conftest import free_port
from tests.test_witness import KEY, ORIGIN, _rewrite_and_resign
from tests.test_witness_http import Setup


@contextlib.contextmanager
def served(app):
    """The API on a free loopback port, in a thread; stopped afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API never started"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_operator_registers_witnesses_and_quorum(tmp_path, cli):
    broker = tmp_path / "broker"
    broker.mkdir()
    AuditStore.open(f"sqlite:///{broker / 'audit.db'}").close()
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(verifier_key(ORIGIN, KEY.public_key()))
    made = cli(
        "witness",
        "init",
        str(tmp_path / "w"),
        "--name",
        "witness.police.test/w1",
        "--log-key",
        str(vkey_file),
    )
    assert made.returncode == 0, made.stderr
    vkey = made.stdout.strip()
    assert vkey.startswith("witness.police.test/w1+")
    assert oct((tmp_path / "w" / "key.json").stat().st_mode & 0o777) == "0o600"
    assert '"d"' not in made.stdout  # the private key is never printed
    done = cli("witness", "register", vkey, "--home", str(broker))
    assert done.returncode == 0, done.stderr
    again = cli("witness", "register", vkey, "--home", str(broker))
    assert again.returncode == 1
    assert "already registered" in again.stderr
    bad = cli("witness", "register", "not-a-key", "--home", str(broker))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    too_many = cli("witness", "quorum", "2", "--home", str(broker))
    assert too_many.returncode == 1
    assert "exceeds" in too_many.stderr
    assert cli("witness", "quorum", "1", "--within", "5", "--home", str(broker)).returncode == 0
    listed = json.loads((broker / "witnesses.json").read_text())
    assert (listed["quorum"], listed["within_minutes"]) == (1, 5)
    status = cli("witness", "status", "--home", str(broker))
    assert status.returncode == 0, status.stderr
    assert "witness.police.test/w1  cosigned size 0  (never)" in status.stdout


def test_witness_run_cosigns_over_http_then_refuses_a_rewritten_log(tmp_path, cli):
    s = Setup(tmp_path)
    s.grow(0, 4)
    s.grow(4, 9)
    token = s.http.headers["Authorization"].removeprefix("Bearer ")
    home = s.homes[0]
    with served(s.http.app) as url:
        env = {"S284_WITNESS_TOKEN": token}
        done = cli("witness", "run", str(home.path), "--api", url, "--once", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "cosigned size 9"
        assert token not in done.stdout + done.stderr
        engine = untrigger(s.url)
        _rewrite_and_resign(s.store, engine, 2)
        engine.dispose()
        s.store.append([record(i) for i in range(9, 11)])
        checkpoint(s.store, ORIGIN, KEY)
        refused = cli("witness", "run", str(home.path), "--api", url, "--once", env=env)
    assert refused.returncode == 1
    assert "witness refused the log's checkpoint" in refused.stderr
    assert "does not extend" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert WitnessHome(home.path).state().size == 9
    with sa.create_engine(s.url).connect() as conn:
        sizes = conn.execute(sa.text("SELECT size FROM audit_cosignatures")).scalars().all()
    assert sizes == [9]
