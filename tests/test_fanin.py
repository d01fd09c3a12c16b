"""The gateway reads every agency's ingress stream through one fetch: a busy agency is
never held up by idle ones, and nothing fetched is dropped between calls."""

from __future__ import annotations

import asyncio
from typing import Any

from broker.nats.fanin import FanIn


class _Fake:
    """A pull consumer whose fetches answer after `delay` seconds with the next batch."""

    def __init__(self, delay: float, batches: list[list[Any]]) -> None:
        self.delay = delay
        self.batches = batches
        self.cancelled = 0

    async def fetch(self, batch: int, timeout: float) -> list[Any]:  # noqa: ARG002
        try:
            await asyncio.sleep(min(self.delay, timeout))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.batches.pop(0) if self.batches and self.delay <= timeout else []


async def test_busy_stream_is_not_held_up_by_idle_ones() -> None:
    """A message on one agency's stream comes back at once although three others are
    idle and their fetches wait for the full timeout."""
    busy = _Fake(0.01, [["police-1"]])
    idle = [_Fake(10.0, []) for _ in range(3)]
    fan = FanIn([busy, *idle])
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await fan.fetch(10, timeout=2.0) == ["police-1"]
    assert loop.time() - start < 1.0
    await fan.close()
    assert [f.cancelled for f in idle] == [1, 1, 1]


async def test_messages_of_a_fetch_still_running_come_with_the_next_call() -> None:
    """A slower stream's messages are not lost: the next fetch returns them, and a stream
    with a fetch in flight gets no second one meanwhile."""
    fast = _Fake(0.01, [["a1"], ["a2"]])
    slow = _Fake(0.3, [["b1"]])
    fan = FanIn([fast, slow])
    first = await fan.fetch(10, timeout=1.0)
    await asyncio.sleep(0.5)
    later = await fan.fetch(10, timeout=1.0) + await fan.fetch(10, timeout=1.0)
    await fan.close()
    assert first == ["a1"]
    assert sorted(later) == ["a2", "b1"]
