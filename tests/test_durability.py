"""Durability against power loss: the embedded nats-server fsyncs every JetStream write
before it acknowledges it, as the running server itself reports (not our config file)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broker.home import Home
from broker.nats.config import ServerOptions
from broker.nats.server import NatsServer, free_loopback_ports
from broker.nats.streams import stream_specs
from broker.nats.transport import StreamLimits
from broker.runtime import provision
from broker.settings import Settings
from broker.wire.envelope import Agency

pytestmark = pytest.mark.nats


def _monitor(port: int, path: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/{path}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: dict[str, Any] = json.load(resp)
    return body


async def _served(tmp_path: Path, options: ServerOptions) -> tuple[dict[str, Any], set[str]]:
    """Start a home's server with monitoring on loopback, provision it, and return what the
    server reports: its JetStream config and the names of the streams it holds."""
    port, monitor = free_loopback_ports(2)
    home = Home(tmp_path / "home")
    home.init(port, server=ServerOptions(options.mutual_tls, options.sync_always, monitor))
    server = NatsServer(home.nats_conf, port, tmp_path / "nats.log")
    await server.start()
    try:
        await provision(Settings(home=home.path))
        config = _monitor(monitor, "varz")["jetstream"]["config"]
        jsz = _monitor(monitor, "jsz?accounts=true&streams=true")
    finally:
        await server.stop()
    streams = {s["name"] for a in jsz["account_details"] for s in a.get("stream_detail", [])}
    return config, streams


async def test_server_fsyncs_every_stream_before_acknowledging(tmp_path: Path) -> None:
    """An operator starting `s284 up` gets a server that reports `sync_always` (JetStream's
    `sync_interval: always`), which holds for every stream the broker provisions."""
    config, streams = await _served(tmp_path, ServerOptions())
    assert config.get("sync_always") is True
    expected = stream_specs(StreamLimits(1024, 30.0, 5), [a.value for a in Agency])
    assert {spec.name for spec in expected} <= streams


async def test_bench_switch_turns_fsync_off(tmp_path: Path) -> None:
    """Only the benchmark's switch (S284_NATS_SYNC_ALWAYS=false) gives a server without it,
    so the figures in bench/README.md compare the two on the same machine."""
    config, _ = await _served(tmp_path, ServerOptions(sync_always=False))
    assert "sync_always" not in config or config["sync_always"] is False
