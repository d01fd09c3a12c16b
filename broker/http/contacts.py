"""What the designated contacts' JSON API and web inbox share: the error mapping, the access
log (ids and status only), and the rule that a contact sees only alerts routed to them."""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from broker.auth import AuthError, Principal, Role
from broker.errors import Refusal
from broker.http.audit import ApiError
from routing import Alert, RoutingError, RoutingStore

PREFIX = "/api/v1/alerts"
INBOX = "/inbox"
COOKIE = "s284_inbox"
MAX_REPLY = 2000
MAX_FORM_BYTES = 16 * 1024
LOCAL_ZONE = ZoneInfo("Australia/Melbourne")
CONTACTS = frozenset({Role.CONTACT})
NOT_FOUND = frozenset({"routing.unknown_alert"})
MAPPED = (AuthError, ApiError, RoutingError, Refusal, RequestValidationError)

log = structlog.get_logger("s284.api.alerts")


# -- the one error mapping and the access log ---------------------------------------------


def problem(exc: Exception) -> tuple[int, str, str]:
    """(status, code, detail) of every error these routes raise on purpose."""
    if isinstance(exc, AuthError | ApiError):
        return exc.status, exc.code, exc.detail
    if isinstance(exc, RoutingError):
        status = 404 if exc.reason in NOT_FOUND else 409
        return status, exc.reason, exc.detail or exc.reason
    if isinstance(exc, Refusal):
        return 422, exc.code.value, exc.detail
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return 422, "request.invalid", f"{where}: {first.get('msg', 'invalid')}"
    raise exc


def logged_route(to_response: Callable[[Request, Exception], Response]) -> type[APIRoute]:
    class Logged(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler, path = super().get_route_handler(), self.path

            async def logged(request: Request) -> Response:
                try:
                    response = await handler(request)
                except MAPPED as exc:
                    response = to_response(request, exc)
                except Exception:
                    access(request, path, 500)
                    raise
                access(request, path, response.status_code)
                return response

            return logged

    return Logged


def access(request: Request, path: str, status: int) -> None:
    who: Principal | None = getattr(request.state, "principal", None)
    log.info(
        "alerts.access",
        subject=who.subject[:128] if who else "anonymous",
        agency=who.agency if who else None,
        method=request.method,
        route=path,
        alert_id=request.path_params.get("alert_id"),
        status=status,
    )


# -- shared between the API and the inbox ------------------------------------------------


def overdue(alert: Alert, now: datetime) -> bool:
    return alert.acknowledged_at is None and alert.deadline is not None and alert.deadline < now


async def own_alerts(store: RoutingStore, who: Principal) -> list[Alert]:
    alerts = await run_in_threadpool(store.open_alerts, who.agency or "", who.subject)
    return sorted(alerts, key=lambda a: a.created_at, reverse=True)


async def check_own(store: RoutingStore, who: Principal, alert_id: str) -> None:
    alert = await run_in_threadpool(store.alert, alert_id)
    if alert is None or (alert.agency, alert.contact_id) != (who.agency, who.subject):
        raise RoutingError("routing.unknown_alert", "no alert with that id is routed to you")
