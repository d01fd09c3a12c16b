"""`python -m bench.profiled up|gateway ...`: the s284 CLI with a per-step CPU profile of the
gateway, for `s284 bench --profile`. The library is not changed: this wraps the gateway's
step methods from outside (bench/ is outside the library's import graph) and charges the
CPU time between two marks (`time.process_time`: every thread of the process, so work the
steps hand to threads counts too) to the innermost step running.

The gateway overlaps one batch's steps 8-9 with the next batch's steps 1-7; profiled, it
runs them one after the other instead (`_one_batch_at_a_time`), so its async steps never
overlap one another and one stack of labels stays true. The CPU per message is the same
work either way; the overlap changes the wall clock, which the profile does not measure.
What other tasks (fetch, NATS reads, the checkpointer, the idle API) spend while a step
awaits is charged to that step, and everything between batches to `fetch + event loop`.

On SIGUSR1 the totals so far go to $S284_BENCH_PROFILE_DIR/<pid>.json (the bench takes
the difference of two such snapshots around a phase, so start-up is not counted).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

BETWEEN = "fetch + event loop (between batches)"

# (object, attribute, label), in the order of the gateway's steps (pipeline.py).
STEPS: tuple[tuple[str, str, str], ...] = (
    ("broker.gateway.pipeline:Gateway", "prepare_batch", "batch glue, 7b alert rows"),
    ("broker.gateway.pipeline:Gateway", "deliver_batch", "batch glue, 7b alert rows"),
    ("broker.gateway.pipeline:Gateway", "_frame", "1 frame checks"),
    ("broker.gateway.pipeline:Gateway", "_authenticate", "2 verify signature"),
    ("broker.gateway.pipeline:Gateway", "_replay", "3 replay lookup"),
    ("broker.gateway.pipeline:Gateway", "_open", "4 open payload"),
    ("broker.gateway.pipeline:Gateway", "_decide", "5 s 284 decisions"),
    ("broker.gateway.pipeline:Gateway", "_minimise", "6 minimise"),
    ("broker.gateway.pipeline:Gateway", "_seal", "8a re-seal per recipient"),
    ("broker.gateway.pipeline:Gateway", "_route", "6b route (registry)"),
    ("broker.gateway.pipeline", "disclosures", "7 build audit records"),
    ("broker.gateway.pipeline:Gateway", "_record", "7 audit append + checkpoints"),
    ("broker.gateway.pipeline:Gateway", "_publish", "8 publish deliveries (await acks)"),
    ("broker.gateway.pipeline:Gateway", "_answer", "9 ack ingress, publish receipts"),
    ("broker.gateway.pipeline", "sign_receipt", "9 sign receipts"),
    ("broker.gateway.pipeline:Gateway", "_log_outcome", "logging"),
)


class Profile:
    """CPU seconds per label, charged to the innermost label running."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {BETWEEN: 0.0}
        self._stack: list[str] = [BETWEEN]
        self._mark = time.process_time()
        self.messages = 0

    def _charge(self) -> None:
        now = time.process_time()
        top = self._stack[-1]
        self.seconds[top] = self.seconds.get(top, 0.0) + now - self._mark
        self._mark = now

    def enter(self, label: str) -> None:
        self._charge()
        self._stack.append(label)

    def leave(self) -> None:
        self._charge()
        if len(self._stack) > 1:
            self._stack.pop()

    def snapshot(self) -> dict[str, Any]:
        self._charge()
        return {"seconds": dict(self.seconds), "messages": self.messages}


PROFILE = Profile()


def _timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            PROFILE.enter(label)
            try:
                return await fn(*args, **kwargs)
            finally:
                PROFILE.leave()

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        PROFILE.enter(label)
        try:
            return fn(*args, **kwargs)
        finally:
            PROFILE.leave()

    return run


def _one_batch_at_a_time() -> None:
    """Count the messages, and finish each batch's tail before the next batch starts."""
    from broker.gateway.pipeline import Gateway  # noqa: PLC0415 - after the patches' imports

    process = Gateway._process_safely  # noqa: SLF001 - the profile patches the loop from outside

    @functools.wraps(process)
    async def serial(self: Gateway, msgs: list[Any], before: Any) -> None:
        PROFILE.messages += len(msgs)
        tail = await process(self, msgs, before)
        if tail is not None:
            await tail

    Gateway._process_safely = serial  # type: ignore[method-assign]  # noqa: SLF001


def install() -> None:
    import importlib  # noqa: PLC0415

    for target, name, label in STEPS:
        module_name, _, cls_name = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        if cls_name:
            owner = getattr(owner, cls_name)
        setattr(owner, name, _timed(label, getattr(owner, name)))
    _one_batch_at_a_time()
    signal.signal(signal.SIGUSR1, _dump)


def _dump(_signum: int, _frame: FrameType | None) -> None:
    out = Path(os.environ["S284_BENCH_PROFILE_DIR"]) / f"{os.getpid()}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(PROFILE.snapshot()), encoding="utf-8")
    tmp.replace(out)


def main() -> None:
    install()
    from broker.cli.main import main as s284  # noqa: PLC0415

    sys.argv[0] = "s284"
    s284()


if __name__ == "__main__":
    main()
