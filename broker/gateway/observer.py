"""What the gateway tells an observer (metrics) as it works, and nothing more.

The pipeline calls these hooks once per batch step, once per answered message and once
per audit append; it never imports a metrics library. `broker.observe` implements the
protocol with Prometheus metrics; `NO_OBSERVER` (the default) does nothing, so a gateway
built without one (the fast tests, a library user) pays nothing.

Per-step timing is taken per *batch*, not per message: one observation per step per
batch keeps the cost independent of throughput (a per-message histogram observation in
seven steps would cost more than some of the steps).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

__all__ = ["NO_OBSERVER", "GatewayObserver", "NoObserver", "timed_step"]


class GatewayObserver(Protocol):
    def step(self, name: str, seconds: float) -> None:
        """One gateway step (frame, authenticate, ..., answer) took `seconds` for a batch."""
        ...

    def outcome(self, outcome: str, reason: str | None) -> None:
        """One message answered: `accepted`, or `refused` with its reason code."""
        ...

    def appended(self, records: int, seconds: float) -> None:
        """One durable audit append of `records` records took `seconds`."""
        ...


class NoObserver:
    """Observes nothing (the default)."""

    def step(self, name: str, seconds: float) -> None:
        pass

    def outcome(self, outcome: str, reason: str | None) -> None:
        pass

    def appended(self, records: int, seconds: float) -> None:
        pass


NO_OBSERVER = NoObserver()


class _Observed(Protocol):
    observer: GatewayObserver


_O = TypeVar("_O", bound=_Observed)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def timed_step(
    name: str,
) -> Callable[
    [Callable[Concatenate[_O, _P], Awaitable[_R]]], Callable[Concatenate[_O, _P], Awaitable[_R]]
]:
    """Decorate an async batch step of an object with an `observer`: its wall time, once."""

    def wrap(
        method: Callable[Concatenate[_O, _P], Awaitable[_R]],
    ) -> Callable[Concatenate[_O, _P], Awaitable[_R]]:
        @functools.wraps(method)
        async def run(owner: _O, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            started = time.perf_counter()
            try:
                return await method(owner, *args, **kwargs)
            finally:
                owner.observer.step(name, time.perf_counter() - started)

        return run

    return wrap
