"""Confirmations of receipt: what a recipient agency's system publishes once it has durably
taken a delivery, so the disclosure log can say the information arrived, not only that it
was sent (docs/wire-format.md section 3.7).

confirmation : JWS(recipient agency, Confirmation)   on s284.confirm.<agency>

Signed, not sealed: it carries ids and a time, nothing about the offender. Only
`verify_confirmation` turns bytes into a `Confirmation`, and it checks the signature is by
a current key of the agency whose subject it came on and that the delivery was addressed
to that agency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.errors import ConfirmationError, CryptoError
from broker.wire.envelope import SCHEMA_VERSION, Agency, MessageId, Timestamp, delivery_id_for
from broker.wire.jose import jws_sign, jws_unverified_header, jws_verify
from broker.wire.keys import Identity, KeyDirectory

TYP_CONFIRMATION = "s284-confirmation+jws"

MALFORMED = "confirm.malformed"
BAD_SIGNATURE = "confirm.bad_signature"
NOT_ADDRESSED = "confirm.not_addressed"


class Confirmation(BaseModel):
    """A recipient's signed statement: delivery `delivery_id` of message `message_id`,
    addressed to `agency`, was taken by its system at `confirmed_at`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    s284: Literal[1] = SCHEMA_VERSION
    delivery_id: str = Field(max_length=96)
    message_id: MessageId
    agency: Agency
    confirmed_at: Timestamp = Field(default_factory=lambda: datetime.now(UTC))


def sign_confirmation(delivery_id: str, message_id: str, me: Identity) -> bytes:
    """The frame an agency publishes on s284.confirm.<agency>, signed with its key `me`."""
    body = Confirmation(delivery_id=delivery_id, message_id=message_id, agency=Agency(me.name))
    token = jws_sign(body.model_dump_json().encode(), me.signing, me.sig_kid, TYP_CONFIRMATION)
    return token.encode("ascii")


def verify_confirmation(frame: bytes, directory: KeyDirectory, agency: str) -> Confirmation:
    """The confirmation in `frame`, which came on `agency`'s subject; ConfirmationError
    (with its `confirm.*` code) unless every check holds."""
    found = _parsed(_verified_body(_token(frame), directory, agency))
    addressed = delivery_id_for(found.message_id, found.agency)
    if found.agency.value != agency or found.delivery_id != addressed:
        raise ConfirmationError(NOT_ADDRESSED, f"the delivery is not addressed to {agency}")
    return found


def _token(frame: bytes) -> str:
    try:
        token = frame.decode("ascii")
        header = jws_unverified_header(token)
    except (UnicodeDecodeError, CryptoError) as exc:
        raise ConfirmationError(MALFORMED, "not a JWS compact serialization") from exc
    if header.get("typ") != TYP_CONFIRMATION:
        raise ConfirmationError(MALFORMED, f"expected a {TYP_CONFIRMATION}")
    return token


def _verified_body(token: str, directory: KeyDirectory, agency: str) -> bytes:
    """The signed bytes, if a key of `agency` that may sign now signed them."""
    try:
        entry = directory.signing_key(jws_unverified_header(token)["kid"])
        if entry is not None and entry.identity == agency:
            entry.require_valid_at(datetime.now(UTC))
            return jws_verify(token, entry.ed25519)
    except CryptoError as exc:  # revoked, rotated out, or a signature that does not hold
        raise ConfirmationError(BAD_SIGNATURE, str(exc)) from exc
    raise ConfirmationError(BAD_SIGNATURE, f"not signed by a key of {agency}")


def _parsed(body: bytes) -> Confirmation:
    try:
        return Confirmation.model_validate_json(body)
    except ValidationError as exc:
        raise ConfirmationError(MALFORMED, "not a valid confirmation") from exc
