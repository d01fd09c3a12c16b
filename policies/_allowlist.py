from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Protocol

MIN_JUSTIFICATION = 20

# kind -> purposes under which that kind of information may be disclosed at all.
# A deliberately small, reviewable table; anything not listed is refused (default deny).
PERMITTED: dict[str, tuple[str, ...]] = {
    "risk.update": (
        "offender_management",
        "risk_reduction",
        "reports",
        "order_application",
        "authorised_by_law",
        "consent",
    ),
    "risk.alert": ("risk_reduction", "offender_management"),
    "service.progress": ("csp_service_delivery", "offender_management", "reports", "consent"),
    "service.referral": ("csp_service_delivery", "csp_preparation", "consent"),
    "csp.update": ("csp_preparation", "csp_service_delivery"),
    "order.status": ("offender_management", "order_application", "authorised_by_law"),
    "order.breach": ("offender_management", "order_application", "risk_reduction"),
    "needs.notification": ("offender_management", "csp_service_delivery", "risk_reduction"),
    "concern.report": ("risk_reduction", "offender_management"),
}
AGENCIES = ("police", "corrections", "dffh", "health")


@dataclass(frozen=True)
class PolicyRequest:
    sender_agency: str
    sender_role: str
    recipient_agency: str
    kind: str
    purpose: str
    justification: str | None = None
    consent_reference: str | None = None
    law_reference: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]
    reason: str


class PolicyEngine(Protocol):
    """What the gateway needs of a policy engine: a version and a decision."""

    @property
    def version(self) -> str: ...

    def decide(self, request: PolicyRequest) -> Decision: ...


def _deny(policy_id: str, reason: str) -> Decision:
    return Decision(allowed=False, policy_ids=(policy_id,), reason=reason)


class AllowListPolicy:
    """kind x purpose allow-list plus the evidence each ground needs; default deny."""

    def __init__(self, permitted: dict[str, tuple[str, ...]] | None = None) -> None:
        self._permitted = permitted if permitted is not None else PERMITTED
        canonical = json.dumps(self._permitted, sort_keys=True).encode()
        self._version = "allowlist-" + hashlib.sha256(canonical).hexdigest()[:16]

    @property
    def version(self) -> str:
        return self._version

    def decide(self, request: PolicyRequest) -> Decision:
        if request.recipient_agency not in AGENCIES or request.sender_agency not in AGENCIES:
            return _deny("relevant-person", "only MAP member agencies may disclose or receive")
        missing = self._missing_evidence(request)
        if missing is not None:
            return missing
        if request.purpose not in self._permitted.get(request.kind, ()):
            return _deny(
                "default-deny",
                f"no rule permits {request.kind} for purpose {request.purpose} (default deny)",
            )
        return Decision(
            allowed=True,
            policy_ids=(f"permit:{request.kind}:{request.purpose}",),
            reason=f"{request.kind} may be disclosed for {request.purpose}",
        )

    @staticmethod
    def _missing_evidence(request: PolicyRequest) -> Decision | None:
        if request.purpose == "risk_reduction" and (
            len((request.justification or "").strip()) < MIN_JUSTIFICATION
        ):
            return _deny(
                "risk-reduction-justification",
                "risk_reduction needs a written justification of the reasonable grounds "
                f"(at least {MIN_JUSTIFICATION} characters)",
            )
        if request.purpose == "consent" and not request.consent_reference:
            return _deny("consent-reference", "consent needs a consent reference")
        if request.purpose == "authorised_by_law" and not request.law_reference:
            return _deny("law-reference", "authorised_by_law needs the citation of the other law")
        return None
