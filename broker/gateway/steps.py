"""The gateway's pure checks, each a small function that either returns the next, more
trusted object or raises a `Refusal` with a reason code. broker/gateway/pipeline.py lists
the steps in order and wraps these results in its stage records (stages.py).

    1 check_frame       size and shape of the frame, agency from the subject
    2 authenticate      signature by a key bound to that agency (or funded service)
    3 check_replay      message id not seen before; created-at within the window
    3b check_msg_id     the Nats-Msg-Id JetStream de-duplicated on is the signed message id
    4 open_payload      decrypt and validate the envelope
    4b check_service_role  a funded service's role only from its own key (the directory's)
    5 decide            the s 284 decision for every recipient
    5b decide_pushes    subscribers to the offender get updates too, where policy permits
    6 minimise          per recipient, only the fields its purpose needs
    (7 audit, 8 re-seal and publish, 9 ack and receipt: in pipeline.py; they do I/O)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError

from broker.errors import ConfigError, CryptoError, KeyUnusableError, ReasonCode, Refusal
from broker.wire.bounds import DOCUMENT_MAX_DEPTH, check_json
from broker.wire.envelope import Agency, Envelope, IngressClaims, Kind, SealedContent
from broker.wire.jose import jwe_open, jws_unverified_header, jws_verify
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.providers import PROVIDER_TOKEN, ProviderId, provider_of
from broker.wire.sealing import TYP_INGRESS
from policies import Decision, PolicyEngine, PolicyRequest

_INGRESS_PREFIX = "s284.ingress."
_M = TypeVar("_M", IngressClaims, SealedContent)


@dataclass(frozen=True)
class Frame:
    """Step 1's output: a JWS-shaped token that arrived on a known agency's subject (or on
    the subject of a funded service of that agency: `provider`)."""

    agency: Agency
    token: str
    provider: ProviderId | None = None

    @property
    def identity(self) -> str:
        """Whose key must sign what arrived on this subject."""
        return self.provider.identity if self.provider else self.agency.value


def ingress_agency(subject: str) -> Agency:
    """NATS permissions make the subject the authenticated sending agency (for a funded
    service's subject, its funder)."""
    return ingress_party(subject)[0]


def ingress_party(subject: str) -> tuple[Agency, ProviderId | None]:
    """`s284.ingress.<agency>` or `s284.ingress.p.<funder>.<slug>` (ValueError otherwise):
    NATS accounts make the subject the authenticated sender."""
    tokens = subject.removeprefix(_INGRESS_PREFIX).split(".")
    if len(tokens) == 3 and tokens[0] == PROVIDER_TOKEN:  # noqa: PLR2004 - p.<funder>.<slug>
        try:
            provider = ProviderId.parse(f"{tokens[1]}/{tokens[2]}")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return provider.funder, provider
    return Agency(".".join(tokens)), None


def check_frame(
    agency: Agency, data: bytes, max_bytes: int, provider: ProviderId | None = None
) -> Frame:
    if len(data) > max_bytes:
        raise Refusal(
            ReasonCode.FRAME_TOO_LARGE,
            f"the sealed message is {len(data)} bytes; the limit is {max_bytes}",
        )
    try:
        token = data.decode("ascii")
    except UnicodeDecodeError:
        raise Refusal(ReasonCode.FRAME_MALFORMED, "the frame is not a JWS compact token") from None
    if token.count(".") != 2:  # noqa: PLR2004 - JWS compact has three segments
        raise Refusal(ReasonCode.FRAME_MALFORMED, "the frame is not a JWS compact token")
    return Frame(agency, token, provider)


def authenticate(frame: Frame, directory: KeyDirectory) -> IngressClaims:
    try:
        header = jws_unverified_header(frame.token)
    except CryptoError as exc:
        raise Refusal(ReasonCode.FRAME_MALFORMED, f"bad JWS header: {exc}") from None
    try:  # a revoked key, or one rotated out before the message was signed: its own code
        return _authenticated(frame, header, directory)
    except KeyUnusableError as exc:
        raise Refusal(exc.code, str(exc)) from None


def _authenticated(frame: Frame, header: dict[str, Any], directory: KeyDirectory) -> IngressClaims:
    entry = directory.signing_key(header["kid"])
    if entry is None:
        raise Refusal(ReasonCode.AUTH_UNKNOWN_KEY, "the signing key id is not in the directory")
    if entry.identity != frame.identity:
        _mismatch(entry.identity, frame)
    if header.get("typ") != TYP_INGRESS:
        raise Refusal(ReasonCode.FRAME_MALFORMED, f"typ must be {TYP_INGRESS}")
    try:
        body = jws_verify(frame.token, entry.ed25519)
    except CryptoError:
        raise Refusal(ReasonCode.AUTH_BAD_SIGNATURE, "the signature does not verify") from None
    claims = _validated(IngressClaims, body, "the signed claims")
    if claims.agency != frame.agency:
        raise Refusal(ReasonCode.ENVELOPE_MISMATCH, "claims name another agency than the subject")
    entry.require_valid_at(claims.created_at)
    return claims


def _mismatch(owner: str, frame: Frame) -> None:
    """A key used on another party's subject. A funded service's key on its funder's subject,
    the funder's on the service's, or one service's on another's: its own code, so neither
    can ever pass for the other."""
    if frame.provider is None and provider_of(owner) is None:
        raise Refusal(
            ReasonCode.AUTH_KEY_AGENCY_MISMATCH,
            f"the signing key belongs to {owner}, not to {frame.agency.value}",
        )
    raise Refusal(
        ReasonCode.AUTH_PROVIDER_MISMATCH,
        f"the signing key belongs to {owner}, but the subject is {frame.identity}'s: a funded "
        "service signs with its own key on its own subject, its funder with the agency's",
    )


def check_service_role(
    env: Envelope, provider: ProviderId | None, directory: KeyDirectory, services: dict[str, str]
) -> None:
    """A funded service's role (`services`: role -> service type, from the policy bundle)
    may be used only by a provider key of that service type, and a provider sends only in
    a role of its own service: the directory's word on the key, never the sender's."""
    role_service = services.get(env.sender.role)
    held = _service_of(provider, directory)
    if role_service == held:
        return
    who = provider.identity if provider else env.sender.agency.value
    if held is None:
        detail = f"role {env.sender.role} is a {role_service} service's; {who} is no such service"
    else:
        detail = f"{who} is registered as a {held} service; role {env.sender.role} is not one"
    raise Refusal(ReasonCode.AUTH_SERVICE_ROLE, detail)


def _service_of(provider: ProviderId | None, directory: KeyDirectory) -> str | None:
    if provider is None:
        return None
    keys = directory.current(provider.identity, "sig")
    return keys[0].service if keys else None


def check_replay(
    claims: IngressClaims,
    stored_at: datetime,
    stream_seq: int,
    first_seen: int | None,
    window_s: float,
) -> None:
    """`first_seen` is the ingress sequence that first carried this id, if any.

    The same sequence again is a redelivery (e.g. after a crash) and is processed
    again idempotently; another sequence is a replay. The window is measured against
    the time NATS stored the frame, so messages that waited out an outage still pass.
    """
    if abs(claims.created_at - stored_at) > timedelta(seconds=window_s):
        raise Refusal(
            ReasonCode.REPLAY_OUTSIDE_WINDOW,
            f"created_at is more than {int(window_s)} s from the time the broker received it; "
            "check the sending system's clock",
        )
    if first_seen is not None and first_seen != stream_seq:
        raise Refusal(ReasonCode.REPLAY_DUPLICATE_ID, "this message id has already been received")


def check_msg_id(headers: dict[str, str], claims: IngressClaims) -> None:
    """JetStream de-duplicated the frame on its `Nats-Msg-Id`; unless that is the signed id,
    a sender could slip the same message past de-duplication, or pre-empt another id."""
    if headers.get("Nats-Msg-Id") != claims.id:
        raise Refusal(
            ReasonCode.FRAME_MSG_ID_MISMATCH,
            "the Nats-Msg-Id header must equal the signed message id",
        )


def open_payload(claims: IngressClaims, gateway: Identity) -> SealedContent:
    try:
        header, plaintext = jwe_open(claims.sealed, gateway.encryption)
    except CryptoError:
        raise Refusal(
            ReasonCode.SEAL_UNDECRYPTABLE,
            "the payload does not decrypt with the gateway's current key; fetch the directory",
        ) from None
    if header.get("s284_id") != claims.id:
        raise Refusal(ReasonCode.ENVELOPE_MISMATCH, "the sealed payload belongs to another id")
    content = _validated(SealedContent, plaintext, "the envelope")
    env = content.envelope
    if (env.id, env.created_at, env.sender.agency) != (claims.id, claims.created_at, claims.agency):
        raise Refusal(ReasonCode.ENVELOPE_MISMATCH, "the envelope disagrees with the signed claims")
    return content


def _validated(model: type[_M], raw: bytes, what: str) -> _M:
    try:
        check_json(raw, max_bytes=len(raw), max_depth=DOCUMENT_MAX_DEPTH)  # the frame bounds size
    except CryptoError as exc:
        raise Refusal(ReasonCode.FRAME_MALFORMED, f"{what}: {exc}") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _classify(exc, what) from None


def _classify(exc: ValidationError, what: str) -> Refusal:
    """Name the first problem by field (never by value) with the most specific code."""
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = tuple(str(p) for p in first["loc"])
    field = ".".join(loc) or "(document)"
    if loc[:2] == ("envelope", "kind"):
        return Refusal(ReasonCode.ENVELOPE_UNKNOWN_KIND, "kind is not one of the documented kinds")
    if loc[:2] == ("envelope", "purpose"):
        return Refusal(
            ReasonCode.ENVELOPE_UNKNOWN_PURPOSE, "purpose is not one of the eight s 284 grounds"
        )
    if loc[:2] == ("envelope", "recipients") and len(loc) > 2:  # noqa: PLR2004
        return Refusal(ReasonCode.RECIPIENT_UNKNOWN, "a recipient is not a known agency")
    return Refusal(ReasonCode.ENVELOPE_INVALID, f"{what}: {field}: {first['msg']}")


def policy_request(env: Envelope, recipient: Agency) -> PolicyRequest:
    return PolicyRequest(
        sender_agency=env.sender.agency.value,
        sender_role=env.sender.role,
        recipient_agency=recipient.value,
        kind=env.kind.value,
        purpose=env.purpose.value,
        order_status=env.order_status.value,
        justification=env.justification,
        consent_reference=env.consent_reference,
        law_reference=env.law_reference,
    )


class Denied(Refusal):
    """5: the policy refused one recipient: the refusal, with what the policy decided on
    (`request`), its `decision` and the bundle `version`, so the log can record them."""

    def __init__(
        self,
        code: ReasonCode,
        detail: str,
        request: PolicyRequest,
        decision: Decision,
        version: str,
    ) -> None:
        super().__init__(code, detail)
        self.request = request
        self.decision = decision
        self.version = version


def decide(env: Envelope, policy: PolicyEngine) -> dict[Agency, Decision]:
    decisions = {}
    for recipient in env.recipients:
        request = policy_request(env, recipient)
        decision = policy.decide(request)
        if decision.error:
            raise Denied(
                ReasonCode.POLICY_ERROR,
                f"disclosure to {recipient.value}: the policy engine could not decide "
                "(refused, fail closed); tell the broker's operators",
                request,
                decision,
                policy.version,
            )
        if not decision.allowed:
            raise Denied(
                ReasonCode.POLICY_DENIED,
                f"disclosure to {recipient.value}: {decision.reason}",
                request,
                decision,
                policy.version,
            )
        decisions[recipient] = decision
    return decisions


# Updates about an offender that every agency already informed about gets too. Not alerts:
# an alert is meant for a designated contact, and a copy under the sender's topic would
# only park at the other agency's duty inbox.
PUSHED_KINDS = frozenset({Kind.RISK_UPDATE, Kind.ORDER_STATUS, Kind.ORDER_BREACH})


def decide_pushes(
    env: Envelope, subscribers: set[Agency], policy: PolicyEngine
) -> dict[Agency, Decision]:
    """5b: subscribers the sender did not name receive the update where policy permits;
    a subscriber the policy refuses is simply not sent it (the message still goes)."""
    if env.kind not in PUSHED_KINDS:
        return {}
    others = sorted(subscribers - set(env.recipients) - {env.sender.agency})
    decisions = {agency: policy.decide(policy_request(env, agency)) for agency in others}
    return {
        agency: replace(decision, reason=f"pushed to a subscriber: {decision.reason}")
        for agency, decision in decisions.items()
        if decision.allowed and not decision.error
    }


def minimise(
    payload: dict[str, Any], env: Envelope, recipient: Agency, policy: PolicyEngine
) -> tuple[dict[str, Any], list[str]]:
    """Only the fields the recipient's minimisation rule allows; the names of the rest."""
    return policy.minimise(payload, policy_request(env, recipient))
