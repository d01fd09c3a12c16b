"""Decision latency: the bundle parsed once, then many decisions timed one by one."""

from __future__ import annotations

import statistics
import time

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
    """Median and 99th percentile of `n` decisions (µs), plus the one-off load time (ms)."""
    started = time.perf_counter()
    engine = load_bundle()
    load_ms = (time.perf_counter() - started) * 1e3
    for request in _REQUESTS:  # warm up
        engine.decide(request)
    samples: list[float] = []
    for i in range(max(n, 1)):
        request = _REQUESTS[i % len(_REQUESTS)]
        t0 = time.perf_counter_ns()
        engine.decide(request)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    samples.sort()
    return {
        "decisions": float(len(samples)),
        "median_us": statistics.median(samples),
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "load_ms": load_ms,
    }
