"""The log's checkpoint key lives apart from the log: in `<home>.signer/` (0700, key 0600),
reached over a Unix socket by a separate `s284 signer` process that signs only checkpoints
extending the last one it signed. The deployment home (audit.db) holds the public key only."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import subprocess
import sys
import time

import pytest

from audit import AuditStore, Checkpoint, parse_verifier_key, signed_checkpoint
from audit._note import open_checkpoint
from broker.errors import ConfigError
from broker.signer import SignerClient
from tests.auditlog import record


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_outside_the_home_and_only_its_owner_reads_it(twin_deployment):
    home = twin_deployment.home
    signer = home.signer_home()
    assert signer.key_path.is_file()
    assert home.path not in signer.key_path.parents  # not beside audit.db
    assert _mode(signer.key_path) == 0o600
    assert _mode(signer.path) == 0o700
    assert not list(home.path.rglob("*audit-log.private*"))
    vkey = home.log_vkey()
    assert vkey == signer.signer().vkey  # the home keeps the public half only
    assert "audit-log.private" not in (home.path / "keys" / "audit-log.vkey").read_text()


def test_an_old_home_s_key_is_moved_out(twin_deployment):
    """A home from before the signer kept keys/audit-log.private.json: it is moved."""
    home = twin_deployment.home
    key_text = home.signer_home().key_path.read_text()
    vkey = home.log_vkey()
    old = home.path / "keys" / "audit-log.private.json"
    old.write_text(key_text)
    home.signer_home().key_path.unlink()
    assert home.signer_home().signer().vkey == vkey
    assert not old.exists()
    assert _mode(home.signer_home().key_path) == 0o600


@pytest.fixture
def signer_process(twin_deployment):
    """`s284 signer` as its own process on a socket; stopped with SIGTERM afterwards."""
    home = twin_deployment.home
    socket = home.signer_path / "test.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "signer",
            "--home",
            str(home.path),
            "--socket",
            str(socket),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = SignerClient(socket)
    deadline = time.monotonic() + 30
    while not client.answers():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the signer never answered"
        time.sleep(0.1)
    yield client, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert not socket.exists()  # it cleans up after itself


def test_the_signer_process_signs_extensions_and_refuses_a_rewrite(twin_deployment, signer_process):
    client, proc = signer_process
    assert _mode(client.socket_path) == 0o600
    store = AuditStore.open(twin_deployment.settings.database_url)
    verifier = parse_verifier_key(twin_deployment.home.log_vkey())
    store.append([record(i) for i in range(3)])
    made = signed_checkpoint(store, client)
    assert made is not None
    assert open_checkpoint(made.note, verifier).size == 3
    store.append([record(i) for i in range(3, 7)])
    assert signed_checkpoint(store, client) is not None  # with a consistency proof
    forged = Checkpoint(client.origin, 9, bytes(32))  # a tree that does not extend size 7
    with pytest.raises(ConfigError, match="refused"):
        client.sign_checkpoint(forged, lambda old: store.consistency_proof(old, 7))
    with pytest.raises(ConfigError, match="below the signed size"):
        client.sign_checkpoint(Checkpoint(client.origin, 2, bytes(32)), lambda old: [])
    store.close()
    assert proc.poll() is None  # a refusal is an answer, not a crash


def test_audit_checkpoint_goes_through_the_signer(twin_deployment, cli):
    """`s284 audit checkpoint` on a home with no signer running serves the signer's
    directory itself, through the socket, and leaves nothing running."""
    store = AuditStore.open(twin_deployment.settings.database_url)
    store.append([record(i) for i in range(2)])
    store.close()
    done = cli("audit", "checkpoint", "--home", str(twin_deployment.home.path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[1] == "2"
    state = json.loads((twin_deployment.home.signer_path / "state.json").read_text())
    assert state["size"] == 2
    assert not (twin_deployment.home.signer_path / "signer.sock").exists()


async def test_a_gateway_pointed_at_a_signer_that_is_not_there_refuses_to_start(
    twin_deployment,
):
    """With S284_SIGNER_SOCKET set (production), the gateway never falls back to a key of
    its own: no signer, no start, one clear line."""
    missing = twin_deployment.home.signer_path / "nobody.sock"
    settings = twin_deployment.settings.model_copy(
        update={"signer_socket": missing, "signer_wait_s": 1.0}
    )
    with pytest.raises(ConfigError, match=r"no log signer answers .* \(waited 1 s\)"):
        async with twin_deployment.gateway(asyncio.Event(), settings):
            pass
