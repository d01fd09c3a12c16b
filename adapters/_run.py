"""Assemble and run an adapter from its config: module, SDK client, state."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog

from adapters._config import AdapterConfig
from adapters._core import Adapter
from adapters._model import AgencyModule
from adapters._state import AdapterState
from broker.envelope import Agency, Sender
from broker.sdk import AgencyClient

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


@contextlib.asynccontextmanager
async def open_adapter(config: AdapterConfig) -> AsyncIterator[Adapter]:
    state = AdapterState.open(config.state_dir)
    try:
        client = await AgencyClient.from_home(
            config.home, config.agency.value, adapter_sender(config.agency)
        )
        async with client:
            adapter = Adapter(module_for(config.agency), config, client, state)
            adapter.load_offender_map()
            yield adapter
    finally:
        state.close()


async def run_until_stopped(config: AdapterConfig, stop: asyncio.Event | None = None) -> int:
    """The long-running adapter: inbound and outbound until SIGINT/SIGTERM (or `stop`)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_adapter(config) as adapter:
        log.info("adapter_started", agency=config.agency.value)
        tasks = [adapter.run_inbound(stop), adapter.run_outbound(stop)]
        if config.agency is Agency.POLICE and config.webhook_port is not None:
            from adapters.police import serve_webhook  # noqa: PLC0415

            tasks.append(serve_webhook(config, stop))
        await asyncio.gather(*tasks)
    log.info("adapter_stopped", agency=config.agency.value)
    return 0
