"""The HTTP API's one error -> status mapping, and the one JSON error shape.

Every error a route raises on purpose leaves as `{"error": code, "detail": sentence}` with
the status `problem` gives it: the JSON routes through the handlers `install` registers on
the app, the web inbox through its own HTML pages (broker/http/inbox.py), both from this
one map. Anything else is a 500 with a fixed sentence; the traceback goes to the server's
log, never to the caller.
"""

from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from audit import AuditError, InvalidCursorError, ProofError, StoreUnavailableError
from broker.auth import AuthError
from broker.errors import (
    AuditUnavailableError,
    BrokerError,
    NotYourAlertError,
    ReceiptTimeoutError,
    Refusal,
    TransportError,
)
from routing import RoutingError

INTERNAL = "internal.error"
INTERNAL_DETAIL = "the broker could not answer this request; its operators have the details"

# Routing reasons by status; any other reason is a table or request to fix (422).
ROUTING_STATUS = {
    "routing.unknown_alert": 404,
    "routing.no_table": 404,
    "routing.unknown_version": 404,
    "routing.already_acknowledged": 409,
    "routing.duplicate_alert_id": 409,
    "routing.unavailable": 503,
    "routing.corrupt": 500,
}


class ApiError(BrokerError):
    """A refusal only the HTTP layer knows (no such record visible to you, a form too
    large, a record not marked for review): it names its own status."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Problem:
    """How one error leaves the API: status, stable reason code, a sentence for people."""

    status: int
    code: str
    detail: str


def problem(exc: Exception) -> Problem | None:
    """The status, code and detail of an error raised on purpose; None for anything else
    (a bug: the caller sees a 500 with `INTERNAL_DETAIL`)."""
    if isinstance(exc, ApiError | AuthError):
        return Problem(exc.status, exc.code, exc.detail)
    if isinstance(exc, NotYourAlertError):
        return Problem(404, exc.code, exc.detail)
    if isinstance(exc, Refusal):
        return Problem(422, exc.code.value, exc.detail)
    if isinstance(exc, RoutingError):
        return Problem(ROUTING_STATUS.get(exc.reason, 422), exc.reason, exc.detail or exc.reason)
    if isinstance(exc, RequestValidationError):
        return _invalid_request(exc)
    return _by_class(exc)


def _invalid_request(exc: RequestValidationError) -> Problem:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return Problem(422, "request.invalid", f"{where}: {first.get('msg', 'invalid')}")


_RETRY = "retry later"
# Errors without fields of their own: (class, status, code, detail; None: the message).
# First match wins, so children come before their parents.
_BY_CLASS: tuple[tuple[type[Exception], int, str, str | None], ...] = (
    (InvalidCursorError, 400, "request.bad_cursor", None),
    (ProofError, 400, "audit.no_proof", None),
    (StoreUnavailableError, 503, "audit.unavailable", None),
    (AuditUnavailableError, 503, "audit.unavailable", f"the disclosure log is down; {_RETRY}"),
    (AuditError, 503, "audit.error", None),
    (TransportError, 503, "transport.unavailable", f"NATS cannot be reached; {_RETRY}"),
    (ReceiptTimeoutError, 504, "transport.timeout", f"no answer in time; {_RETRY}"),
    (BrokerError, 500, INTERNAL, INTERNAL_DETAIL),
)


def _by_class(exc: Exception) -> Problem | None:
    for kind, status, code, detail in _BY_CLASS:
        if isinstance(exc, kind):
            return Problem(status, code, detail or str(exc))
    return None


def answer(exc: Exception) -> Problem:
    """How a request that raised `exc` ends: its `problem`, or the fixed 500."""
    return problem(exc) or Problem(500, INTERNAL, INTERNAL_DETAIL)


def error_response(found: Problem) -> JSONResponse:
    """The one JSON error shape; a 401 carries the Bearer challenge."""
    headers = {"WWW-Authenticate": "Bearer"} if found.status == 401 else None  # noqa: PLR2004
    body = {"error": found.code, "detail": found.detail}
    return JSONResponse(body, status_code=found.status, headers=headers)


async def _answer(_request: Request, exc: Exception) -> Response:
    return error_response(answer(exc))


def install(app: FastAPI) -> None:
    """Register the map on `app` (once, in `create_app`). The `Exception` handler runs in
    Starlette's outermost middleware, which re-raises for the server's log after answering."""
    for kind in (BrokerError, AuditError, RoutingError, RequestValidationError, Exception):
        app.add_exception_handler(kind, _answer)
