"""Assemble and run an adapter from its config: module, SDK client, state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import structlog

from adapters._config import AdapterConfig, write_offender_map
from adapters._core import Adapter
from adapters._model import AgencyModule
from adapters._state import AdapterState
from broker import Agency, AgencyClient, Sender, TransportError

log = structlog.get_logger("s284.adapter")


def module_for(agency: Agency) -> AgencyModule:
    from adapters.corrections import CorrectionsModule  # noqa: PLC0415 - one per process
    from adapters.dffh import DffhModule  # noqa: PLC0415
    from adapters.health import HealthModule  # noqa: PLC0415
    from adapters.police import PoliceModule  # noqa: PLC0415

    modules: dict[Agency, AgencyModule] = {
        Agency.HEALTH: HealthModule(),
        Agency.CORRECTIONS: CorrectionsModule(),
        Agency.POLICE: PoliceModule(),
        Agency.DFFH: DffhModule(),
    }
    return modules[agency]


def adapter_sender(agency: Agency) -> Sender:
    """Adapters relay what the agency's staff recorded: the `system` role (no risk_reduction,
    which rests on a person's belief; policies/bundle/relevant_persons.yaml)."""
    return Sender(agency=agency, unit="adapter", person_id=f"{agency.value}-adapter", role="system")


ClientFactory = Callable[[AdapterConfig, Sender], Awaitable[AgencyClient]]


async def client_from_home(config: AdapterConfig, sender: Sender) -> AgencyClient:
    """The SDK client on the NATS named by the adapter's home."""
    return await AgencyClient.from_home(config.home, config.agency.value, sender)


async def client_when_up(config: AdapterConfig, sender: Sender) -> AgencyClient:
    """The long-running adapter waits for its broker: one warning, then quiet retries."""
    told = False
    while True:
        try:
            return await client_from_home(config, sender)
        except TransportError:
            if not told:
                log.warning("broker_unreachable_waiting", agency=config.agency.value)
                told = True
        await asyncio.sleep(2.0)


@contextlib.asynccontextmanager
async def open_adapter(
    config: AdapterConfig, connect: ClientFactory = client_from_home
) -> AsyncIterator[Adapter]:
    """`connect` makes the SDK client (tests pass one on the in-memory twin of NATS)."""
    state = AdapterState.open(config.state_dir)
    try:
        client = await connect(config, adapter_sender(config.agency))
        async with client:
            adapter = Adapter(module_for(config.agency), config, client, state)
            adapter.load_offender_map()
            yield adapter
    finally:
        state.close()


async def run_until_stopped(config: AdapterConfig, stop: asyncio.Event) -> int:
    """The long-running adapter: inbound and outbound until `stop` is set (the CLI sets it
    on SIGINT/SIGTERM)."""
    async with open_adapter(config, client_when_up) as adapter:
        log.info("adapter_started", agency=config.agency.value)
        tasks = [adapter.run_inbound(stop), adapter.run_outbound(stop)]
        if config.agency is Agency.POLICE and config.webhook_port is not None:
            from adapters.police import serve_webhook  # noqa: PLC0415

            tasks.append(serve_webhook(config, stop))
        await asyncio.gather(*tasks)
    log.info("adapter_stopped", agency=config.agency.value)
    return 0


_LOCAL_PREFIX = {
    Agency.HEALTH: "UR-9",
    Agency.POLICE: "VP-P-7",
    Agency.CORRECTIONS: "CCS-5",
    Agency.DFFH: "DFFH-C-3",
}


def synthetic_offender_map(agency: Agency, offenders: int) -> dict[str, str]:
    """Invented local ids for scheme references S284-000101 onwards: the same offenders in
    every agency's map, each under that agency's own kind of id."""
    return {f"{_LOCAL_PREFIX[agency]}{i:04d}": f"S284-{i + 101:06d}" for i in range(offenders)}


def generate_sources(
    config: AdapterConfig, count: int, seed: int, offenders: int = 5
) -> list[Path]:
    """Synthetic source files in `config.source`, and the offender map if it has none yet."""
    from adapters import corrections, dffh, health, police  # noqa: PLC0415

    pairs = synthetic_offender_map(config.agency, offenders)
    if config.mapping is not None and not config.mapping.exists():
        write_offender_map(config.mapping, pairs)
    generators = {
        Agency.HEALTH: health.generate,
        Agency.POLICE: police.generate,
        Agency.CORRECTIONS: corrections.generate,
        Agency.DFFH: dffh.generate,
    }
    return generators[config.agency](config.source, sorted(pairs), count, seed)
