"""The two human-edited tables: who is a relevant person, and what each recipient receives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies._errors import PolicyBundleError
from policies._schema import Vocabulary
from policies._yaml import line_of, load_yaml

PERSONS_FILE = "relevant_persons.yaml"
MINIMISATION_FILE = "minimisation.yaml"
ANY = "*"


@dataclass(frozen=True)
class Staff:
    """An agency/role pair the bundle declares a relevant person, with its functions."""

    agency: str
    role: str
    functions: tuple[str, ...]
    service: str | None


@dataclass(frozen=True)
class MinimisationRule:
    kinds: frozenset[str]
    purposes: frozenset[str]
    fields: frozenset[str] | None  # None: every field

    def matches(self, kind: str, purpose: str) -> bool:
        return kind in self.kinds and purpose in self.purposes


class _Checker:
    """Validates one table file, naming the file, line and field of the first problem."""

    def __init__(self, path: Path, vocabulary: Vocabulary) -> None:
        self.path = path
        self.vocabulary = vocabulary

    def fail(self, message: str, node: object, field: str | None = None) -> PolicyBundleError:
        return PolicyBundleError(message, file=self.path, line=line_of(node, field), field=field)

    def mapping(self, value: object, parent: object, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail("expected a mapping", parent, field)
        return value

    def keys(self, entry: dict[str, Any], required: set[str], optional: set[str]) -> None:
        unknown = set(entry) - required - optional
        if unknown:
            raise self.fail(f"unknown key(s) {sorted(unknown)}", entry, min(unknown))
        missing = required - set(entry)
        if missing:
            raise self.fail(f"missing key(s) {sorted(missing)}", entry, min(missing))

    def names(
        self, entry: dict[str, Any], field: str, allowed: tuple[str, ...], *, any_ok: bool = True
    ) -> tuple[str, ...]:
        value = entry[field]
        if value == ANY and any_ok:
            return allowed
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail('expected a list of names or "*"', entry, field)
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise self.fail(
                f"{unknown[0]!r} is not declared in the schema (declared: {', '.join(allowed)})",
                entry,
                field,
            )
        return tuple(value)


def load_persons(root: Path, vocabulary: Vocabulary) -> tuple[Staff, ...]:
    path = root / PERSONS_FILE
    check = _Checker(path, vocabulary)
    document = check.mapping(load_yaml(path), None, "roles")
    check.keys(document, {"roles"}, set())
    roles = check.mapping(document["roles"], document, "roles")
    staff: list[Staff] = []
    for role, raw in roles.items():
        if role not in vocabulary.roles:
            raise check.fail(
                f"role {role!r} is not declared in the schema (entity Role)", roles, role
            )
        staff += _role(check, str(role), check.mapping(raw, roles, str(role)))
    return tuple(staff)


def _role(check: _Checker, role: str, entry: dict[str, Any]) -> list[Staff]:
    vocabulary = check.vocabulary
    check.keys(entry, {"agencies", "functions"}, {"description", "service"})
    agencies = check.names(entry, "agencies", vocabulary.agencies, any_ok=False)
    functions = check.names(entry, "functions", vocabulary.purposes, any_ok=False)
    service = entry.get("service")
    if service is not None and service not in vocabulary.services:
        raise check.fail(f"service {service!r} is not declared in the schema", entry, "service")
    return [Staff(agency, role, functions, service) for agency in agencies]


def load_minimisation(
    root: Path, vocabulary: Vocabulary
) -> dict[str, tuple[MinimisationRule, ...]]:
    path = root / MINIMISATION_FILE
    check = _Checker(path, vocabulary)
    document = check.mapping(load_yaml(path), None, "(document)")
    table: dict[str, tuple[MinimisationRule, ...]] = {}
    for agency, rules in document.items():
        if agency not in vocabulary.agencies:
            raise check.fail(f"{agency!r} is not a declared agency", document, str(agency))
        if not isinstance(rules, list):
            raise check.fail("expected a list of rules", document, str(agency))
        table[agency] = tuple(_minimisation_rule(check, rule, document) for rule in rules)
    return table


def _minimisation_rule(check: _Checker, raw: object, parent: object) -> MinimisationRule:
    rule = check.mapping(raw, parent, "rule")
    check.keys(rule, {"why", "kinds", "purposes", "fields"}, set())
    if not isinstance(rule["why"], str) or not rule["why"].strip():
        raise check.fail("every rule says why, for its reviewers", rule, "why")
    kinds = check.names(rule, "kinds", check.vocabulary.kinds)
    purposes = check.names(rule, "purposes", check.vocabulary.purposes)
    fields = rule["fields"]
    if fields == ANY:
        return MinimisationRule(frozenset(kinds), frozenset(purposes), None)
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise check.fail('expected a list of field names or "*"', rule, "fields")
    return MinimisationRule(frozenset(kinds), frozenset(purposes), frozenset(fields))
