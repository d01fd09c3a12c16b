"""The four adapters against generated sources (`s284 up --demo`), with a summary.

Each adapter gets a folder under `<home>/adapters/<agency>/` (config, source, destination,
state, offender map), synthetic source files, one inbound pass (all four at once), then one
outbound pass. Run again on the same home, nothing is sent twice: the files are the same
and the adapters' state remembers them.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from adapters._config import AdapterConfig
from adapters._core import Adapter
from adapters._run import generate_sources, open_adapter
from broker import MAP_AGENCIES, Agency, BrokerError


def _say(text: str, *, err: bool = False) -> None:
    """The demo's user-facing lines (it prints; it is not a CLI, so no click)."""
    (sys.stderr if err else sys.stdout).write(text + "\n")


RECORDS = 12
SEED = 284


@dataclass(frozen=True)
class AgencyFigures:
    agency: Agency
    sent: int
    quarantined: int
    written: int
    written_from: dict[str, int]


def demo_config(home: Path, agency: Agency) -> AdapterConfig:
    """Write (once) and load the demo config for one agency's adapter."""
    base = home / "adapters" / agency.value
    path = base / "adapter.yaml"
    if not path.exists():
        base.mkdir(parents=True, exist_ok=True)
        config = {
            "agency": agency.value,
            "home": str(home.resolve()),
            "source": "in",
            "destination": "out",
            "state_dir": "state",
            "mapping": "offenders.csv",
            "poll_interval_s": 1.0,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return AdapterConfig.load(path)


async def _inbound(config: AdapterConfig) -> None:
    generate_sources(config, RECORDS, SEED)
    async with open_adapter(config) as adapter:
        await adapter.poll_once()


def _figures(adapter: Adapter) -> AgencyFigures:
    counts = adapter.state.counts()
    senders = adapter.state.written_by_sender()
    return AgencyFigures(
        adapter.config.agency,
        counts["sent"],
        counts["quarantined"],
        sum(senders.values()),
        senders,
    )


async def _outbound(config: AdapterConfig) -> AgencyFigures:
    async with open_adapter(config) as adapter:
        await adapter.drain_outbound()
        return _figures(adapter)


async def run_adapter_demo(home: Path) -> list[AgencyFigures]:
    configs = [demo_config(home, a) for a in MAP_AGENCIES]
    await asyncio.gather(*(_inbound(c) for c in configs))
    return [await _outbound(c) for c in configs]


def summary_lines(figures: list[AgencyFigures], home: Path) -> list[str]:
    lines = [f"Adapters (synthetic sources and state under {home / 'adapters'}):"]
    for f in figures:
        origin = ", ".join(f"{k} {v}" for k, v in f.written_from.items()) or "none"
        lines.append(
            f"  {f.agency.value:<12} sent {f.sent:<3} quarantined {f.quarantined:<3} "
            f"written {f.written:<3} (from {origin})"
        )
    return lines


async def run_adapter_demo_against(home: Path) -> None:
    """`s284 up --demo`: after the scripted scenario, the adapters; errors as one line."""
    try:
        figures = await run_adapter_demo(home)
    except BrokerError as exc:
        _say(f"adapter demo failed: {exc}", err=True)
        return
    _say("\n".join(summary_lines(figures, home)))
