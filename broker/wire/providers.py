"""Funded services as parties: a provider's identity, service type and NATS names.

A funded service (a perpetrator-intervention, housing, disability, AOD or mental health
provider) is a party of its own under the agency that funds it: identity
`<funder>/<slug>` (e.g. `dffh/hearth-housing`), its own keys, registered in the signed
key directory with its service type (`s284_service` in its JWKs), its own NATS account.
Its messages still name the funder as `sender.agency` (the s 284 agency whose funded
service it is); the gateway learns the provider from the key and the subject, never from
the sender's word. Pure: names and parsing only.

Subjects use one token for a provider, `p.<funder>.<slug>`, so no pattern of the
funder's (`s284.receipt.dffh.>`) ever covers a provider's subject:

    s284.ingress.p.dffh.hearth-housing      its ingress (captured by S284_INGRESS_DFFH)
    s284.receipt.p.dffh.hearth-housing.<id> its receipts
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from broker.errors import ConfigError
from broker.wire.envelope import MAP_AGENCIES, Agency

SLUG_PATTERN = r"[a-z0-9][a-z0-9-]{1,39}"
_IDENTITY = re.compile(rf"^({'|'.join(a.value for a in MAP_AGENCIES)})/({SLUG_PATTERN})$")
PROVIDER_TOKEN = "p"  # noqa: S105 - a subject token, not a secret


class ServiceType(StrEnum):
    """The kinds of funded service the DFFH guide names."""

    PERPETRATOR_INTERVENTION = "perpetrator_intervention"
    HOUSING = "housing"
    DISABILITY = "disability"
    AOD = "aod"
    MENTAL_HEALTH = "mental_health"


# The role a provider's system sends in by default (the SDK's), one per service type; each
# is a role with that `service` in policies/bundle/relevant_persons.yaml (a test holds the
# two in step).
SERVICE_ROLES: dict[str, str] = {
    ServiceType.PERPETRATOR_INTERVENTION: "pi_practitioner",
    ServiceType.HOUSING: "housing_provider",
    ServiceType.DISABILITY: "disability_provider",
    ServiceType.AOD: "aod_provider",
    ServiceType.MENTAL_HEALTH: "mental_health_provider",
}


@dataclass(frozen=True, order=True)
class ProviderId:
    """`<funder>/<slug>`: a funded service under the agency that funds it."""

    funder: Agency
    slug: str

    @classmethod
    def parse(cls, identity: str) -> ProviderId:
        found = _IDENTITY.match(identity)
        if found is None:
            raise ConfigError(
                f"{identity!r} is not a provider identity: <funder>/<slug>, the funder one of "
                f"{', '.join(a.value for a in MAP_AGENCIES)}, the slug 2-40 of a-z, 0-9 and '-'"
            )
        return cls(Agency(found.group(1)), found.group(2))

    @property
    def identity(self) -> str:
        """The directory identity (`s284_identity`) of its keys."""
        return f"{self.funder.value}/{self.slug}"

    @property
    def token(self) -> str:
        """Its part of a subject: `p.<funder>.<slug>`."""
        return f"{PROVIDER_TOKEN}.{self.funder.value}.{self.slug}"

    @property
    def user(self) -> str:
        """Its NATS user (and the name of its credentials file): `<funder>_<slug>`."""
        return f"{self.funder.value}_{self.slug}"

    @property
    def account(self) -> str:
        """Its own NATS account, apart from the funder's."""
        return f"P_{self.funder.value.upper()}_{self.slug.upper()}"


def provider_of(identity: str) -> ProviderId | None:
    """The provider an identity names, or None for an agency (or the gateway)."""
    return ProviderId.parse(identity) if _IDENTITY.match(identity) else None


def service_type(value: str) -> ServiceType:
    try:
        return ServiceType(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not a service type: one of {', '.join(s.value for s in ServiceType)}"
        ) from None


def check_binding(identity: str, service: str | None) -> None:
    """A provider identity carries a service type; an agency's never does (ConfigError)."""
    is_provider = provider_of(identity) is not None
    if is_provider and service is None:
        raise ConfigError(f"provider {identity} has no service type (s284_service)")
    if not is_provider and service is not None:
        raise ConfigError(f"{identity} is not a provider identity but names service {service}")
    if service is not None:
        service_type(service)


__all__ = [
    "PROVIDER_TOKEN",
    "SERVICE_ROLES",
    "ProviderId",
    "ServiceType",
    "check_binding",
    "provider_of",
    "service_type",
]
