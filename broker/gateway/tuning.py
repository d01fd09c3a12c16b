"""Garbage-collector settings for a long-running gateway process (issue 14).

Per message the gateway makes many short-lived objects (parsed JSON, pydantic models, JOSE
strings) and it holds a large long-lived heap (SQLAlchemy, the policy bundle, the API).
With CPython's default thresholds (700, 10, 10) it looked for reference cycles every few
hundred net allocations and walked that long-lived heap again and again. Reference
counting frees almost all of a message's objects at once; the thresholds only decide how
often cycles are searched for. So, once started: collect, freeze what exists (start-up
objects are never scanned again), and search for cycles less often. Memory stays bounded:
cycles are still collected, just in larger, rarer sweeps.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Call once the process has loaded what it keeps (engine, stores, keys)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, 20, 10)
