"""Shared helpers for the adapter tests: a config in the test's home, and inbox draining."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from adapters import Adapter, AdapterConfig, write_offender_map
from adapters._run import client_from_home, open_adapter
from broker.sdk import AgencyClient
from broker.wire.envelope import Sender
from broker.wire.sealing import VerifiedDelivery
from tests.twin import TwinDeployment

LOCAL_IDS = {
    "health": ["UR-900001", "UR-900002", "UR-900003"],
    "police": ["VP-P-70001", "VP-P-70002", "VP-P-70003"],
    "corrections": ["CCS-50001", "CCS-50002", "CCS-50003"],
    "dffh": ["DFFH-C-3001", "DFFH-C-3002", "DFFH-C-3003"],
}


def make_config(tmp: Path, home: Path, agency: str, **extra: object) -> AdapterConfig:
    """A config like an operator would write, with a synthetic offender map."""
    base = tmp / f"adapter-{agency}"
    ids = LOCAL_IDS[agency]
    write_offender_map(
        base / "offenders.csv", {lid: f"S284-{i + 101:06d}" for i, lid in enumerate(ids)}
    )
    data: dict[str, object] = {
        "agency": agency,
        "home": str(home),
        "source": "in",
        "destination": "out",
        "state_dir": "state",
        "mapping": "offenders.csv",
        "poll_interval_s": 0.2,
        "receipt_timeout_s": 5.0,
        **extra,
    }
    (base / "in").mkdir(parents=True, exist_ok=True)
    return AdapterConfig.parse(data, base)


@contextlib.asynccontextmanager
async def adapter(
    config: AdapterConfig, twin: TwinDeployment | None = None
) -> AsyncIterator[Adapter]:
    """The adapter on the real NATS of its home, or on `twin`'s in-memory NATS."""

    async def on_twin(config: AdapterConfig, sender: Sender) -> AgencyClient:
        assert twin is not None
        return await twin.client(config.agency.value, sender)

    async with open_adapter(config, on_twin if twin else client_from_home) as a:
        yield a


async def drain(client: AgencyClient) -> list[VerifiedDelivery]:
    """Everything delivered to the agency: its inbox, then its routed alerts."""
    inbox = [item async for item in client.inbox(follow=False, idle_timeout=0.2)]
    return inbox + [item async for item in client.alerts(follow=False, idle_timeout=0.2)]
