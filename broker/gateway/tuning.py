"""Garbage-collector settings for a long-running gateway process (issue 14).

Per message the gateway makes many short-lived objects (parsed JSON, pydantic models, JOSE
strings) and it holds a large long-lived heap (SQLAlchemy, the policy bundle, the API).
With CPython's default thresholds (700, 10, 10) it looked for reference cycles every few
hundred net allocations and walked that long-lived heap again and again. Reference
counting frees almost all of a message's objects at once; the thresholds only decide how
often cycles are searched for. So, once started: collect, freeze what exists (start-up
objects are never scanned again), and search for cycles less often. Memory stays bounded:
cycles are still collected, just in larger, rarer sweeps.

But over a long run rarer let the RSS creep (bench/README.md, "Memory over 100,000
messages"): with a 50,000 generation 0 the full collection that frees older cycles came
seldom, and pages glibc's allocator had freed stayed resident. So every HOUSEKEEPING_S
seconds a full collection (the frozen start-up heap is not scanned: ~10 ms) and
malloc_trim(0) (~1 ms): together a lower level, and memory that goes back down. On a
timer of the event loop, so the sweep needs no hook in the message path.

And the event loop such a process runs on (`run_server`): uvloop where it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

GEN0_THRESHOLD = 50_000
HOUSEKEEPING_S = 10.0


def tune_gc() -> None:
    """Call once the process has loaded what it keeps (engine, stores, keys)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, 20, 10)
    period = _housekeeping_period()
    if period > 0:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to sweep on
            start_housekeeping(asyncio.get_running_loop(), period)


def _housekeeping_period() -> float:
    """Seconds between two housekeeping sweeps; `S284_HOUSEKEEPING_S=0` turns them off (to
    compare)."""
    try:
        return max(0.0, float(os.environ.get("S284_HOUSEKEEPING_S", HOUSEKEEPING_S)))
    except ValueError:
        return HOUSEKEEPING_S


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def housekeep(trim: Callable[[], object] | None = None) -> int:
    """One sweep: a full collection (cheap with the start-up heap frozen: ~10 ms for the
    ~4,000 objects in cycles 10 s of traffic leave), then the C allocator's free pages given
    back to the system. Returns how many unreachable objects the collection found."""
    found = gc.collect()
    if trim is not None:
        trim()
    return found


def start_housekeeping(loop: asyncio.AbstractEventLoop, period: float) -> asyncio.TimerHandle:
    """Sweep every `period` seconds on `loop` for as long as it runs (a timer, not a task:
    nothing to cancel at shutdown). Returns the first timer."""
    trim = _malloc_trim()

    def sweep() -> None:
        housekeep(trim)
        loop.call_later(period, sweep)

    return loop.call_later(period, sweep)


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
