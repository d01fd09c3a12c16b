"""Decisions remembered per full request, for one bundle.

A Cedar call costs a few hundred microseconds and the gateway asks the same questions all
day (the same sender role, recipient, kind, purpose and order status, usually without
evidence text), so `CedarPolicyEngine.decide` asks this memo first. The key is the whole
`PolicyRequest`, evidence included (a reason may quote its length), and a memo belongs to
one engine, that is to one bundle version: a reload builds a new engine with an empty
memo, so no decision outlives the bundle that made it. Engine errors are never
remembered (the next request asks Cedar again). Bounded: when full, the oldest entry goes.
"""

from __future__ import annotations

import threading

from policies._model import Decision, PolicyRequest

MEMO_SIZE = 4096


class DecisionMemo:
    """A bounded map PolicyRequest -> Decision; reads take no lock (a dict read is atomic)."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self._size = size
        self._decisions: dict[PolicyRequest, Decision] = {}
        self._writing = threading.Lock()  # the HTTP API's explain runs in worker threads

    def get(self, request: PolicyRequest) -> Decision | None:
        return self._decisions.get(request)

    def put(self, request: PolicyRequest, decision: Decision) -> None:
        if decision.error:
            return
        with self._writing:
            if len(self._decisions) >= self._size:
                del self._decisions[next(iter(self._decisions))]  # the oldest (insertion order)
            self._decisions[request] = decision

    def __len__(self) -> int:
        return len(self._decisions)
