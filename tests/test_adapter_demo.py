"""The adapter demo (`s284 up --demo`): the four adapters on generated sources, against a
real nats-server and gateway."""

from __future__ import annotations

import pytest

from adapters.demo import run_adapter_demo, summary_lines
from broker.wire.envelope import MAP_AGENCIES, Agency

pytestmark = pytest.mark.nats


async def test_four_adapters_exchange_and_rerun_sends_nothing_twice(deployment, gateway):
    """Every adapter sends its generated records and writes deliveries from the others; the
    summary names each agency; a second run on the same home sends and writes nothing new."""
    home = deployment.home.path
    first = {f.agency: f for f in await run_adapter_demo(home)}
    assert all(f.sent > 0 and f.written > 0 for f in first.values())
    assert set(first[Agency.CORRECTIONS].written_from) == {"dffh", "health", "police"}
    lines = summary_lines(list(first.values()), home)
    assert all(any(a.value in line for line in lines) for a in MAP_AGENCIES)
    again = {f.agency: f for f in await run_adapter_demo(home)}
    assert again == first
