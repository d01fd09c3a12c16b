"""Which request dimensions a Cedar policy can see, read from its JSON form.

`diff` evaluates each policy only over the dimensions it reads, which is sound because a
Cedar policy is a function of the request parts it mentions, and a decision is a function
of which policies are satisfied (any error; else any forbid; else any permit; else deny).
Anything the reader does not recognise counts as reading every dimension of that part.
"""

from __future__ import annotations

from typing import Any

DIMS = (
    "agency",  # sender agency
    "role",  # sender role (bound after agency: the roles are those of that agency)
    "recipient",
    "kind",
    "purpose",
    "order_status",
    "justification",  # length of the justification
    "consent",  # a consent reference is given
    "law",  # a law reference is given
)
_PRINCIPAL = {"agency": ("agency",)}
_RESOURCE = {
    "recipient": ("recipient",),
    "kind": ("kind",),
    "purpose": ("purpose",),
    "order_status": ("order_status",),
}
_CONTEXT = {
    "justification_length": ("justification",),
    "has_consent_reference": ("consent",),
    "has_law_reference": ("law",),
}
_VARS = {
    "principal": (_PRINCIPAL, ("agency", "role")),
    "resource": (_RESOURCE, ("recipient", "kind", "purpose", "order_status")),
    "context": (_CONTEXT, ("justification", "consent", "law")),
}


def dims_read(est: dict[str, Any]) -> frozenset[str]:
    """The dimensions a policy (in Cedar's JSON form) reads, in its scope and conditions."""
    found: set[str] = set()
    for var in ("principal", "resource"):
        if est.get(var, {}).get("op") != "All":
            found.update(_VARS[var][1])
    for condition in est.get("conditions", []):
        _walk(condition.get("body"), found)
    return frozenset(found)


def _walk(node: object, found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, found)
        return
    if not isinstance(node, dict):
        return
    for op in (".", "has"):
        access = node.get(op)
        if isinstance(access, dict) and _attribute(access, found):
            return
    var = node.get("Var")
    if isinstance(var, str) and var in _VARS:
        found.update(_VARS[var][1])
        return
    for value in node.values():
        _walk(value, found)


def _attribute(access: dict[str, Any], found: set[str]) -> bool:
    """`var.attr` of a known attribute: record its dimension and stop descending."""
    left = access.get("left")
    if not isinstance(left, dict) or left.get("Var") not in _VARS:
        return False
    known, everything = _VARS[left["Var"]]
    found.update(known.get(str(access.get("attr")), everything))
    return True


def long_literals(est: dict[str, Any]) -> set[int]:
    """Integer literals in a policy that reads the justification length: its thresholds."""
    if "justification" not in dims_read(est):
        return set()
    found: set[int] = set()
    _longs(est.get("conditions", []), found)
    return found


def _longs(node: object, found: set[int]) -> None:
    if isinstance(node, list):
        for item in node:
            _longs(item, found)
    elif isinstance(node, dict):
        value = node.get("Value")
        if isinstance(value, int) and not isinstance(value, bool):
            found.add(value)
        for item in node.values():
            _longs(item, found)
