"""Every NATS connection is TLS, verified against the home's local CA; the HTTP API
serves TLS when given a certificate and refuses to leave loopback without one."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from broker.errors import ConfigError, TransportError
from broker.home import Home
from broker.nats.client import Connection
from broker.nats.config import Credentials
from broker.nats.server import free_loopback_ports
from broker.nats.tls import client_context, create_local_ca, issue_client_certificate
from broker.runtime import Started, run_embedded
from broker.settings import Settings
from tests.conftest import Deployment, started_deployment

pytestmark = pytest.mark.nats


def _plaintext_login(port: int, creds: Credentials) -> bytes:
    """Speak the NATS protocol in clear, as a client without TLS would; all it got back."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        info = sock.recv(4096)
        assert b'"tls_required":true' in info
        login = f'CONNECT {{"user":"{creds.user}","pass":"{creds.password.get_secret_value()}"}}'
        sock.sendall(f"{login}\r\nPING\r\n".encode())
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


async def test_plaintext_client_is_refused(deployment: Deployment) -> None:
    """A client that logs in without TLS, even with the right password, never gets a PONG:
    the server announces that TLS is required and drops the connection."""
    creds = deployment.home.credentials("police")
    received = await asyncio.to_thread(_plaintext_login, deployment.port, creds)
    assert b"PONG" not in received
    assert b"+OK" not in received


async def test_client_that_does_not_trust_the_ca_is_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Connecting with a CA other than the server's fails with a message about TLS and
    the CA to check, not a traceback."""
    stranger = create_local_ca(tmp_path / "other-ca")
    creds = deployment.home.credentials("police")
    wrong = Credentials(creds.user, creds.password, ca=stranger.ca)
    with pytest.raises(TransportError, match=r"TLS to NATS .* failed .*S284_TLS_CA"):
        await Connection.connect(deployment.home.nats_url, wrong, name="t", connect_timeout=2)


async def test_home_connects_over_tls_with_private_keys_kept_private(
    deployment: Deployment,
) -> None:
    """The home's NATS URL is tls://, agencies connect verifying the local CA, and the CA's
    and server's private keys are readable by their owner only."""
    home = deployment.home
    assert home.nats_url.startswith("tls://")
    conn = await Connection.connect(home.nats_url, home.credentials("police"), name="t")
    assert conn.is_connected
    await conn.close()
    for key in (home.tls_files.key, home.tls_files.ca.parent / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "tls" in home.nats_conf.read_text()


async def test_api_refuses_a_public_host_without_tls(tmp_path: Path) -> None:
    """`s284 up` asked to serve the API on all interfaces without a certificate stops at
    once with a message naming S284_TLS_CERT and S284_TLS_KEY; nothing is started."""
    settings = Settings(home=tmp_path / "home", http_host="0.0.0.0")  # noqa: S104 - refused
    with pytest.raises(ConfigError, match="S284_TLS_CERT"):
        await run_embedded(settings, lambda _started: None, asyncio.Event())
    assert not (tmp_path / "home").exists()


async def test_api_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    """With S284_TLS_CERT and S284_TLS_KEY set, /healthz answers over HTTPS to a client that
    trusts the CA, and plain HTTP gets no answer."""
    home, (nats_port, http_port) = Home(tmp_path / "home"), free_loopback_ports(2)
    home.init(nats_port)
    files = home.tls_files
    settings = Settings(
        home=home.path, nats_port=nats_port, http_port=http_port,
        tls_cert=files.cert, tls_key=files.key,
    )  # fmt: skip
    up, stop = asyncio.Event(), asyncio.Event()
    started: list[Started] = []

    def on_started(s: Started) -> None:
        started.append(s)
        up.set()

    task = asyncio.create_task(run_embedded(settings, on_started, stop))
    try:
        await asyncio.wait_for(up.wait(), 60)
        url = f"https://127.0.0.1:{http_port}/healthz"
        async with httpx.AsyncClient(verify=client_context(files.ca), trust_env=False) as http:
            assert (await http.get(url)).status_code == 200
        async with httpx.AsyncClient(trust_env=False) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{http_port}/healthz")
    finally:
        stop.set()
        await task
    assert started[0].http_url.startswith("https://")


def test_unreadable_ca_is_a_config_error(tmp_path: Path) -> None:
    """A CA path that does not exist is reported as a configuration problem naming it."""
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        client_context(tmp_path / "missing.pem")


@pytest.fixture
async def mutual(tmp_path: Path) -> AsyncIterator[Deployment]:
    """A deployment whose identities log in with client certificates (verify_and_map)."""
    async with started_deployment(tmp_path, mutual_tls=True) as dep:
        yield dep


async def test_mutual_tls_refuses_a_password_without_certificate(mutual: Deployment) -> None:
    """With mutual TLS, police's right password without its client certificate is refused."""
    creds = mutual.home.credentials("police")
    bare = Credentials(creds.user, creds.password, ca=creds.ca)
    with pytest.raises(TransportError, match="client certificate"):
        await Connection.connect(mutual.home.nats_url, bare, name="t", connect_timeout=2)


async def test_mutual_tls_refuses_a_certificate_from_another_ca(
    mutual: Deployment, tmp_path: Path
) -> None:
    """A certificate named `police` but issued by another CA does not log in as police."""
    stranger = create_local_ca(tmp_path / "other-ca")
    forged = issue_client_certificate(stranger.ca.parent, "police", tmp_path / "forged")
    creds = mutual.home.credentials("police")
    wrong = Credentials(creds.user, creds.password, ca=creds.ca, cert=forged.cert, key=forged.key)
    with pytest.raises(TransportError, match="TLS to NATS"):
        await Connection.connect(mutual.home.nats_url, wrong, name="t", connect_timeout=2)


async def test_mutual_tls_refuses_another_agencys_certificate(mutual: Deployment) -> None:
    """DFFH's credentials paired with police's certificate are refused before connecting,
    naming whose certificate it is; police's own certificate logs in as police."""
    police, dffh = mutual.home.credentials("police"), mutual.home.credentials("dffh")
    mixed = Credentials(dffh.user, dffh.password, ca=dffh.ca, cert=police.cert, key=police.key)
    with pytest.raises(ConfigError, match="'police'"):
        await Connection.connect(mutual.home.nats_url, mixed, name="t")
    conn = await Connection.connect(mutual.home.nats_url, police, name="t")
    assert conn.is_connected
    await conn.close()
