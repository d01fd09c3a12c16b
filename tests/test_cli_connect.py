"""Connecting fails fast: with the broker down, a command says so at once, in one line
naming the NATS URL and `s284 up`, instead of retrying for seconds with a warning each
time. Waiting is kept for those whose purpose it is (the gateway, `--follow`)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client
from pydantic import SecretStr
from structlog.testing import capture_logs

from broker.errors import TransportError
from broker.home import Home
from broker.nats.client import Connection
from broker.nats.config import Credentials
from tests.conftest import free_port, s284

SEND = ["send", "--as", "corrections", "--kind", "risk.update", "--purpose",
        "offender_management", "--to", "police", "--offender", "S284-000123"]  # fmt: skip


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every TCP connection nats-py tries, counted."""
    tried: list[object] = []
    real = Client._connect_to_server  # the one place nats-py dials

    async def counting(self: Client, server: Any) -> None:
        tried.append(server)
        await real(self, server)

    monkeypatch.setattr(Client, "_connect_to_server", counting)
    return tried


async def test_a_refused_connection_is_one_attempt_and_one_error(attempts):
    """A user whose broker is down gets TransportError naming the URL and `s284 up`,
    after a single attempt, with no warning logged."""
    url = f"nats://127.0.0.1:{free_port()}"
    creds = Credentials(user="police", password=SecretStr("synthetic"))
    with capture_logs() as logs, pytest.raises(TransportError) as refused:
        await Connection.connect(url, creds, name="test")
    assert len(attempts) == 1
    assert url in str(refused.value)
    assert "s284 up" in str(refused.value)
    assert not [e for e in logs if e["log_level"] == "warning"]


async def test_patience_retries_quietly_then_gives_up(attempts):
    """The gateway waits for NATS to come up: several attempts, no warning per attempt,
    then the same one-line refusal."""
    url = f"nats://127.0.0.1:{free_port()}"
    creds = Credentials(user="gateway", password=SecretStr("synthetic"))
    with capture_logs() as logs, pytest.raises(TransportError, match="s284 up"):
        await Connection.connect(url, creds, name="test", patience=1.2)
    assert len(attempts) > 1
    assert not [e for e in logs if e["log_level"] == "warning"]


@pytest.mark.parametrize("argv", [SEND, ["inbox", "--as", "police"]])
def test_send_and_inbox_with_the_broker_down(tmp_path, argv):
    """`s284 send`/`s284 inbox` against a home whose NATS is not running: exit 1 and one
    line on stderr naming the URL and `s284 up`; no `nats_error` warnings."""
    home = Home(tmp_path / "home")
    home.init(free_port())
    payload = tmp_path / "update.json"
    payload.write_text('{"risk_level": "high"}')
    extra = ["--payload", str(payload)] if argv is SEND else []
    done = s284(*argv, *extra, "--home", str(home.path))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert home.nats_url in lines[0]
    assert "s284 up" in lines[0]
    assert "nats_error" not in done.stderr
