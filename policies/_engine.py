"""The Cedar engine: a bundle parsed once, then a decision per request."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
import structlog

from policies._analysis import long_literals
from policies._entities import UNLISTED, disclosure_uid, entities_json, ref, staff_uid
from policies._errors import PolicyBundleError
from policies._memo import DecisionMemo
from policies._model import (
    DEFAULT_DENY,
    ENGINE_ERROR,
    REQUEST_FIELDS,
    REQUIRED_FIELDS,
    Decision,
    PolicyRequest,
)
from policies._rules import REASON_FIELDS, LoadedRules, load_rules
from policies._schema import SCHEMA_FILE, LoadedSchema, Vocabulary, load_schema
from policies._tables import (
    MINIMISATION_FILE,
    PERSONS_FILE,
    MinimisationRule,
    Staff,
    load_minimisation,
    load_persons,
)

DEFAULT_BUNDLE = Path(__file__).parent / "bundle"
_ACTION = ref("Action", "disclose")
_ENUM_FIELDS = ("sender_agency", "recipient_agency", "kind", "purpose", "order_status")

log = structlog.get_logger("s284.policies")


@dataclass(frozen=True)
class _Bundle:
    path: Path
    version: str
    schema: LoadedSchema
    rules: LoadedRules
    staff: tuple[Staff, ...]
    entities: cedarpy.Entities
    minimisation: dict[str, tuple[MinimisationRule, ...]]


def load_bundle(path: Path | None = None) -> CedarPolicyEngine:
    """Parse and validate a policy bundle directory (default: the one shipped here).

    Raises PolicyBundleError naming the file and line (or field) of the first problem.
    """
    root = DEFAULT_BUNDLE if path is None else Path(path)
    if not root.is_dir():
        raise PolicyBundleError("not a policy bundle directory", file=root)
    schema = load_schema(root)
    rules = load_rules(root, schema.cedar)
    staff = load_persons(root, schema.vocabulary)
    try:
        entities = cedarpy.Entities.from_json_str(
            entities_json(staff, schema.vocabulary), schema.cedar
        )
    except ValueError as exc:
        raise PolicyBundleError(
            f"does not fit the schema: {exc}", file=root / PERSONS_FILE
        ) from None
    minimisation = load_minimisation(root, schema.vocabulary)
    version = _version(root, rules.files)
    engine = CedarPolicyEngine(_Bundle(root, version, schema, rules, staff, entities, minimisation))
    engine.probe()
    return engine


def _version(root: Path, policy_files: tuple[Path, ...]) -> str:
    """A content hash of every file that decides (not the test tables or the README)."""
    digest = hashlib.sha256()
    for path in sorted(
        [root / SCHEMA_FILE, root / PERSONS_FILE, root / MINIMISATION_FILE, *policy_files]
    ):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return "s284-" + digest.hexdigest()[:16]


class CedarPolicyEngine:
    """Decides s 284 requests with a pre-parsed Cedar policy set. Make one with load_bundle."""

    def __init__(self, bundle: _Bundle) -> None:
        self._bundle = bundle
        self._order = {policy_id: i for i, policy_id in enumerate(bundle.rules.rules)}
        self._declared = {
            name: frozenset(bundle.schema.vocabulary.for_field(name) or ()) for name in _ENUM_FIELDS
        }
        self._listed = frozenset(staff_uid(s.agency, s.role) for s in bundle.staff)
        self._memo = DecisionMemo()  # this bundle's decisions; a reload makes a new engine
        self._shares: dict[tuple[str, str, str], frozenset[str] | None] = {}
        self._role_services = {s.role: s.service for s in bundle.staff if s.service}

    @property
    def version(self) -> str:
        return self._bundle.version

    @property
    def path(self) -> Path:
        return self._bundle.path

    @property
    def vocabulary(self) -> Vocabulary:
        return self._bundle.schema.vocabulary

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(self._bundle.rules.rules)

    def where(self, policy_id: str) -> str:
        """Where a policy is written and which ground it cites, for people reading a decision."""
        rule = self._bundle.rules.rules.get(policy_id)
        if rule is None:
            return "no permit matched" if policy_id == DEFAULT_DENY else "the engine itself"
        return f"{rule.file.name}:{rule.line}, ground: {rule.ground}"

    # -- deciding ------------------------------------------------------------------------

    def decide(self, request: PolicyRequest) -> Decision:
        """The decision for one request. Never raises: an engine error is a refusal.

        Remembered per full request for this bundle (policies/_memo.py says why it is safe).
        """
        decision = self._memo.get(request)
        if decision is None:
            decision = self.decide_uncached(request)
            self._memo.put(request, decision)
        return decision

    def decide_uncached(self, request: PolicyRequest) -> Decision:
        """Cedar's decision, asked afresh (what the memo remembers)."""
        try:
            undeclared = self.undeclared(request)
            if undeclared is not None:
                return _error(undeclared)
            result = cedarpy.is_authorized(
                self.cedar_request(request), self._bundle.rules.policy_set, self._bundle.entities
            )
        except Exception as exc:  # noqa: BLE001 - fail closed on whatever the engine raises
            log.warning("policy_engine_error", version=self.version, error=type(exc).__name__)
            return _error(f"the policy engine failed ({type(exc).__name__})")
        if result.diagnostics.errors or result.decision not in _DECIDED:
            return _error("; ".join(result.diagnostics.errors) or "no decision")
        return self.decision_from(request, result.diagnostics.reasons, allowed=result.allowed)

    def decision_from(
        self, request: PolicyRequest, satisfied: list[str], *, allowed: bool
    ) -> Decision:
        """The Decision for policies that matched (shared with `diff`, which finds them itself)."""
        ids = tuple(sorted(satisfied, key=self._order.__getitem__))
        if not ids:
            reason = _default_deny_reason(request)
            return Decision(
                allowed=False, policy_ids=(DEFAULT_DENY,), reason=reason, default_deny=True
            )
        rules = [self._bundle.rules.rules[i] for i in ids]
        values = _reason_values(request)
        reason = "; ".join(rule.reason.format_map(values) for rule in rules)
        review = allowed and any(rule.review for rule in rules)
        return Decision(allowed, ids, reason, review_required=review)

    def undeclared(self, request: PolicyRequest) -> str | None:
        """Why the request cannot be decided by this bundle (a value it does not declare)."""
        for name in _ENUM_FIELDS:
            value = getattr(request, name)
            if value not in self._declared[name]:
                return f"{name} {value!r} is not declared in policy bundle {self.version}"
        return None

    def cedar_request(self, request: PolicyRequest) -> dict[str, Any]:
        """The Cedar request for a PolicyRequest whose enumerated fields are declared."""
        sender = staff_uid(request.sender_agency, request.sender_role)
        if sender not in self._listed:
            sender = staff_uid(request.sender_agency, UNLISTED)
        disclosure = disclosure_uid(
            request.recipient_agency, request.kind, request.purpose, request.order_status
        )
        return {
            "principal": ref("Staff", sender),
            "action": _ACTION,
            "resource": ref("Disclosure", disclosure),
            "context": {
                "justification_length": _length(request.justification),
                "has_consent_reference": _length(request.consent_reference) > 0,
                "has_law_reference": _length(request.law_reference) > 0,
            },
        }

    def probe(self) -> None:
        """Check once, against the schema, that the requests this engine builds fit it.

        Decisions then skip per-request schema validation: enumerated values are checked
        against the schema's declarations before Cedar is asked, and the rest is built here.
        """
        v = self.vocabulary
        request = PolicyRequest(
            v.agencies[0], UNLISTED, v.agencies[0], v.kinds[0], v.purposes[0], v.order_statuses[0]
        )
        result = cedarpy.is_authorized(
            self.cedar_request(request),
            self._bundle.rules.policy_set,
            self._bundle.entities,
            schema=self._bundle.schema.cedar,
        )
        if result.diagnostics.errors:
            problems = "; ".join(result.diagnostics.errors)
            raise PolicyBundleError(
                f"the schema does not take the requests the engine sends: {problems}",
                file=self.path / SCHEMA_FILE,
            )

    # -- what `diff` reads to walk the request space ------------------------------------------

    def evaluate(
        self, request: PolicyRequest, policy_set: cedarpy.PolicySet
    ) -> cedarpy.AuthzResult:
        """Cedar's answer for a declared request against some of this bundle's policies."""
        return cedarpy.is_authorized(self.cedar_request(request), policy_set, self._bundle.entities)

    def policy_json(self, policy_id: str) -> dict[str, Any]:
        return dict(self._bundle.rules.ests[policy_id])

    def reviews(self, policy_id: str) -> bool:
        return self._bundle.rules.rules[policy_id].review

    def role_services(self) -> dict[str, str]:
        """Funded services' roles -> service type, worked out once per bundle (the gateway
        asks for every message); callers must not change it."""
        return self._role_services

    def listed_roles(self, agency: str) -> tuple[str, ...]:
        return tuple(s.role for s in self._bundle.staff if s.agency == agency)

    def justification_thresholds(self) -> set[int]:
        return set().union(*(long_literals(est) for est in self._bundle.rules.ests.values()))

    # -- minimising ----------------------------------------------------------------------

    def minimise(
        self, payload: dict[str, Any], request: PolicyRequest
    ) -> tuple[dict[str, Any], list[str]]:
        """The payload the recipient may receive, and the names of the fields withheld."""
        allowed = self._shared_fields(request.recipient_agency, request.kind, request.purpose)
        if allowed is None:
            return _copied(payload), []
        delivered = {k: _copied(v) for k, v in payload.items() if k in allowed}
        return delivered, sorted(k for k in payload if k not in allowed)

    def _shared_fields(self, recipient: str, kind: str, purpose: str) -> frozenset[str] | None:
        """The fields the rules let `recipient` have (None: all), worked out once per triple."""
        key = (recipient, kind, purpose)
        if key not in self._shares:
            allowed: set[str] = set()
            for rule in self._bundle.minimisation.get(recipient, ()):
                if rule.matches(kind, purpose):
                    if rule.fields is None:
                        self._shares[key] = None
                        return None
                    allowed |= rule.fields
            self._shares[key] = frozenset(allowed)
        return self._shares[key]

    # -- the documented request form -----------------------------------------------------

    def parse_request(self, data: object) -> PolicyRequest:
        """A PolicyRequest from the documented JSON form; PolicyBundleError names a bad field."""
        if not isinstance(data, Mapping):
            raise PolicyBundleError("a request is a JSON object", field="(request)")
        for name in data:
            if name not in REQUEST_FIELDS:
                raise PolicyBundleError(
                    f"not a field of the request form ({', '.join(REQUEST_FIELDS)})",
                    field=str(name),
                )
        for name in REQUIRED_FIELDS:
            if not isinstance(data.get(name), str) or not data[name]:
                raise PolicyBundleError("required, a non-empty string", field=name)
        for name in REQUEST_FIELDS:
            self._check_value(name, data.get(name))
        return PolicyRequest(**{k: v for k, v in data.items() if v is not None})

    def _check_value(self, name: str, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise PolicyBundleError("must be a string (or null)", field=name)
        declared = self.vocabulary.for_field(name)
        if declared is not None and value not in declared:
            raise PolicyBundleError(
                f"{value!r} is not declared in the bundle; one of: {', '.join(declared)}",
                field=name,
            )

    def explain(self, data: object) -> Decision:
        return self.decide(self.parse_request(data))


_DECIDED = (cedarpy.Decision.Allow, cedarpy.Decision.Deny)


def _copied(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists, scalars), several times faster than
    `copy.deepcopy`; anything else is left to deepcopy."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return copy.deepcopy(value)


def _length(text: str | None) -> int:
    return len(text.strip()) if text else 0


def _reason_values(request: PolicyRequest) -> dict[str, object]:
    """Only the fields a reason may show: never the free text of the evidence."""
    values: dict[str, object] = {
        name: getattr(request, name) for name in REASON_FIELDS if name != "justification_length"
    }
    values["justification_length"] = _length(request.justification)
    return values


def _default_deny_reason(request: PolicyRequest) -> str:
    return (
        f"no s 284 rule permits disclosing {request.kind} to {request.recipient_agency} "
        f"for {request.purpose} (default deny); policies/README.md lists the kinds each "
        "ground covers"
    )


def _error(detail: str) -> Decision:
    return Decision(
        allowed=False,
        policy_ids=(ENGINE_ERROR,),
        reason=f"the policy engine could not decide, so the disclosure is refused: {detail}",
        error=True,
    )


def explain(request: object, path: Path | None = None) -> Decision:
    """Decide one request in the documented form against a bundle (default: the shipped one)."""
    return load_bundle(path).explain(request)
