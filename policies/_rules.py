"""The bundle's Cedar policies: parsed and validated statement by statement, then one set.

Every policy must carry `@id` (unique), `@ground` (the s 284 ground it implements) and
`@reason` (the sentence a person reads, with `{field}` placeholders from the request);
`@review("privacy")` flags the disclosures it permits for privacy review.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import cedarpy

from policies._cedar_text import Statement, split_statements
from policies._errors import PolicyBundleError
from policies._model import RESERVED_IDS

REASON_FIELDS = frozenset(
    {
        "sender_agency",
        "sender_role",
        "recipient_agency",
        "kind",
        "purpose",
        "order_status",
        "justification_length",
    }
)
_REQUIRED_ANNOTATIONS = ("id", "ground", "reason")


@dataclass(frozen=True)
class Rule:
    """What the engine knows about one policy besides its Cedar text."""

    id: str
    effect: str  # "permit" or "forbid"
    ground: str
    reason: str  # a template over REASON_FIELDS
    review: bool
    file: Path
    line: int


@dataclass(frozen=True)
class LoadedRules:
    policy_set: cedarpy.PolicySet
    rules: dict[str, Rule]  # in file order
    ests: dict[str, Any]  # each policy's JSON form, for the request-space analysis of `diff`
    files: tuple[Path, ...]


def load_rules(root: Path, schema: cedarpy.Schema) -> LoadedRules:
    files = sorted(root.glob("*.cedar"))
    if not files:
        raise PolicyBundleError("the bundle has no policy files (*.cedar)", file=root)
    rules: dict[str, Rule] = {}
    policies: dict[str, Any] = {}
    for path in files:
        for statement in split_statements(path, _read(path)):
            rule, est = _load_statement(statement, schema, rules)
            rules[rule.id] = rule
            policies[rule.id] = est
    document = {"staticPolicies": policies, "templates": {}, "templateLinks": []}
    policy_set = cedarpy.PolicySet.from_json_str(json.dumps(document))
    return LoadedRules(policy_set, rules, policies, tuple(files))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyBundleError(f"cannot read: {exc.strerror}", file=path) from None


def _load_statement(
    statement: Statement, schema: cedarpy.Schema, seen: dict[str, Rule]
) -> tuple[Rule, Any]:
    est = _parse(statement)
    rule = _rule(statement, est, seen)
    result = cedarpy.validate_policies(statement.text, schema)
    if not result.validation_passed:
        problems = "; ".join(e.error for e in result.errors)
        _fail(statement, f"policy {rule.id!r} does not fit the schema: {problems}")
    return rule, est


def _parse(statement: Statement) -> Any:
    try:
        document = json.loads(cedarpy.policies_to_json_str(statement.text))
    except ValueError as exc:
        _fail(statement, f"not a valid Cedar policy: {exc}")
    if document["templates"]:
        _fail(statement, "templates (?principal, ?resource) are not used in this bundle")
    static = list(document["staticPolicies"].values())
    if len(static) != 1:
        _fail(statement, "expected one policy ending with ';'")
    return static[0]


def _rule(statement: Statement, est: Any, seen: dict[str, Rule]) -> Rule:
    notes: dict[str, str] = est.get("annotations") or {}
    for name in _REQUIRED_ANNOTATIONS:
        if not (notes.get(name) or "").strip():
            _fail(statement, f'every policy needs a non-empty @{name}("...") annotation')
    policy_id = notes["id"]
    if policy_id in RESERVED_IDS:
        _fail(statement, f"@id {policy_id!r} is reserved for the engine's own decisions")
    if policy_id in seen:
        other = seen[policy_id]
        _fail(statement, f"@id {policy_id!r} is already used at {other.file.name}:{other.line}")
    _check_reason(statement, notes["reason"])
    review = notes.get("review")
    if review not in (None, "privacy"):
        _fail(statement, '@review, when present, must be @review("privacy")')
    return Rule(
        policy_id,
        est["effect"],
        notes["ground"],
        notes["reason"],
        review is not None,
        statement.file,
        statement.line,
    )


def _check_reason(statement: Statement, reason: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(reason) if name is not None}
    except ValueError as exc:
        _fail(statement, f"@reason is not a valid template: {exc}")
    unknown = names - REASON_FIELDS
    if unknown:
        allowed = ", ".join(sorted(REASON_FIELDS))
        _fail(statement, f"@reason uses {sorted(unknown)}; it may use only {{{allowed}}}")


def _fail(statement: Statement, message: str) -> NoReturn:
    raise PolicyBundleError(message, file=statement.file, line=statement.line)
