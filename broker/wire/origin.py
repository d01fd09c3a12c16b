"""A recipient's check of the sender's own signature (`origin`) on a delivery.

The original ingress frame is signed by the sending agency's key or, for a funded service,
by the provider's own key (`<funder>/<slug>`), whose funder is the envelope's
`sender.agency`. Any other signer is refused: a provider of one agency never passes for
another agency, and a key not in the directory never passes at all.
"""

from __future__ import annotations

from broker.errors import CryptoError
from broker.wire.jose import jws_unverified_header, jws_verify
from broker.wire.keys import KeyDirectory
from broker.wire.providers import provider_of


def verify_origin(
    token: str, directory: KeyDirectory, agency: str, typ: str
) -> tuple[bytes, str | None]:
    """The verified body, and the funded service that signed it (None: the agency itself).
    Revoked keys count: the gateway's signature vouches the key was good when it accepted."""
    header = jws_unverified_header(token)
    entry = directory.signing_key(header["kid"], revoked_ok=True)
    provider = provider_of(entry.identity) if entry is not None else None
    ours = entry is not None and (
        entry.identity == agency or (provider is not None and provider.funder.value == agency)
    )
    if entry is None or not ours:
        raise CryptoError(f"{typ} not signed by a key of {agency!r} or a service it funds")
    if header.get("typ") != typ:
        raise CryptoError(f"expected a {typ}")
    return jws_verify(token, entry.ed25519), provider.identity if provider else None
