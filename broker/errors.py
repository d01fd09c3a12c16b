"""One error hierarchy for the broker; every refusal carries a reason code.

The codes are the machine-readable contract with agency systems and are listed,
with the sentence a person can act on, in docs/reason-codes.md (a test keeps the
two in step).
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why the gateway refused a message. Stable strings: agencies code against them."""

    FRAME_TOO_LARGE = "frame.too_large"
    FRAME_MALFORMED = "frame.malformed"
    FRAME_MSG_ID_MISMATCH = "frame.msg_id_mismatch"
    ENVELOPE_INVALID = "envelope.invalid"
    ENVELOPE_UNKNOWN_KIND = "envelope.unknown_kind"
    ENVELOPE_UNKNOWN_PURPOSE = "envelope.unknown_purpose"
    ENVELOPE_MISMATCH = "envelope.mismatch"
    AUTH_UNKNOWN_KEY = "auth.unknown_key"
    AUTH_KEY_AGENCY_MISMATCH = "auth.key_agency_mismatch"
    AUTH_PROVIDER_MISMATCH = "auth.provider_mismatch"
    AUTH_SERVICE_ROLE = "auth.service_role"
    AUTH_BAD_SIGNATURE = "auth.bad_signature"
    AUTH_KEY_REVOKED = "auth.key_revoked"
    AUTH_KEY_EXPIRED = "auth.key_expired"
    REPLAY_DUPLICATE_ID = "replay.duplicate_id"
    REPLAY_OUTSIDE_WINDOW = "replay.outside_window"
    SEAL_UNDECRYPTABLE = "seal.undecryptable"
    RECIPIENT_UNKNOWN = "recipient.unknown"
    POLICY_DENIED = "policy.denied"
    POLICY_ERROR = "policy.error"
    REQUEST_BAD_DEADLINE = "request.bad_deadline"
    REQUEST_UNKNOWN = "request.unknown"
    REQUEST_WRONG_PARTY = "request.wrong_party"
    INTERNAL_DEAD_LETTER = "internal.dead_letter"


class BrokerError(Exception):
    """Base of every error the broker raises on purpose."""

    exit_code = 1


class ConfigError(BrokerError):
    """The deployment (home, settings, keys, NATS) is missing or inconsistent."""


class TransportError(BrokerError):
    """NATS could not be reached or refused an operation."""


class AuditUnavailableError(BrokerError):
    """The disclosure log could not durably record; nothing may be delivered."""


class LogIntegrityError(BrokerError):
    """A checkpoint of the disclosure log is forged, or does not extend those held: the log
    was forked or rewritten. Tell the broker's operators and the privacy officers."""


class CryptoError(BrokerError):
    """A JOSE object could not be parsed, verified or decrypted."""


class ConfirmationError(CryptoError):
    """A recipient's confirmation of receipt was refused; `code` (a `confirm.*` reason code
    in the disclosure log, docs/audit-format.md) says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class KeyUnusableError(CryptoError):
    """A key in the directory may no longer verify: `code` says why (revoked, expired)."""

    code = ReasonCode.AUTH_UNKNOWN_KEY


class KeyRevokedError(KeyUnusableError):
    """The key was revoked: nothing it signs is accepted any more."""

    code = ReasonCode.AUTH_KEY_REVOKED


class KeyExpiredError(KeyUnusableError):
    """The key was rotated out: it verifies only what was signed before its not_after."""

    code = ReasonCode.AUTH_KEY_EXPIRED


class RegistrationError(BrokerError):
    """An agency's key registration request is malformed or does not prove possession."""


class DirectoryError(BrokerError):
    """A key directory is unsigned, wrongly signed, malformed or older than the one held."""


class Refusal(BrokerError):  # noqa: N818 - a refusal is an outcome, not a crash
    """The gateway refused a message; `code` is machine-readable, `detail` for people."""

    exit_code = 3

    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ReceiptTimeoutError(BrokerError):
    """No receipt arrived from the gateway in time (is the gateway running?)."""


class NotYourAlertError(BrokerError):
    """A designated contact acted on an alert that is not (or no longer) routed to them: it
    was escalated to the deputy or the duty inbox, or was never theirs. Reload the alert
    list; the alert's current holder can act on it.

    `code` is the same as for an alert that does not exist, so the answer reveals nothing
    about other people's alerts.
    """

    code = "routing.unknown_alert"

    def __init__(self, alert_id: str, contact: str) -> None:
        super().__init__(f"{self.code}: alert {alert_id} is not routed to contact {contact}")
        self.alert_id = alert_id
        self.contact = contact
        self.detail = "no alert with that id is routed to you"
