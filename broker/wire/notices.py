"""Notices: what the broker tells a managing officer about a routed alert (acknowledged,
escalated, answered by the designated contact) and what it tells the Serious Offenders
Coordination Team about CSP review dates.

notice : JWS(gateway, NoticeClaims{ sealed: JWE(recipient agency, NoticeContent) })

on `s284.notice.<agency>.<notice id>`; the SDK reads them with `AgencyClient.notices()`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.errors import CryptoError
from broker.wire.envelope import Agency
from broker.wire.jose import jwe_decrypt, jwe_encrypt, jws_sign
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.sealing import verify_by

TYP_NOTICE = "s284-notice+jws"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NoticeEvent = Literal["acknowledged", "escalated", "reply", "csp_review_due"]


class NoticeContent(_Strict):
    """The plaintext of a notice, sealed to the agency it is for."""

    event: NoticeEvent
    alert_id: str | None = None
    message_id: str | None = None  # the alert's original message (its correlation id)
    offender: str | None = None
    agency: str | None = None  # the contact's agency
    contact: str | None = None  # the designated contact's id (never a name)
    level: int | None = None  # 1 deputy, 2 duty inbox (escalated)
    text: str | None = None  # the contact's reply (minimised by the s 284 policy)
    csp_id: str | None = None
    due: str | None = None  # ISO date (csp_review_due)
    milestone: str | None = None
    officer: str | None = None  # the managing officer it is for; "duty": the duty inbox
    route_reason: str | None = None  # why a duty inbox (no managing officer on record)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class NoticeClaims(_Strict):
    notice_id: str
    to: Agency
    sealed: str


def seal_notice(
    notice_id: str, to: Agency, content: NoticeContent, gateway: Identity, directory: KeyDirectory
) -> bytes:
    enc = directory.encryption_key_for(to.value)
    sealed = jwe_encrypt(
        content.model_dump_json().encode(), enc.x25519, enc.kid, {"s284_id": notice_id}
    )
    claims = NoticeClaims(notice_id=notice_id, to=to, sealed=sealed)
    return jws_sign(
        claims.model_dump_json().encode(), gateway.signing, gateway.sig_kid, TYP_NOTICE
    ).encode("ascii")


def open_notice(frame: bytes, me: Identity, directory: KeyDirectory) -> NoticeContent:
    """Verify the gateway's signature, check the addressee, decrypt."""
    try:
        claims = NoticeClaims.model_validate_json(
            verify_by(frame.decode("ascii"), directory, GATEWAY, TYP_NOTICE)
        )
        if claims.to.value != me.name:
            raise CryptoError("notice is addressed to another agency")
        return NoticeContent.model_validate_json(jwe_decrypt(claims.sealed, me.encryption))
    except (UnicodeDecodeError, ValidationError) as exc:
        raise CryptoError("not a valid sealed notice") from exc
