"""Server-rendered pages for people (the contacts' inbox, the oversight console): Jinja2
autoescaped, no JavaScript, one stylesheet allowed by its hash in a strict Content Security
Policy, a token kept in an HttpOnly SameSite=Strict cookie scoped to the site's prefix, and
form posts that must come from this origin and carry an HMAC of that cookie (the key lives
only in this process: a restart just asks for the page again)."""

# No `from __future__ import annotations`: FastAPI resolves route annotations at run time.
import base64
import csv
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from broker.auth import AuthError, Principal, Role, TokenVerifier, require_role
from broker.http.contacts import LOCAL_ZONE
from broker.http.errors import ApiError, answer

CODE = re.compile(r"[a-z_]+(\.[a-z_]+)+")
MAX_CODE = 64


@dataclass(frozen=True)
class Flash:
    """The one-line message at the top of a page; `code` a reason code, never free text."""

    text: str
    error: bool
    code: str | None


@dataclass(frozen=True)
class Site:
    """What differs between the sites: where they live, their cookie, title and stylesheet,
    the messages a redirect may name (key -> (sentence, is an error)), extra context."""

    prefix: str
    cookie: str
    title: str
    stylesheet: str
    flashes: Mapping[str, tuple[str, bool]]
    context: Mapping[str, Any]


class Pages:
    """Renders a site's templates with the headers every page carries."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._env = Environment(
            loader=PackageLoader("broker.http", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
        )
        self._env.filters["local"] = local_time
        self._css = (files("broker.http") / "templates" / site.stylesheet).read_text("utf-8")
        digest = base64.b64encode(hashlib.sha256(self._css.encode()).digest()).decode()
        self.headers = {
            "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{digest}'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send Origin: null
            "Cache-Control": "no-store",
        }
        self._csrf_key = secrets.token_bytes(32)

    def render(
        self, name: str, request: Request, status: int = 200, flash: Flash | None = None, **ctx: Any
    ) -> HTMLResponse:
        flash = flash or self.flash(request)
        html = self._env.get_template(name).render(
            css=self._css,
            prefix=self.site.prefix,
            site_title=self.site.title,
            flash=flash,
            **self.site.context,
            **ctx,
        )
        return HTMLResponse(html, status_code=status, headers=self.headers)

    def redirect(self, to: str, **query: str) -> RedirectResponse:
        url = f"{self.site.prefix}{to}" + (f"?{urlencode(query)}" if query else "")
        return RedirectResponse(url, status_code=303, headers=self.headers)

    def csrf(self, token: str) -> str:
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, request: Request, form: Mapping[str, str]) -> None:
        expected = self.csrf(request.cookies.get(self.site.cookie, ""))
        if not hmac.compare_digest(form.get("csrf", ""), expected):
            raise AuthError(403, "auth.bad_csrf", "the form's CSRF token does not match")

    def flash(self, request: Request) -> Flash | None:
        """The message a redirect named (`?flash=key&code=reason.code`); unknown keys and
        codes that are not reason codes are never reflected."""
        key, code = request.query_params.get("flash"), request.query_params.get("code")
        if key is None or key not in self.site.flashes:
            return None
        text, error = self.site.flashes[key]
        ok = code and len(code) <= MAX_CODE and CODE.fullmatch(code)
        return Flash(text, error, code if ok else None)

    def to_login(self, request: Request) -> RedirectResponse:
        """A first visit gets the plain sign-in page; "your session has ended" only when a
        session cookie came and was not (or no longer) good, which is then cleared."""
        if not request.cookies.get(self.site.cookie):
            return self.redirect("/login")
        response = self.redirect("/login", flash="expired")
        response.delete_cookie(self.site.cookie, path=self.site.prefix)
        return response

    def sign_in(self, request: Request, token: str, landing: str = "") -> RedirectResponse:
        response = self.redirect(landing)
        response.set_cookie(
            self.site.cookie,
            token,
            path=self.site.prefix,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def sign_out(self) -> RedirectResponse:
        response = self.redirect("/login", flash="signed_out")
        response.delete_cookie(self.site.cookie, path=self.site.prefix)
        return response


class Session:
    """A site's sign-in: the session cookie's token verified and of a role the site is
    for (else 401, and the error page sends the visitor to the sign-in form), form posts
    checked against CSRF, the sign-in form itself."""

    def __init__(
        self,
        pages: Pages,
        verifier: TokenVerifier,
        roles: frozenset[Role],
        refusal: str,
        login_template: str,
        max_form_bytes: int,
    ) -> None:
        self.pages, self.verifier, self.roles = pages, verifier, roles
        self.refusal, self.login_template, self.max_form = refusal, login_template, max_form_bytes

    def principal(self, request: Request) -> Principal:
        token = request.cookies.get(self.pages.site.cookie)
        if not token:
            raise AuthError(401, "auth.missing_token", "sign in")
        principal = self.verifier.verify(token)
        request.state.principal = principal
        if principal.role not in self.roles:
            raise AuthError(401, "auth.forbidden", self.refusal)
        return principal

    async def signed_in(self, request: Request) -> Principal:
        return await run_in_threadpool(self.principal, request)

    async def posted(self, request: Request) -> tuple[Principal, dict[str, str]]:
        who = await self.signed_in(request)
        form = await read_form(request, self.max_form)
        self.pages.check_csrf(request, form)
        return who, form

    async def login_page(self, request: Request) -> HTMLResponse:
        return self.pages.render(self.login_template, request)

    async def login(
        self, request: Request, landing: Callable[[Principal], str] = lambda _: ""
    ) -> Response:
        """The sign-in form's post: a good token of an allowed role sets the cookie and
        goes to `landing(principal)`; anything else is the form again, saying why."""
        try:
            token = (await read_form(request, self.max_form)).get("token", "").strip()
            principal = await run_in_threadpool(self.verifier.verify, token)
            request.state.principal = principal
            require_role(principal, self.roles)
        except (AuthError, ApiError) as exc:
            found = answer(exc)
            flash = Flash(f"Not signed in: {found.detail}.", error=True, code=found.code)
            return self.pages.render(self.login_template, request, found.status, flash)
        return self.pages.sign_in(request, token, landing(principal))

    async def logout(self, request: Request) -> Response:
        await self.posted(request)
        # Server-side: a copy of the cookie is refused from now on, not just this browser's.
        await run_in_threadpool(self.verifier.revoke, request.cookies[self.pages.site.cookie])
        return self.pages.sign_out()


def local_time(moment: datetime | str) -> str:
    """A moment as people in Victoria read it (`Tue 17 Mar 2026 20:56 AEDT`); the page keeps
    the exact UTC value in a <time datetime> beside it."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(LOCAL_ZONE).strftime("%a %d %b %Y %H:%M %Z")


async def read_form(request: Request, max_bytes: int, max_fields: int = 8) -> dict[str, str]:
    """The url-encoded form of a post, size-capped, from this origin only."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise AuthError(403, "auth.cross_origin", "the form was posted from another site")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, "request.invalid", "the form is too large")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=max_fields))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "request.invalid", "the form cannot be read") from None


def csv_table(
    columns: tuple[str, ...], rows: list[dict[str, Any]], filename: str
) -> PlainTextResponse:
    """A page's table as a CSV download: a text a spreadsheet would run as a formula (a
    leading = + - @) is quoted with ', as in the audit export (broker/http/audit_models.py)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return PlainTextResponse(buffer.getvalue(), media_type="text/csv", headers=headers)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
