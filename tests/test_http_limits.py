"""An anonymous or misbehaving client against the HTTP API: oversized bodies are refused
before authentication, crafted cursors are a 400, over-long tokens and tokens of no agency
are refused, and signing out of the web inbox revokes the session everywhere."""

from __future__ import annotations

import base64
import json
import re
import time

import httpx
import jwt
import pytest

from audit import AccessFilters, access_log
from broker.auth import AuthConfig, LocalIssuer, Role, TokenVerifier
from broker.http.app import ApiDeps, create_app
from broker.http.limits import BodyLimit
from tests.test_api_alerts import RecordingActions, make_env

AUDIT = "/api/v1/audit"
MIB = 1 << 20


@pytest.fixture
def env(tmp_path):
    e = make_env(tmp_path)
    yield e
    e.store.close()
    e.audit.close()


@pytest.fixture
async def client(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the body cap ------------------------------------------------------------------------


async def test_a_declared_oversized_body_is_refused_before_authentication(client):
    """A 2 MiB JSON body without any token: 413 in the API's error shape, not 401."""
    r = await client.post(f"{AUDIT}/reviews/x", content=b"{" + b" " * (2 * MIB) + b"}")
    assert r.status_code == 413
    assert r.json() == {
        "error": "request.too_large",
        "detail": f"the request body is over {MIB} bytes",
    }


async def test_a_streamed_oversized_body_is_cut_off_unread(env):
    """A chunked body with no Content-Length is counted as it arrives: the application
    reads no more than the cap (plus one chunk) and the answer is the 413."""
    read = 0

    async def counting_app(scope, receive, send):
        nonlocal read
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"unauthenticated"})

    chunk = b"x" * 65536

    async def chunks():
        for _ in range(64):  # 4 MiB in all
            yield chunk

    transport = httpx.ASGITransport(app=BodyLimit(counting_app, MIB))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/anything", content=chunks())
    assert r.status_code == 413
    assert r.json()["error"] == "request.too_large"
    assert read <= MIB + len(chunk), f"the application read {read} bytes"


async def test_a_body_under_the_cap_reaches_the_route(env, client):
    """The cap refuses nothing ordinary: a small body still meets authentication (401)."""
    r = await client.post(f"{AUDIT}/reviews/x", json={"outcome": "ok"})
    assert (r.status_code, r.json()["error"]) == (401, "auth.missing_token")


# -- cursors -----------------------------------------------------------------------------


def _cursor(payload: object) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CURSORS = {
    "huge seq": _cursor({"t": "2026-01-01T00:00:00.000000Z", "seq": 10**30}),
    "huge access id": _cursor({"access": 10**30}),
    "deeply nested": _cursor(b"[" * 20_000 + b"]" * 20_000),
    "nested small": _cursor({"seq": [[[[1]]]], "access": {"a": {"b": 1}}}),
    "garbage": "%%%not-a-cursor%%%",
    "negative": _cursor({"access": -1}),
}


@pytest.mark.parametrize("name", sorted(CURSORS))
@pytest.mark.parametrize("path", ["/records", "/access"])
async def test_a_crafted_cursor_is_a_400(env, client, name, path):
    """Whatever is passed as `cursor`, the answer is 400 request.bad_cursor, never a 500."""
    token = env.token("aud-1", None, Role.AUDITOR) if path == "/records" else None
    token = token or env.token("adm-1", None, Role.ADMIN)
    r = await client.get(f"{AUDIT}{path}", params={"cursor": CURSORS[name]}, headers=_bearer(token))
    assert (r.status_code, r.json()["error"]) == (400, "request.bad_cursor"), r.text


# -- tokens ------------------------------------------------------------------------------


def _signed(issuer: LocalIssuer, config: AuthConfig, **claims: object) -> str:
    key = jwt.PyJWKSet.from_json(issuer.private_path.read_text()).keys[0]
    now = int(time.time())
    body = {"iss": config.issuer, "aud": config.audience, "sub": "pol-1", "iat": now}
    body |= {"exp": now + 600, "s284_role": "contact", "s284_agency": "police", **claims}
    return jwt.encode(body, key.key, algorithm="EdDSA", headers={"kid": key.key_id})


async def test_a_ten_year_token_is_refused(env, client):
    """A token whose exp is ten years after its iat is refused, however well signed."""
    now = int(time.time())
    token = _signed(env.issuer, env.config, exp=now + 10 * 365 * 86400, s284_role="auditor")
    r = await client.get(f"{AUDIT}/records", headers=_bearer(token))
    assert (r.status_code, r.json()["error"]) == (401, "auth.token_lifetime")
    ok = _signed(env.issuer, env.config, exp=now + 12 * 3600, s284_role="auditor")
    assert (await client.get(f"{AUDIT}/records", headers=_bearer(ok))).status_code == 200


async def test_a_token_of_no_known_agency_is_refused(env, client):
    """`s284_agency` must be one of the four agencies."""
    token = _signed(env.issuer, env.config, s284_role="privacy_officer", s284_agency="mi6")
    r = await client.get(f"{AUDIT}/records", headers=_bearer(token))
    assert (r.status_code, r.json()["error"]) == (401, "auth.invalid_token")
    assert "not a known agency" in r.json()["detail"]


def test_the_lifetime_bound_is_configured(env, monkeypatch, tmp_path):
    """S284_AUTH_MAX_LIFETIME_S sets the bound; a bad value is a one-line config error."""
    monkeypatch.setenv("S284_AUTH_MAX_LIFETIME_S", "3600")
    config = AuthConfig.from_env_and_home(tmp_path / "home")
    assert config.max_lifetime_s == 3600
    monkeypatch.setenv("S284_AUTH_MAX_LIFETIME_S", "forever")
    with pytest.raises(Exception, match="S284_AUTH_MAX_LIFETIME_S must be a positive number"):
        AuthConfig.from_env_and_home(tmp_path / "home")


# -- sign-out ----------------------------------------------------------------------------


async def test_signing_out_revokes_the_session_everywhere(tmp_path):
    """After sign-out, a copy of the session's token is refused by the inbox, by the API,
    and by another process reading the same home (the revocation is persisted)."""
    home = tmp_path / "home"
    issuer = LocalIssuer.for_home(home)
    issuer.ensure()
    revoked = home / "revoked-tokens.json"
    config = AuthConfig("s284-local", "s284-audit", str(issuer.public_path), revocations=revoked)
    env = make_env(tmp_path)
    app = create_app({}, ApiDeps(env.audit, config, env.store, RecordingActions(env.store)))
    token = issuer.issue(config, "pol-nwm-017", Role.CONTACT, "police", 600)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            assert (await c.post("/inbox/login", data={"token": token})).status_code == 303
            page = (await c.get("/inbox")).text
            csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
            assert csrf is not None
            assert (await c.post("/inbox/logout", data={"csrf": csrf[1]})).status_code == 303
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as thief:
            thief.cookies.set("s284_inbox", token, path="/inbox")
            r = await thief.get("/inbox")
            assert r.status_code == 303  # back to the sign-in page
            r = await thief.post("/inbox/login", data={"token": token})
            assert "revoked" in r.text
            r = await thief.get("/api/v1/alerts", headers=_bearer(token))
            assert (r.status_code, r.json()["error"]) == (401, "auth.revoked_token")
        assert revoked.stat().st_mode & 0o077 == 0
        with pytest.raises(Exception, match="revoked"):
            TokenVerifier(config).verify(token)  # another process, same home
    finally:
        env.store.close()
        env.audit.close()


# -- the access log ----------------------------------------------------------------------


async def test_an_anonymous_request_is_logged_with_a_bounded_query(env, client):
    """A refused anonymous request is in the access log, its query cut to 512 characters."""
    r = await client.get(f"{AUDIT}/records", params={"q": "x" * 50_000})
    assert r.status_code == 401
    rows = access_log(env.audit, AccessFilters(subject="anonymous")).rows
    assert [(row["status"], len(row["query"])) for row in rows] == [(401, 512)]
