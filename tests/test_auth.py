"""Bearer-token authentication of the audit API, the local issuer and `s284 token`."""

from __future__ import annotations

import asyncio
import json
import stat
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from audit import AuditStore
from broker.auth import AuthConfig, AuthError, LocalIssuer, Role, TokenVerifier
from broker.home import Home
from broker.http.app import ApiDeps, create_app
from broker.runtime import _QuietServer
from broker.wire.jose import thumbprint
from tests.conftest import free_port

BASE = "/api/v1/audit"


@pytest.fixture
def issuer(tmp_path):
    local = LocalIssuer.for_home(tmp_path / "home")
    local.ensure()
    return local


@pytest.fixture
def config(issuer):
    return AuthConfig("s284-local", "s284-audit", str(issuer.public_path))


def _forge(claims: dict, key=None, alg: str = "EdDSA", kid: str | None = None) -> str:
    key = key or Ed25519PrivateKey.generate()
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


def _claims(**over) -> dict:
    now = int(time.time())
    base = {
        "iss": "s284-local",
        "aud": "s284-audit",
        "sub": "A. Officer",
        "iat": now,
        "exp": now + 600,
        "s284_role": "privacy_officer",
        "s284_agency": "health",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _local_key(issuer: LocalIssuer):
    return jwt.PyJWKSet.from_json(issuer.private_path.read_text()).keys[0]


def test_local_issuer_keeps_its_private_key_owner_only(issuer):
    """The home's token-issuer private key is a 0600 file; the public JWKS has no secret
    and is rebuilt if lost."""
    mode = stat.S_IMODE(issuer.private_path.stat().st_mode)
    assert mode == 0o600
    public = json.loads(issuer.public_path.read_text())["keys"][0]
    assert "d" not in public
    assert public["alg"] == "EdDSA"
    assert public["kid"]
    issuer.public_path.unlink()  # a lost public JWKS is rebuilt from the private key
    issuer.ensure()
    assert json.loads(issuer.public_path.read_text())["keys"][0] == public


def test_config_reads_the_environment_with_local_defaults(tmp_path, monkeypatch):
    """Without settings the API trusts the home's local issuer; S284_AUTH_* override it."""
    for name in ("S284_AUTH_ISSUER", "S284_AUTH_AUDIENCE", "S284_AUTH_JWKS"):
        monkeypatch.delenv(name, raising=False)
    default = AuthConfig.from_env_and_home(tmp_path)
    assert default.issuer == "s284-local"
    assert default.audience == "s284-audit"
    assert default.jwks == str(tmp_path / "keys" / "token-issuer.jwks.json")
    monkeypatch.setenv("S284_AUTH_ISSUER", "https://idp.example.gov.au")
    monkeypatch.setenv("S284_AUTH_JWKS", "https://idp.example.gov.au/jwks")
    custom = AuthConfig.from_env_and_home(tmp_path)
    assert custom.issuer == "https://idp.example.gov.au"
    assert custom.jwks_is_url
    monkeypatch.setenv("S284_AUTH_JWKS", "http://idp.example.gov.au/jwks")
    with pytest.raises(AuthError, match="https"):
        TokenVerifier(AuthConfig.from_env_and_home(tmp_path))


def test_a_local_token_verifies_to_its_principal(issuer, config):
    """A token from the local issuer names who is asking, their role and agency."""
    token = issuer.issue(config, "A. Officer", Role.PRIVACY_OFFICER, "health", 60)
    principal = TokenVerifier(config).verify(token)
    assert (principal.subject, principal.role, principal.agency) == (
        "A. Officer",
        Role.PRIVACY_OFFICER,
        "health",
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "auth.expired_token"),
        ("wrong_audience", "auth.invalid_token"),
        ("wrong_issuer", "auth.invalid_token"),
        ("unknown_key", "auth.invalid_token"),
        ("hs256", "auth.invalid_token"),
        ("alg_none", "auth.invalid_token"),
        ("no_role", "auth.invalid_token"),
        ("officer_without_agency", "auth.invalid_token"),
        ("garbage", "auth.invalid_token"),
    ],
)
def test_bad_tokens_are_refused_with_401(issuer, config, case, code):
    """Expired, wrong-audience, wrong-issuer, foreign-key, HMAC, unsigned, role-less and
    agency-less tokens are all refused as unauthenticated (401)."""
    key = _local_key(issuer)
    tokens = {
        "expired": lambda: _forge(_claims(exp=int(time.time()) - 120), key.key, kid=key.key_id),
        "wrong_audience": lambda: _forge(_claims(aud="other-api"), key.key, kid=key.key_id),
        "wrong_issuer": lambda: _forge(_claims(iss="evil"), key.key, kid=key.key_id),
        "unknown_key": lambda: _forge(_claims(), kid="not-published"),
        "hs256": lambda: jwt.encode(
            _claims(), "s" * 32, algorithm="HS256", headers={"kid": key.key_id}
        ),
        "alg_none": lambda: jwt.encode(_claims(), None, algorithm="none"),
        "no_role": lambda: _forge(_claims(s284_role=None), key.key, kid=key.key_id),
        "officer_without_agency": lambda: _forge(
            _claims(s284_agency=None), key.key, kid=key.key_id
        ),
        "garbage": lambda: "not.a.jwt",
    }
    with pytest.raises(AuthError) as caught:
        TokenVerifier(config).verify(tokens[case]())
    assert caught.value.status == 401
    assert caught.value.code == code


def test_es256_keys_from_an_external_issuer_are_accepted(tmp_path):
    """An agency's own identity provider (here ES256, JWKS file) can issue the tokens."""
    key = generate_private_key(SECP256R1())
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = tmp_path / "idp.jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "idp-1", "alg": "ES256"}]}))
    config = AuthConfig("https://idp.example", "s284-audit", str(jwks))
    token = _forge(_claims(iss="https://idp.example"), key, alg="ES256", kid="idp-1")
    assert TokenVerifier(config).verify(token).agency == "health"
    # the same key claimed as EdDSA does not verify
    eddsa = _forge(_claims(iss="https://idp.example"), kid="idp-1")
    with pytest.raises(AuthError):
        TokenVerifier(config).verify(eddsa)


def test_errors_never_echo_the_token(issuer, config):
    """A refused token does not appear in the error a client or a log would see."""
    token = _forge(
        _claims(aud="x"),
        _local_key(issuer).key,
        kid=thumbprint(Ed25519PrivateKey.generate().public_key()),
    )
    with pytest.raises(AuthError) as caught:
        TokenVerifier(config).verify(token)
    assert token not in str(caught.value)
    assert token.split(".")[1] not in caught.value.detail


async def _serve(app: FastAPI, port: int) -> tuple[_QuietServer, asyncio.Task[None]]:
    import uvicorn

    server = _QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task


async def test_s284_token_output_is_accepted_by_the_api_over_a_real_socket(tmp_path, cli):
    """`s284 token` prints a token on its last line; the API served by uvicorn on a loopback
    port accepts it, refuses a wrong role (403), and refuses no token or a bad one (401)."""
    home = tmp_path / "home"
    Home(home).init(free_port())  # `s284 token` refuses a folder that is not a deployment
    result = await asyncio.to_thread(
        cli,
        "token",
        "--home",
        str(home),
        "--role",
        "privacy_officer",
        "--agency",
        "health",
        "--subject",
        "A. Officer",
        "--ttl",
        "600",
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert "A. Officer" in result.stderr
    contact = (
        cli(
            "token",
            "--home",
            str(home),
            "--role",
            "contact",
            "--agency",
            "police",
            "--subject",
            "D. Contact",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    app = create_app({}, ApiDeps(audit=store, auth=AuthConfig.from_env_and_home(home)))
    port = free_port()
    server, task = await _serve(app, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            ok = await http.get(f"{BASE}/records", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
            assert ok.json() == {"records": [], "next_cursor": None}
            forbidden = await http.get(
                f"{BASE}/records", headers={"Authorization": f"Bearer {contact}"}
            )
            assert forbidden.status_code == 403
            missing = await http.get(f"{BASE}/records")
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"] == "Bearer"
            bad = await http.get(f"{BASE}/records", headers={"Authorization": "Bearer x.y.z"})
            assert bad.status_code == 401
            assert bad.json()["error"] == "auth.invalid_token"
    finally:
        server.should_exit = True
        await task
        store.close()


def test_s284_token_usage_errors_exit_2(tmp_path, cli):
    """A privacy officer token needs an agency; an unknown role is a usage error too."""
    home = str(tmp_path / "home")
    Home(tmp_path / "home").init(free_port())
    no_agency = cli("token", "--home", home, "--role", "privacy_officer", "--subject", "X")
    assert no_agency.returncode == 2
    assert "--agency is required" in no_agency.stderr
    bad_role = cli("token", "--home", home, "--role", "root", "--subject", "X")
    assert bad_role.returncode == 2
    auditor = cli("token", "--home", home, "--role", "auditor", "--subject", "An Auditor")
    assert auditor.returncode == 0
