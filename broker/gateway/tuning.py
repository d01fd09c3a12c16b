"""Garbage-collector settings for a long-running gateway process (issue 14).

Per message the gateway makes many short-lived objects (parsed JSON, pydantic models, JOSE
strings) and it holds a large long-lived heap (SQLAlchemy, the policy bundle, the API).
With CPython's default thresholds (700, 10, 10) it looked for reference cycles every few
hundred net allocations and walked that long-lived heap again and again. Reference
counting frees almost all of a message's objects at once; the thresholds only decide how
often cycles are searched for. So, once started: collect, freeze what exists (start-up
objects are never scanned again), and search for cycles less often. Memory stays bounded:
cycles are still collected, just in larger, rarer sweeps.

And the event loop such a process runs on (`run_server`): uvloop where it is installed.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Call once the process has loaded what it keeps (engine, stores, keys)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, 20, 10)


def run_server(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a long-lived server process's main coroutine on uvloop (libuv; issue 14: less
    CPU per NATS round trip than asyncio's selector loop), or on asyncio's own loop where
    uvloop is not installed (Windows) or `S284_EVENT_LOOP=asyncio` asks for it (to compare)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if os.environ.get("S284_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop  # noqa: PLC0415 - optional: not on Windows

            factory = uvloop.new_event_loop
        except ImportError:
            factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)

