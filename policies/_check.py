"""`check`: a bundle must load (schema, policies, tables) and pass its own decision tables.

A table is <bundle>/tests/*.yaml: optional `defaults` (request fields every row shares)
and `rows`, each a `name`, a `request` (the documented request form, over the defaults),
the decision it must get (`expect: permit | deny`), the `policy` id that must be among the
determining ones (`default-deny` for a default deny), and optionally `review: true|false`.
Every policy of the bundle, and the default deny, must be the expected policy of a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies._engine import CedarPolicyEngine, load_bundle
from policies._errors import PolicyBundleError
from policies._model import DEFAULT_DENY, Decision
from policies._yaml import line_of, load_yaml

TABLES = "tests"
_ROW_KEYS = {"name", "request", "expect", "policy"}
_EXPECT = ("permit", "deny")


@dataclass(frozen=True)
class RowFailure:
    """A table row whose decision is not the one it expects."""

    file: str
    line: int | None
    name: str
    expected: str
    got: Decision

    def __str__(self) -> str:
        got = f"{self.got.outcome} by {', '.join(self.got.policy_ids)}"
        if self.got.allowed:
            got += f", review {'required' if self.got.review_required else 'not required'}"
        where = f"{self.file}:{self.line}: {self.name}"
        return f"{where}: expected {self.expected}; got {got}: {self.got.reason}"


@dataclass(frozen=True)
class CheckReport:
    path: Path
    version: str
    rows: int
    failures: tuple[RowFailure, ...]
    untested: tuple[str, ...]  # policy ids no row expects

    @property
    def ok(self) -> bool:
        return self.rows > 0 and not self.failures and not self.untested

    def lines(self) -> list[str]:
        lines = [str(f) for f in self.failures]
        lines += [
            f"policy {pid!r} is not the expected policy of any table row" for pid in self.untested
        ]
        if self.rows == 0:
            lines.append(f"no decision table rows in {self.path / TABLES}/*.yaml")
        verdict = "ok" if self.ok else "FAILED"
        lines.append(
            f"{verdict}: bundle {self.version} ({self.path}): {self.rows} rows, "
            f"{len(self.failures)} failed, {len(self.untested)} policies untested"
        )
        return lines


def check_bundle(path: Path | None = None) -> CheckReport:
    """Load the bundle (PolicyBundleError if it is invalid) and run its decision tables."""
    return run_tables(load_bundle(path))


def run_tables(engine: CedarPolicyEngine) -> CheckReport:
    rows, failures, expected = (
        0,
        [],
        {DEFAULT_DENY: False} | dict.fromkeys(engine.policy_ids, False),
    )
    for path in sorted((engine.path / TABLES).glob("*.yaml")):
        for row in _rows(engine, path):
            rows += 1
            expected[row.policy] = True
            failure = row.run(engine)
            if failure is not None:
                failures.append(failure)
    untested = tuple(pid for pid, seen in expected.items() if not seen)
    return CheckReport(engine.path, engine.version, rows, tuple(failures), untested)


@dataclass(frozen=True)
class _Row:
    file: Path
    line: int | None
    name: str
    request: dict[str, Any]
    expect: str
    policy: str
    review: bool | None

    def run(self, engine: CedarPolicyEngine) -> RowFailure | None:
        decision = engine.decide(engine.parse_request(self.request))
        held = (
            decision.outcome == self.expect
            and self.policy in decision.policy_ids
            and (self.review is None or decision.review_required == self.review)
        )
        if held:
            return None
        expected = f"{self.expect} by {self.policy}"
        if self.review is not None:
            expected += f", review {'required' if self.review else 'not required'}"
        return RowFailure(self.file.name, self.line, self.name, expected, decision)


def _rows(engine: CedarPolicyEngine, path: Path) -> list[_Row]:
    document = load_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise PolicyBundleError("a decision table is a mapping with a list of `rows`", file=path)
    unknown = set(document) - {"defaults", "rows"}
    if unknown:
        raise PolicyBundleError(
            f"unknown key(s) {sorted(unknown)}",
            file=path,
            line=line_of(document, min(unknown)),
        )
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise PolicyBundleError(
            "`defaults` is a mapping of request fields",
            file=path,
            line=line_of(document, "defaults"),
        )
    return [_row(engine, path, defaults, raw) for raw in document["rows"]]


def _row(engine: CedarPolicyEngine, path: Path, defaults: dict[str, Any], raw: object) -> _Row:
    line = line_of(raw)
    if not isinstance(raw, dict):
        raise PolicyBundleError("a row is a mapping", file=path, line=line)
    _row_keys(path, raw)
    if not isinstance(raw["request"], dict):
        raise PolicyBundleError(
            "request is a mapping of request fields", file=path, line=line, field="request"
        )
    request = {**defaults, **raw["request"]}
    try:
        engine.parse_request(request)
    except PolicyBundleError as exc:
        raise PolicyBundleError(
            exc.message, file=path, line=line_of(raw, "request"), field=exc.field
        ) from None
    if raw["expect"] not in _EXPECT:
        raise PolicyBundleError(
            "expect is permit or deny", file=path, line=line_of(raw, "expect"), field="expect"
        )
    if raw["policy"] not in (DEFAULT_DENY, *engine.policy_ids):
        raise PolicyBundleError(
            f"no policy has @id {raw['policy']!r}",
            file=path,
            line=line_of(raw, "policy"),
            field="policy",
        )
    review = raw.get("review")
    if review is not None and not isinstance(review, bool):
        raise PolicyBundleError(
            "review is true or false", file=path, line=line_of(raw, "review"), field="review"
        )
    return _Row(path, line, str(raw["name"]), request, raw["expect"], raw["policy"], review)


def _row_keys(path: Path, raw: dict[str, Any]) -> None:
    missing = _ROW_KEYS - set(raw)
    if missing:
        raise PolicyBundleError(
            f"a row needs {sorted(missing)}", file=path, line=line_of(raw), field=min(missing)
        )
    unknown = set(raw) - _ROW_KEYS - {"review"}
    if unknown:
        name = min(unknown)
        raise PolicyBundleError(
            "not a key of a row", file=path, line=line_of(raw, name), field=name
        )
