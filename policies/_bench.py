"""Decision latency: the bundle parsed once, then many decisions timed one by one."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from policies._engine import load_bundle
from policies._model import PolicyRequest

_JUSTIFICATION = "Offender disclosed intent to go to the victim's address tonight"
# A mix of what the gateway sees: permits, refusals by forbid, a default deny.
_REQUESTS = (
    PolicyRequest("corrections", "case_manager", "police", "risk.update", "offender_management"),
    PolicyRequest("health", "clinician", "corrections", "service.progress", "offender_management"),
    PolicyRequest(
        "dffh",
        "housing_worker",
        "corrections",
        "service.progress",
        "csp_service_delivery",
        order_status="supervision_order",
    ),
    PolicyRequest(
        "corrections",
        "case_manager",
        "dffh",
        "risk.alert",
        "risk_reduction",
        justification=_JUSTIFICATION,
    ),
    PolicyRequest("corrections", "case_manager", "police", "risk.alert", "risk_reduction"),
    PolicyRequest("corrections", "case_manager", "police", "risk.alert", "reports"),
)


def decision_latency(n: int = 20_000) -> dict[str, float]:
    """Median and 99th percentile of `n` Cedar decisions (µs, each asked afresh), of `n`
    remembered ones (`memo_*`, what the gateway pays once a request was seen), plus the
    one-off load time (ms)."""
    started = time.perf_counter()
    engine = load_bundle()
    load_ms = (time.perf_counter() - started) * 1e3
    for request in _REQUESTS:  # warm up (and fill the memo)
        engine.decide(request)
    cedar = _timed(engine.decide_uncached, n)
    memo = _timed(engine.decide, n)
    return {
        "decisions": float(len(cedar)),
        "median_us": statistics.median(cedar),
        "p99_us": _p99(cedar),
        "memo_median_us": statistics.median(memo),
        "memo_p99_us": _p99(memo),
        "load_ms": load_ms,
    }


def _timed(decide: Callable[[PolicyRequest], object], n: int) -> list[float]:
    samples: list[float] = []
    for i in range(max(n, 1)):
        request = _REQUESTS[i % len(_REQUESTS)]
        t0 = time.perf_counter_ns()
        decide(request)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    samples.sort()
    return samples


def _p99(samples: list[float]) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * 0.99))]
