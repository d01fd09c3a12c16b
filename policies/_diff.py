"""`diff`: every request in the finite request space whose decision two bundles disagree on.

The space: sender agency x its roles (every role either bundle lists, and one unlisted role)
x recipient x kind x purpose x order status x justification (absent, and each side of every
length threshold the policies test) x consent reference (absent/given) x law reference
(absent/given). Evaluating Cedar on each of those hundreds of thousands of requests takes
minutes, so each policy is evaluated only over the dimensions it reads (`_analysis`), and
the space is walked with the dimensions the two bundles differ on bound first: once every
differing policy is settled and both bundles stand at the same outcome, the rest of that
branch cannot differ and is skipped. A change's decisions are built as `decide` builds
them, from the policies that matched (tests/test_policies_diff.py checks them against it).
A change is a different outcome (permit, deny, engine error) or privacy-review flag; a
different reason or determining policy alone is not.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from policies._analysis import DIMS, dims_read
from policies._engine import CedarPolicyEngine, load_bundle
from policies._entities import UNLISTED
from policies._model import Decision, PolicyRequest

_ENUM_DIMS = {
    "agency": "agencies",
    "recipient": "agencies",
    "kind": "kinds",
    "purpose": "purposes",
    "order_status": "order_statuses",
}
_SAMPLE = "x"


@dataclass(frozen=True)
class Change:
    """One request two bundles decide differently (outcome or privacy-review flag)."""

    request: PolicyRequest
    old: Decision
    new: Decision


def diff(old_path: Path | None, new_path: Path | None) -> list[Change]:
    """Every request whose decision differs between two bundles (None: the shipped one)."""
    return diff_engines(load_bundle(old_path), load_bundle(new_path))


def diff_engines(old: CedarPolicyEngine, new: CedarPolicyEngine) -> list[Change]:
    space = _Space.of(old, new)
    sides = (_Side(old, space), _Side(new, space))
    return list(_Walk(space, sides).changes())


# -- the request space -------------------------------------------------------------------

Point = tuple[object, ...]  # one value per DIMS entry, in DIMS order


@dataclass(frozen=True)
class _Space:
    values: dict[str, tuple[object, ...]]  # every dimension but role
    roles: dict[str, tuple[str, ...]]  # per agency

    @classmethod
    def of(cls, *engines: CedarPolicyEngine) -> _Space:
        values: dict[str, tuple[object, ...]] = {}
        for dim, attribute in _ENUM_DIMS.items():
            values[dim] = _union(getattr(e.vocabulary, attribute) for e in engines)
        values["justification"] = _lengths(engines)
        values["consent"] = values["law"] = (False, True)
        agencies = _union(e.vocabulary.agencies for e in engines)
        roles = {a: (*_union(e.listed_roles(a) for e in engines), UNLISTED) for a in agencies}
        return cls(values, roles)

    def options(self, dim: str, point: list[object]) -> tuple[object, ...]:
        if dim == "role":
            return self.roles[str(point[0])]
        return self.values[dim]

    def projections(self, dims: tuple[int, ...]) -> Iterator[Point]:
        """Every combination of values of the given dimensions (DIMS indexes, ascending)."""
        point: list[object] = [None] * len(DIMS)

        def fill(i: int) -> Iterator[Point]:
            if i == len(dims):
                yield tuple(point[d] for d in dims)
                return
            for value in self.options(DIMS[dims[i]], point):
                point[dims[i]] = value
                yield from fill(i + 1)

        return fill(0)


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(itertools.chain.from_iterable(groups)))


def _lengths(engines: tuple[CedarPolicyEngine, ...]) -> tuple[object, ...]:
    thresholds = set().union(*(e.justification_thresholds() for e in engines))
    around = {n for t in thresholds for n in (t - 1, t, t + 1) if n > 0}
    return tuple(sorted({0} | (around or {1})))


def to_request(point: Point) -> PolicyRequest:
    agency, role, recipient, kind, purpose, status, length, consent, law = point
    return PolicyRequest(
        sender_agency=str(agency),
        sender_role=str(role),
        recipient_agency=str(recipient),
        kind=str(kind),
        purpose=str(purpose),
        order_status=str(status),
        justification=_SAMPLE * length if isinstance(length, int) and length else None,
        consent_reference="consent-reference" if consent else None,
        law_reference="law-reference" if law else None,
    )


# -- one bundle, policy by policy -------------------------------------------------------


@dataclass(frozen=True)
class _Policy:
    """A policy (or a declared-values check) as a table over the dimensions it reads."""

    id: str
    effect: str  # permit, forbid, or declared (an undeclared value is an engine error)
    review: bool
    dims: tuple[int, ...]
    table: dict[Point, bool | str]  # satisfied, or the error text

    @property
    def identity(self) -> object:
        """Equal for two policies that decide every request alike, whatever their ids."""
        return (self.effect, self.review, self.dims, tuple(sorted(self.table.items(), key=repr)))


class _Side:
    def __init__(self, engine: CedarPolicyEngine, space: _Space) -> None:
        self.engine = engine
        self.policies = [_declared(engine, space, d) for d in _ENUM_DIMS]
        self.policies += [_tabulate(engine, space, pid) for pid in engine.policy_ids]


def _declared(engine: CedarPolicyEngine, space: _Space, dim: str) -> _Policy:
    index = DIMS.index(dim)
    declared = set(getattr(engine.vocabulary, _ENUM_DIMS[dim]))
    table: dict[Point, bool | str] = {
        (v,): "undeclared" for v in space.values[dim] if v not in declared
    }
    return _Policy(f"(declared {dim})", "declared", review=False, dims=(index,), table=table)


def _tabulate(engine: CedarPolicyEngine, space: _Space, policy_id: str) -> _Policy:
    est = engine.policy_json(policy_id)
    dims = tuple(sorted(DIMS.index(d) for d in dims_read(est) | _implied(dims_read(est))))
    policy_set = cedarpy.PolicySet.from_json_str(
        json.dumps({"staticPolicies": {policy_id: est}, "templates": {}, "templateLinks": []})
    )
    base = _declared_point(engine)
    table: dict[Point, bool | str] = {}
    for key in space.projections(dims):
        point = list(base)
        for d, value in zip(dims, key, strict=True):
            point[d] = value
        request = to_request(tuple(point))
        if engine.undeclared(request) is None:
            table[key] = _satisfied(engine, request, policy_set, policy_id)
    rule_review = engine.reviews(policy_id)
    return _Policy(policy_id, str(est["effect"]), rule_review, dims, table)


def _implied(dims: frozenset[str]) -> set[str]:
    return {"agency"} if "role" in dims else set()


def _declared_point(engine: CedarPolicyEngine) -> Point:
    v = engine.vocabulary
    return (
        v.agencies[0],
        UNLISTED,
        v.agencies[0],
        v.kinds[0],
        v.purposes[0],
        v.order_statuses[0],
        0,
        False,
        False,
    )


def _satisfied(
    engine: CedarPolicyEngine, request: PolicyRequest, policy_set: cedarpy.PolicySet, pid: str
) -> bool | str:
    result = engine.evaluate(request, policy_set)
    if result.diagnostics.errors:
        return "; ".join(result.diagnostics.errors)
    return pid in result.diagnostics.reasons


# -- walking both bundles at once --------------------------------------------------------


@dataclass(frozen=True)
class _State:
    error: bool = False
    forbids: tuple[str, ...] = ()
    permits: tuple[str, ...] = ()
    review: bool = False

    def outcome(self) -> tuple[object, ...]:
        if self.error:
            return ("error",)
        if self.forbids or not self.permits:
            return ("deny",)
        return ("permit", self.review)

    def settled(self) -> tuple[object, ...]:
        return (self.error, bool(self.forbids), bool(self.permits), self.review)

    def apply(self, policy: _Policy, point: list[object]) -> _State:
        hit = policy.table.get(tuple(point[d] for d in policy.dims), False)
        if hit is False:
            return self
        if isinstance(hit, str) or policy.effect == "declared":
            return _State(error=True)
        if policy.effect == "forbid":
            return _State(self.error, (*self.forbids, policy.id), self.permits, self.review)
        return _State(
            self.error, self.forbids, (*self.permits, policy.id), self.review or policy.review
        )


class _Walk:
    def __init__(self, space: _Space, sides: tuple[_Side, _Side]) -> None:
        self.space = space
        self.sides = sides
        changed = self._changed()
        self.order = _order(changed)
        depth = {d: i for i, d in enumerate(self.order)}
        self.ready = [
            [[p for p in side.policies if _ready_at(p, depth) == k] for k in range(len(DIMS))]
            for side in sides
        ]
        self.root = [[p for p in side.policies if not p.dims] for side in sides]
        self.last = max((_ready_at(p, depth) for p in changed), default=-1)

    def _changed(self) -> list[_Policy]:
        old, new = ([p.identity for p in s.policies] for s in self.sides)
        return [p for p in self.sides[0].policies if p.identity not in new] + [
            p for p in self.sides[1].policies if p.identity not in old
        ]

    def changes(self) -> Iterator[Change]:
        old, new = (_apply_all(_State(), policies, []) for policies in self.root)
        return self._descend(0, [None] * len(DIMS), old, new)

    def _descend(self, k: int, point: list[object], old: _State, new: _State) -> Iterator[Change]:
        if k == len(DIMS):
            if old.outcome() != new.outcome():
                yield self._change(tuple(point), old, new)
            return
        dim = self.order[k]
        for value in self.space.options(DIMS[dim], point):
            point[dim] = value
            a = _apply_all(old, self.ready[0][k], point)
            b = _apply_all(new, self.ready[1][k], point)
            if k >= self.last and a.settled() == b.settled():
                continue
            if a.error and b.error:
                continue
            yield from self._descend(k + 1, point, a, b)
        point[dim] = None

    def _change(self, point: Point, old: _State, new: _State) -> Change:
        request = to_request(point)
        return Change(
            request, _decision(self.sides[0], request, old), _decision(self.sides[1], request, new)
        )


def _apply_all(state: _State, policies: list[_Policy], point: list[object]) -> _State:
    for policy in policies:
        state = state.apply(policy, point)
    return state


def _ready_at(policy: _Policy, depth: dict[int, int]) -> int:
    return max((depth[d] for d in policy.dims), default=-1)


def _order(changed: list[_Policy]) -> tuple[int, ...]:
    """Dimensions the changed policies read first (most-read first); agency before role."""
    uses = {d: sum(d in p.dims for p in changed) for d in range(len(DIMS))}
    uses[0] = max(uses[0], uses[1])  # the roles to walk depend on the agency
    return tuple(sorted(range(len(DIMS)), key=lambda d: (-uses[d], d)))


def _decision(side: _Side, request: PolicyRequest, state: _State) -> Decision:
    engine = side.engine
    if state.error:
        return engine.decide(request)
    if state.forbids:
        return engine.decision_from(request, list(state.forbids), allowed=False)
    return engine.decision_from(request, list(state.permits), allowed=bool(state.permits))
