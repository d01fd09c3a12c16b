"""The engine's vocabulary: a request, a decision, and what the gateway needs of an engine."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

DEFAULT_DENY = "default-deny"  # pseudo policy id: no permit matched
ENGINE_ERROR = "engine-error"  # pseudo policy id: the engine could not decide
RESERVED_IDS = frozenset({DEFAULT_DENY, ENGINE_ERROR})


@dataclass(frozen=True)
class PolicyRequest:
    """One disclosure to one recipient agency, as the policies see it.

    The documented request form (policies/README.md) has exactly these fields.
    """

    sender_agency: str
    sender_role: str
    recipient_agency: str
    kind: str
    purpose: str
    order_status: str = "none"
    justification: str | None = None
    consent_reference: str | None = None
    law_reference: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:
        # Evidence is free text a person wrote about an offender: show its length only.
        evidence = ", ".join(
            f"{name}=<{len(value)} chars>"
            for name in ("justification", "consent_reference", "law_reference")
            if (value := getattr(self, name)) is not None
        )
        return (
            f"PolicyRequest({self.sender_agency}/{self.sender_role} -> {self.recipient_agency}, "
            f"{self.kind}, {self.purpose}, order_status={self.order_status}"
            + (f", {evidence})" if evidence else ")")
        )


REQUEST_FIELDS = tuple(f.name for f in fields(PolicyRequest))
REQUIRED_FIELDS = ("sender_agency", "sender_role", "recipient_agency", "kind", "purpose")


@dataclass(frozen=True)
class Decision:
    """The s 284 decision for one request, with the policies that determined it and why.

    `default_deny`: no permit matched. `error`: the engine could not decide, so the
    disclosure is refused (fail closed). `review_required`: the record must be reviewed
    by a privacy officer (every risk_reduction disclosure).
    """

    allowed: bool
    policy_ids: tuple[str, ...]
    reason: str
    default_deny: bool = False
    error: bool = False
    review_required: bool = False

    @property
    def outcome(self) -> str:
        if self.error:
            return "error"
        return "permit" if self.allowed else "deny"

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.outcome,
            "allowed": self.allowed,
            "policy_ids": list(self.policy_ids),
            "reason": self.reason,
            "default_deny": self.default_deny,
            "error": self.error,
            "review_required": self.review_required,
        }


class PolicyEngine(Protocol):
    """What the gateway needs of a policy engine: a version, a decision, minimisation."""

    @property
    def version(self) -> str: ...

    def decide(self, request: PolicyRequest) -> Decision: ...

    def minimise(
        self, payload: dict[str, Any], request: PolicyRequest
    ) -> tuple[dict[str, Any], list[str]]: ...

    def role_services(self) -> dict[str, str]:
        """Each funded service's role and its service type (relevant_persons.yaml)."""
        ...
