"""The scripted multi-agency demo: a leaf only the CLI imports (`s284 demo`, `up --demo`).

Scenes from packages broker may not import (the agency adapters) join through the
`s284.demo_scenes` entry point, so `up --demo` plays them without broker importing them.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from broker.demo.scenario import run_demo, run_demo_against

__all__ = ["play_all", "run_demo", "run_demo_against"]


async def play_all(home: Path) -> None:
    """The broker's scenario, then every installed scene, against a running home."""
    await run_demo_against(home)
    for entry in sorted(entry_points(group="s284.demo_scenes"), key=lambda e: e.name):
        await entry.load()(home)
