"""The HTTP API's one error map (broker/http/errors.py): the status and reason code a client
sees for each error the broker, the log and the routing store raise on purpose."""

from __future__ import annotations

import pytest

from audit import AuditError, InvalidCursorError, ProofError, StoreUnavailableError
from broker.auth import AuthError
from broker.errors import (
    AuditUnavailableError,
    ConfigError,
    CryptoError,
    NotYourAlertError,
    ReasonCode,
    ReceiptTimeoutError,
    Refusal,
    TransportError,
)
from broker.http.errors import INTERNAL_DETAIL, ApiError, answer, error_response, problem
from routing import RoutingError, RoutingUnavailableError


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (AuthError(401, "auth.invalid_token", "bad"), 401, "auth.invalid_token"),
        (AuthError(403, "auth.forbidden", "no"), 403, "auth.forbidden"),
        (ApiError(413, "request.invalid", "too large"), 413, "request.invalid"),
        (NotYourAlertError("al-1", "pol-nwm-017"), 404, "routing.unknown_alert"),
        (Refusal(ReasonCode.POLICY_DENIED, "no permit"), 422, "policy.denied"),
        (RoutingError("routing.unknown_alert", "no alert"), 404, "routing.unknown_alert"),
        (RoutingError("routing.no_table"), 404, "routing.no_table"),
        (RoutingError("routing.already_acknowledged"), 409, "routing.already_acknowledged"),
        (RoutingError("routing.bad_table", "row 3: deupty"), 422, "routing.bad_table"),
        (RoutingError("routing.bad_hours", "start after end"), 422, "routing.bad_hours"),
        (RoutingUnavailableError("down"), 503, "routing.unavailable"),
        (InvalidCursorError("not ours"), 400, "request.bad_cursor"),
        (ProofError("beyond the log"), 400, "audit.no_proof"),
        (StoreUnavailableError("down"), 503, "audit.unavailable"),
        (AuditUnavailableError("OperationalError"), 503, "audit.unavailable"),
        (AuditError("tree node missing"), 503, "audit.error"),
        (TransportError("nats down"), 503, "transport.unavailable"),
        (ReceiptTimeoutError("late"), 504, "transport.timeout"),
    ],
)
def test_each_error_raised_on_purpose_has_one_status_and_code(exc, status, code):
    """Whichever router raises it, a client sees the same status and reason code."""
    found = problem(exc)
    assert found is not None
    assert (found.status, found.code) == (status, code)
    assert found.detail


@pytest.mark.parametrize("exc", [ConfigError("key at /home/x"), CryptoError("jwe"), ValueError()])
def test_anything_else_is_a_500_with_a_fixed_sentence(exc):
    """A bug or a broker fault is 500 internal.error; its message (paths, internals) never
    reaches the caller."""
    found = answer(exc)
    assert (found.status, found.code, found.detail) == (500, "internal.error", INTERNAL_DETAIL)


def test_one_json_shape_and_the_bearer_challenge_on_401():
    """Every error body is exactly {error, detail}; a 401 also says how to authenticate."""
    unauthenticated = error_response(answer(AuthError(401, "auth.missing_token", "send one")))
    assert unauthenticated.body == b'{"error":"auth.missing_token","detail":"send one"}'
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    conflict = error_response(answer(RoutingError("routing.already_acknowledged", "al-1")))
    assert conflict.status_code == 409
    assert "www-authenticate" not in conflict.headers
