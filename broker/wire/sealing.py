"""Sealing and opening the three frames on the wire (see docs/wire-format.md).

ingress  : JWS(sender, IngressClaims{ sealed: JWE(gateway, SealedContent) })
delivery : JWS(gateway, DeliveryClaims{ sealed: JWE(recipient, DeliveredContent) })
receipt  : JWS(gateway, Receipt)

Only `open_*`/`verify_*` turn bytes into trusted objects, and they verify first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from broker.errors import CryptoError
from broker.wire.envelope import (
    Agency,
    DeliveredContent,
    DeliveryClaims,
    Envelope,
    IngressClaims,
    Receipt,
    SealedContent,
)
from broker.wire.jose import (
    KeyWrapper,
    b64u_decode,
    jwe_decrypt,
    jwe_encrypt,
    jws_sign,
    jws_unverified_header,
    jws_verify,
)
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.lean import delivery_claims_json
from broker.wire.origin import verify_origin

TYP_INGRESS = "s284-ingress+jws"
TYP_DELIVERY = "s284-delivery+jws"
TYP_RECEIPT = "s284-receipt+jws"
DELIVERY_PROFILES = (1, 2)  # 1: JWE alg ECDH-ES; 2: ECDH-ES+A256KW (docs/wire-format.md 2.3)


def _dump(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def seal_ingress(
    envelope: Envelope, payload: dict[str, Any], sender: Identity, directory: KeyDirectory
) -> bytes:
    """What an agency system publishes on s284.ingress.<agency>."""
    gateway_enc = directory.encryption_key_for(GATEWAY)
    content = SealedContent(envelope=envelope, payload=payload)
    sealed = jwe_encrypt(
        _dump(content),
        gateway_enc.x25519,
        gateway_enc.kid,
        {"s284_id": envelope.id},
    )
    claims = IngressClaims(
        id=envelope.id, created_at=envelope.created_at, agency=envelope.sender.agency, sealed=sealed
    )
    return jws_sign(_dump(claims), sender.signing, sender.sig_kid, TYP_INGRESS).encode("ascii")


def seal_delivery(
    delivery_id: str,
    to: Agency,
    content: DeliveredContent,
    gateway: Identity,
    directory: KeyDirectory,
    profile: int = 1,
) -> bytes:
    """What the gateway publishes on s284.deliver.<recipient>.<kind>."""
    sealer = DeliverySealer(gateway, directory, profile)
    return sealer.seal(delivery_id, to, content.envelope.id, _dump(content))


class DeliverySealer:
    """Seals one batch's deliveries in the configured JOSE profile.

    Why an object per batch: profile 2 shares one ephemeral agreement per recipient key
    across the batch (`KeyWrapper`), and that state must end with the batch, so the
    gateway makes a sealer per batch and drops it. Profile 1 keeps no state.
    """

    def __init__(self, gateway: Identity, directory: KeyDirectory, profile: int) -> None:
        if profile not in DELIVERY_PROFILES:
            raise ValueError(f"delivery profile {profile!r} is not one of {DELIVERY_PROFILES}")
        self._gateway = gateway
        self._directory = directory
        self._profile = profile
        self._wrappers: dict[str, KeyWrapper] = {}

    def seal(self, delivery_id: str, to: Agency, message_id: str, content: bytes) -> bytes:
        """The delivery frame for content already serialised (broker/wire/lean.py)."""
        recipient_enc = self._directory.encryption_key_for(to.value)
        if self._profile == 1:
            sealed = jwe_encrypt(
                content, recipient_enc.x25519, recipient_enc.kid, {"s284_id": delivery_id}
            )
        else:
            wrapper = self._wrappers.get(recipient_enc.kid)
            if wrapper is None:
                wrapper = KeyWrapper(recipient_enc.x25519, recipient_enc.kid)
                self._wrappers[recipient_enc.kid] = wrapper
            sealed = wrapper.encrypt(content, delivery_id)
        # Every field is made here (the id, the clock, our own JWE): nothing to validate.
        claims = delivery_claims_json(delivery_id, message_id, datetime.now(UTC), to, sealed)
        gateway = self._gateway
        return jws_sign(claims, gateway.signing, gateway.sig_kid, TYP_DELIVERY).encode("ascii")


def seal_delivery_json(
    delivery_id: str,
    to: Agency,
    message_id: str,
    content: bytes,
    gateway: Identity,
    directory: KeyDirectory,
) -> bytes:
    """`seal_delivery` (profile 1) for content already serialised: the same frame."""
    return DeliverySealer(gateway, directory, 1).seal(delivery_id, to, message_id, content)


def with_route_reason(frame: bytes, reason: str, gateway: Identity) -> bytes:
    """The gateway's own delivery `frame` re-signed with `route_reason` (an alert parked at
    the duty inbox tells its reader why); the sealed content is untouched, so no re-sealing.
    Step 6b decides the route after step 8a sealed the frame."""
    body = b64u_decode(frame.decode("ascii").split(".")[1])
    claims = DeliveryClaims.model_validate_json(body).model_copy(update={"route_reason": reason})
    return jws_sign(_dump(claims), gateway.signing, gateway.sig_kid, TYP_DELIVERY).encode("ascii")


def sign_receipt(receipt: Receipt, gateway: Identity) -> bytes:
    return jws_sign(_dump(receipt), gateway.signing, gateway.sig_kid, TYP_RECEIPT).encode("ascii")


def verify_by(
    token: str, directory: KeyDirectory, identity: str, typ: str, *, revoked_ok: bool = False
) -> bytes:
    header = jws_unverified_header(token)
    entry = directory.signing_key(header["kid"], revoked_ok=revoked_ok)
    if entry is None or entry.identity != identity:
        raise CryptoError(f"{typ} not signed by a key of {identity!r}")
    if header.get("typ") != typ:
        raise CryptoError(f"expected a {typ}")
    return jws_verify(token, entry.ed25519)


def verify_receipt(frame: bytes, directory: KeyDirectory) -> Receipt:
    try:
        body = verify_by(frame.decode("ascii"), directory, GATEWAY, TYP_RECEIPT)
        return Receipt.model_validate_json(body)
    except (UnicodeDecodeError, ValidationError) as exc:
        raise CryptoError("receipt is not a valid signed receipt") from exc


@dataclass(frozen=True)
class VerifiedDelivery:
    """A delivery whose gateway signature, decryption and sender signature all held."""

    delivery_id: str
    envelope: Envelope
    payload: dict[str, Any]
    withheld: list[str]
    content: DeliveredContent
    contact: str | None = None  # a routed alert: the designated contact it is for
    route_reason: str | None = None  # parked at the duty inbox: the routing reason code
    provider: str | None = None  # the funded service that signed it (`<funder>/<slug>`)


def open_delivery(frame: bytes, me: Identity, directory: KeyDirectory) -> VerifiedDelivery:
    """Verify the gateway's signature, decrypt, then verify the sender's original signature."""
    try:
        claims = DeliveryClaims.model_validate_json(
            verify_by(frame.decode("ascii"), directory, GATEWAY, TYP_DELIVERY)
        )
        if claims.to.value != me.name:
            raise CryptoError("delivery is addressed to another agency")
        content = DeliveredContent.model_validate_json(jwe_decrypt(claims.sealed, me.encryption))
        env = content.envelope
        # the gateway's signature vouches the sender's key was good when it accepted
        body, provider = verify_origin(
            content.origin, directory, env.sender.agency.value, TYP_INGRESS
        )
        origin = IngressClaims.model_validate_json(body)
    except (UnicodeDecodeError, ValidationError) as exc:
        raise CryptoError("delivery is not a valid sealed delivery") from exc
    if origin.id != env.id or claims.message_id != env.id:
        raise CryptoError("delivery does not match the sender's signed message")
    return VerifiedDelivery(
        claims.delivery_id,
        env,
        content.payload,
        content.withheld,
        content,
        route_reason=claims.route_reason,
        provider=provider,
    )
