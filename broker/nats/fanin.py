"""One fetch over several pull consumers: the gateway reads every agency's ingress stream.

Each consumer keeps at most one fetch in flight; `fetch` returns as soon as any of them
has messages, and leaves the others running so that an idle stream never delays a busy
one. Messages a still-running fetch receives are returned by the next call.

That is also the fairness bound (issue 17): each agency has at most one fetch of `batch`
messages in flight, so a flood on one stream delays another agency's message by a batch
or two of the flood, never by its backlog (tests/test_fairness.py measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

from broker.nats.client import Inbound


class _Fetcher(Protocol):
    async def fetch(self, batch: int, timeout: float) -> list[Inbound]: ...  # noqa: ASYNC109


class FanIn:
    """Fetch from whichever consumer has messages first (round-robin fair under load)."""

    def __init__(self, consumers: Sequence[_Fetcher]) -> None:
        self._consumers = list(consumers)
        self._pending: dict[asyncio.Task[list[Inbound]], _Fetcher] = {}

    async def fetch(self, batch: int, timeout: float) -> list[Inbound]:  # noqa: ASYNC109
        busy = set(self._pending.values())
        for consumer in self._consumers:
            if consumer not in busy:
                task = asyncio.create_task(consumer.fetch(batch, timeout))
                self._pending[task] = consumer
        done, _ = await asyncio.wait(
            self._pending, timeout=timeout + 5.0, return_when=asyncio.FIRST_COMPLETED
        )
        msgs: list[Inbound] = []
        for task in done:
            del self._pending[task]
            msgs += task.result()
        return msgs

    async def close(self) -> None:
        """Let the fetches in flight end; their messages are redelivered after ack wait."""
        for task in self._pending:
            task.cancel()
        for task in self._pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
