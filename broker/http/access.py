"""Who may call, and the one logged route class every router uses.

Every request, refused ones included, reaches an access sink with the status it ended
with: the audit and routing APIs write the audit store's access log (`audit_access`), the
contacts' API and inbox log ids and status only (`log_access`). Errors are not answered
here: the JSON routes leave them to the app's handlers (broker/http/errors.py), the web
inbox to its own pages, both with the status the one map gives.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependency's annotations
# at run time.
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from audit import AccessEntry, AuditStore
from broker.auth import AuthError, Principal, Role, TokenVerifier, require_role
from broker.http.errors import Problem, answer, problem

# (request, route path template, final status); called in a worker thread.
AccessSink = Callable[[Request, str, int], None]
# The web inbox's answer to a refused request: a page, not JSON.
ErrorPage = Callable[[Request, Problem], Response]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_BEARER = HTTPBearer(auto_error=False, description="JWT with sub, s284_role, s284_agency")
log = structlog.get_logger("s284.api.alerts")


def bearer_caller(verifier: TokenVerifier, roles: frozenset[Role]) -> Callable[..., Principal]:
    """A FastAPI dependency: the verified caller, if their role is one of `roles`."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Principal:
        if credentials is None:
            raise AuthError(401, "auth.missing_token", "send Authorization: Bearer <token>")
        principal = verifier.verify(credentials.credentials)
        request.state.principal = principal
        require_role(principal, roles)
        return principal

    return dependency


# -- the one logged route class ------------------------------------------------------------


def logged_route(sink: AccessSink, error_page: ErrorPage | None = None) -> type[APIRoute]:
    """Routes whose every request (refused ones too) reaches `sink` with its final status.
    A refusal leaves through the app's JSON handlers, or through `error_page` if given."""

    class AccessLogged(APIRoute):
        def get_route_handler(self) -> Handler:
            return _logged(super().get_route_handler(), self.path, sink, error_page)

    return AccessLogged


def _logged(handler: Handler, path: str, sink: AccessSink, page: ErrorPage | None) -> Handler:
    async def logged(request: Request) -> Response:
        try:
            response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - logged, then answered or re-raised
            return await _refused(request, path, exc, sink, page)
        if isinstance(response, StreamingResponse):  # the count is known once streamed
            status = response.status_code
            response.background = BackgroundTask(sink, request, path, status)
        else:
            await run_in_threadpool(sink, request, path, response.status_code)
        return response

    return logged


async def _refused(
    request: Request, path: str, exc: Exception, sink: AccessSink, page: ErrorPage | None
) -> Response:
    found = problem(exc)
    await run_in_threadpool(sink, request, path, answer(exc).status)
    if found is None or page is None:
        raise exc
    return page(request, found)


# -- the sinks -----------------------------------------------------------------------------


def audit_access(store: AuditStore) -> AccessSink:
    """Into the audit store's access log (the /api/v1/audit/access endpoint reads it);
    raises `StoreUnavailableError` when it cannot record, so the request fails closed."""

    def sink(request: Request, _path: str, status: int) -> None:
        store.record_access(_entry(request, status))

    return sink


def _entry(request: Request, status: int) -> AccessEntry:
    principal: Principal | None = getattr(request.state, "principal", None)
    return AccessEntry(
        subject=principal.subject[:128] if principal else "anonymous",
        role=principal.role.value if principal else "none",
        agency=principal.agency if principal else None,
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        status=status,
        results=getattr(request.state, "results", None),
        at=datetime.now(UTC),
    )


def log_access(request: Request, path: str, status: int) -> None:
    """The contacts' access log: ids, route and status only, never a token or text."""
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
