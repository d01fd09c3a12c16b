"""Bearer-token authentication for the audit API (OIDC-compatible JWTs).

A token is verified in four steps, each labelled below: (1) the header names an
allowed algorithm and a key the configured issuer published, (2) the signature,
issuer, audience and expiry check out, (3) the s284 claims name a known role (and an
agency where the role needs one), (4) only then does a `Principal` exist.

Claims (documented in the OpenAPI description of the audit API too):

- `sub`: who is asking (a staff id or name); recorded in the access log.
- `s284_role`: `privacy_officer`, `auditor`, `admin`, `contact`, `psa` (the Post
  Sentence Authority: `/api/v1/oversight/statistics` only) or `map_chair` (the MAP's
  chair: the statistics and the CSP register, in /console and `/api/v1/csp`).
- `s284_agency`: the agency of a privacy officer or designated contact.
- `iss`, `aud`, `exp`, `iat`: standard; `iss` and `aud` must match `AuthConfig`, and
  `exp - iat` may not exceed `AuthConfig.max_lifetime_s` (12 h by default): a stolen
  ten-year token is refused.
- `s284_agency` must name one of the four agencies; anything else is refused.
- `jti`: the token's id (the local issuer sets one); signing out of the web inbox revokes
  it until it expires (`Revocations`). A token without `jti` is revoked by its SHA-256.

Embedded mode has a local issuer: an Ed25519 key pair in the home, used by
`s284 token`. Tokens are never logged or put in error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from threading import Lock
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.errors import BrokerError, ConfigError
from broker.revocations import Revocations, token_id
from broker.wire.envelope import Agency
from broker.wire.jose import thumbprint

ALGORITHMS = ("EdDSA", "ES256", "RS256")
LOCAL_ISSUER = "s284-local"
AUDIENCE = "s284-audit"
CLAIM_ROLE = "s284_role"
CLAIM_AGENCY = "s284_agency"
MAX_TTL_S = 12 * 3600  # what `s284 token` issues at most; also the default accepted


AGENCIES = frozenset(a.value for a in Agency)


def _seconds(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError(f"S284_AUTH_MAX_LIFETIME_S must be a positive number, not {value!r}")
    return seconds


class Role(StrEnum):
    PRIVACY_OFFICER = "privacy_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"
    CONTACT = "contact"  # a designated contact (the future web inbox)
    PSA = "psa"  # the Post Sentence Authority: oversight counts only, never a record
    MAP_CHAIR = "map_chair"  # chairs the MAP: the CSP register and the counts, never a record


AGENCY_ROLES = frozenset({Role.PRIVACY_OFFICER, Role.CONTACT})


class AuthError(BrokerError):
    """A request is not authenticated (401), not allowed (403), or cannot be checked (503)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def unauthenticated(detail: str, code: str = "auth.invalid_token") -> AuthError:
    return AuthError(401, code, detail)


@dataclass(frozen=True)
class Principal:
    """A verified caller. Only `TokenVerifier.verify` makes one."""

    subject: str
    role: Role
    agency: str | None


@dataclass(frozen=True)
class AuthConfig:
    """Which issuer's tokens the API accepts. `jwks` is a file path or an https URL."""

    issuer: str
    audience: str
    jwks: str
    leeway_s: float = 30.0
    max_lifetime_s: float = MAX_TTL_S
    revocations: Path | None = None  # where signed-out tokens are kept; None: in memory

    @classmethod
    def from_env_and_home(cls, home: Path) -> AuthConfig:
        """S284_AUTH_ISSUER, S284_AUTH_AUDIENCE, S284_AUTH_JWKS; defaults: the local issuer."""
        default_jwks = str(LocalIssuer.for_home(home).public_path)
        return cls(
            issuer=os.environ.get("S284_AUTH_ISSUER", LOCAL_ISSUER),
            audience=os.environ.get("S284_AUTH_AUDIENCE", AUDIENCE),
            jwks=os.environ.get("S284_AUTH_JWKS") or default_jwks,
            max_lifetime_s=_seconds(os.environ.get("S284_AUTH_MAX_LIFETIME_S"), MAX_TTL_S),
            revocations=home / "revoked-tokens.json",
        )

    @property
    def jwks_is_url(self) -> bool:
        return self.jwks.startswith(("https://", "http://"))


# -- the local issuer (embedded mode) -----------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass(frozen=True)
class LocalIssuer:
    """The embedded deployment's token issuer: one Ed25519 key, created on first use."""

    private_path: Path
    public_path: Path

    @classmethod
    def for_home(cls, home: Path) -> LocalIssuer:
        keys = home / "keys"
        return cls(keys / "token-issuer.private.jwks.json", keys / "token-issuer.jwks.json")

    def ensure(self) -> None:
        """Create the key pair on first use; (re)write the public JWKS from the private key."""
        if not self.private_path.exists():
            key = Ed25519PrivateKey.generate()
            jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key, as_dict=True)
            meta = {"kid": thumbprint(key.public_key()), "alg": "EdDSA", "use": "sig"}
            with contextlib.suppress(FileExistsError):  # another process won the race
                _write_private(self.private_path, json.dumps({"keys": [{**jwk, **meta}]}))
        if not self.public_path.exists():
            private = json.loads(self.private_path.read_text())["keys"][0]
            public = {k: v for k, v in private.items() if k != "d"}
            self.public_path.write_text(json.dumps({"keys": [public]}, indent=2))

    def issue(
        self, config: AuthConfig, subject: str, role: Role, agency: str | None, ttl_s: int
    ) -> str:
        if not 0 < ttl_s <= MAX_TTL_S:
            raise AuthError(400, "auth.bad_ttl", f"a token lives 1 to {MAX_TTL_S} seconds")
        self.ensure()
        key = jwt.PyJWKSet.from_json(self.private_path.read_text()).keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": config.issuer,
            "aud": config.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": secrets.token_urlsafe(16),
            CLAIM_ROLE: role.value,
        }
        if agency is not None:
            claims[CLAIM_AGENCY] = agency
        return jwt.encode(claims, key.key, algorithm="EdDSA", headers={"kid": key.key_id})


# -- verification ------------------------------------------------------------------------


class _FileKeys:
    """A JWKS file, re-read when it changes (key rotation without a restart)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = Lock()
        self._stamp: float | None = None
        self._keys: list[jwt.PyJWK] = []

    def find(self, kid: str | None) -> jwt.PyJWK:
        keys = self._load()
        matches = [k for k in keys if kid is None or k.key_id == kid]
        if kid is None and len(keys) != 1:
            raise unauthenticated("the token names no key id (kid)")
        if not matches:
            raise unauthenticated("the token was signed by a key the issuer does not publish")
        return matches[0]

    def _load(self) -> list[jwt.PyJWK]:
        try:
            stamp = self._path.stat().st_mtime
            with self._lock:
                if stamp != self._stamp:
                    self._keys = list(jwt.PyJWKSet.from_json(self._path.read_text()).keys)
                    self._stamp = stamp
                return self._keys
        except (OSError, jwt.PyJWTError) as exc:
            raise AuthError(
                503, "auth.unavailable", "the token issuer's keys cannot be read"
            ) from exc


class _UrlKeys:
    def __init__(self, url: str) -> None:
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)

    def find(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            raise unauthenticated("the token names no key id (kid)")
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthError(
                503, "auth.unavailable", "the token issuer's keys cannot be fetched"
            ) from exc
        except jwt.PyJWKClientError:
            raise unauthenticated(
                "the token was signed by a key the issuer does not publish"
            ) from None


class TokenVerifier:
    """Verifies bearer tokens against one issuer's published keys."""

    def __init__(self, config: AuthConfig) -> None:
        if config.jwks.startswith("http://"):
            raise AuthError(503, "auth.misconfigured", "S284_AUTH_JWKS must be an https URL")
        self.config = config
        self._keys = _UrlKeys(config.jwks) if config.jwks_is_url else _FileKeys(Path(config.jwks))
        self.revoked = Revocations.at(config.revocations)

    def verify(self, token: str) -> Principal:
        # 1. header: an allowed algorithm and a key the issuer publishes
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise unauthenticated(f"token algorithm must be one of {', '.join(ALGORITHMS)}")
        key = self._keys.find(header.get("kid"))
        if key.algorithm_name != alg:
            raise unauthenticated("the token's algorithm does not match its key")
        # 2. signature, issuer, audience, expiry
        claims = self._decode(token, key, alg)
        check_lifetime(claims, self.config.max_lifetime_s)
        if self.revoked.holds(token_id(token, claims)):
            raise unauthenticated("the token was revoked (signed out)", "auth.revoked_token")
        # 3. the s284 claims; 4. the principal
        return _principal(claims)

    def revoke(self, token: str) -> None:
        """Refuse `token` from now until it expires (sign-out). Call it only with a token
        `verify` accepted: its claims are read here without checking them again."""
        claims = jwt.decode(token, options={"verify_signature": False})
        self.revoked.add(token_id(token, claims), float(claims.get("exp", 0)))

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated("the token has expired", "auth.expired_token") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated("the token is not meant for this API (audience)") from None
        except jwt.InvalidIssuerError:
            raise unauthenticated(
                "the token comes from an issuer this API does not trust"
            ) from None
        except jwt.PyJWTError:
            raise unauthenticated("the token's signature or claims do not verify") from None


def check_lifetime(claims: dict[str, Any], max_lifetime_s: float) -> None:
    """`exp - iat` within the configured maximum: a long-lived token is a standing key."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise unauthenticated("the token's exp and iat must be numbers")
    if exp - iat > max_lifetime_s:
        raise unauthenticated(
            f"the token lives longer than the {int(max_lifetime_s)} s this API accepts",
            "auth.token_lifetime",
        )


def _principal(claims: dict[str, Any]) -> Principal:
    subject, role, agency = claims.get("sub"), claims.get(CLAIM_ROLE), claims.get(CLAIM_AGENCY)
    if not isinstance(subject, str) or not subject:
        raise unauthenticated("the token names no subject (sub)")
    if not isinstance(role, str) or role not in {r.value for r in Role}:
        raise unauthenticated(f"the token's {CLAIM_ROLE} claim is not a known role")
    if agency is not None and agency not in AGENCIES:
        raise unauthenticated(f"the token's {CLAIM_AGENCY} claim is not a known agency")
    if Role(role) in AGENCY_ROLES and not agency:
        raise unauthenticated(f"a {role} token must carry the {CLAIM_AGENCY} claim")
    return Principal(subject, Role(role), agency)


def bearer_token(authorization: str | None) -> str:
    """The token from an `Authorization: Bearer ...` header, or a 401."""
    if not authorization:
        raise unauthenticated(
            "send a bearer token: Authorization: Bearer <token>", "auth.missing_token"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated(
            "the Authorization header must be: Bearer <token>", "auth.missing_token"
        )
    return token.strip()


def require_role(principal: Principal, roles: frozenset[Role]) -> None:
    if principal.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise AuthError(403, "auth.forbidden", f"this needs one of the roles: {allowed}")
