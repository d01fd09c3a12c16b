"""The deployment home (the broker's keys, the signed key directory, NATS config and
credentials, the database) and the agency homes (each agency's own private keys). Owner-only
(broker/filemodes.py). Over the ~400-line norm: one class per kind of home (a funded
service's home is an AgencyHome; admitting one is broker/funded.py).

Created on first start, reused afterwards. Secrets are files readable only by their
owner and are never printed. The broker's home holds no agency private key: the embedded
deployment creates the four agencies in agency homes beside it (`<home>.agencies/<agency>`),
by the same code as `s284 agency init`, and registers their requests like `directory add`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import structlog
from pydantic import SecretStr

from broker.errors import ConfigError, RegistrationError
from broker.filemodes import lock_down, private_umask
from broker.nats.config import ADMIN, ALL_USERS, Credentials, ServerOptions, render_config
from broker.nats.tls import TlsFiles, create_local_ca, issue_client_certificate
from broker.settings import Settings
from broker.signer import SignerHome
from broker.wire.directory import (
    DirectoryKey,
    DirectoryVerifier,
    Registration,
    add,
    registration_request,
    verify_registration,
)
from broker.wire.envelope import MAP_AGENCIES, Agency
from broker.wire.keys import GATEWAY, Identity, KeyDirectory, Keyring
from broker.wire.providers import ProviderId

log = structlog.get_logger("s284.home")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _read_credentials(path: Path, user: str, home: Path, ca: Path | None) -> Credentials:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no NATS credentials for {user!r} in {home}") from exc
    cert, key = data.get("cert"), data.get("key")
    return Credentials(
        data["user"],
        SecretStr(data["password"]),
        ca=ca,
        cert=path.parent / cert if cert else None,
        key=path.parent / key if key else None,
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half a directory


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.__class__.__name__}") from None


def read_request(path: Path) -> Registration:
    """A registration request file, verified (thumbprints, proof of possession)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistrationError(f"cannot read {path}: {exc.__class__.__name__}") from None
    return verify_registration(data)


@dataclass(frozen=True)
class AgencyHome:
    """One agency's own home: its key generations (private, 0600 in a 0700 folder), its
    registration requests, and how it reaches the broker (NATS, the pinned directory key)."""

    path: Path

    @property
    def keys_dir(self) -> Path:
        return self.path / "keys"

    @property
    def connection_path(self) -> Path:
        return self.path / "connection.json"

    @property
    def directory_key_path(self) -> Path:
        return self.path / "directory-key.json"

    @property
    def directory_cache_path(self) -> Path:
        return self.path / "directory.json"

    def request_path(self, generation: int) -> Path:
        return self.path / f"registration-{generation}.json"

    @property
    def agency(self) -> str:
        return str(_read_json(self.path / "agency.json", "agency home")["agency"])

    @property
    def service(self) -> str | None:
        """A funded service's type (`s284 provider init`); None in an agency's home."""
        service = _read_json(self.path / "agency.json", "agency home").get("service")
        return None if service is None else str(service)

    @classmethod
    def create(
        cls, path: Path, agency: str, service: str | None = None
    ) -> tuple[AgencyHome, Path]:
        """`s284 agency init` (or `s284 provider init`, with the provider's identity
        `<funder>/<slug>` and its service type): new keys here, and the request to send."""
        if (path / "agency.json").exists():
            raise ConfigError(f"{path} already holds an agency's keys; use `s284 agency rotate`")
        Identity.generate(agency, service)  # a provider without a service fails before mkdir
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        about: dict[str, Any] = {"s284_agency_home": 1, "agency": agency}
        if service is not None:
            about["service"] = service
        (path / "agency.json").write_text(json.dumps(about))
        home = cls(path)
        return home, home._new_generation(agency, 1)

    def rotate(self) -> Path:
        """New keys beside the old ones (which still decrypt); the request to send."""
        return self._new_generation(self.agency, len(self._generation_files()) + 1)

    def _new_generation(self, agency: str, generation: int) -> Path:
        ident = Identity.generate(agency, self.service)
        self.keys_dir.mkdir(mode=0o700, exist_ok=True)
        ident.save(self.keys_dir / f"{generation:04d}.private.jwks.json")
        request = self.request_path(generation)
        request.write_text(json.dumps(registration_request(ident), indent=2))
        return request

    def _generation_files(self) -> list[Path]:
        return sorted(self.keys_dir.glob("*.private.jwks.json"))

    def keyring(self) -> Keyring:
        files = self._generation_files()
        if not files:
            raise ConfigError(f"no agency keys in {self.keys_dir}; run `s284 agency init`")
        return Keyring(tuple(Identity.load(f) for f in files))

    def trust(self, nats_url: str, creds: Credentials, directory_key: dict[str, Any]) -> None:
        """Record how to reach the broker: what its operator hands to the agency (the NATS
        login, the CA its TLS listener is verified against, a client certificate with mutual
        TLS). Files are copied in, so the agency home stands alone."""
        DirectoryVerifier.from_jwk(directory_key)  # refuse a malformed key now, not later
        conn = {"nats_url": nats_url, "user": creds.user}
        conn["password"] = creds.password.get_secret_value()
        for field, source in (("ca", creds.ca), ("cert", creds.cert), ("key", creds.key)):
            if source is not None:
                (self.path / "tls").mkdir(mode=0o700, exist_ok=True)
                _write_private(self.path / "tls" / source.name, source.read_text())
                conn[field] = f"tls/{source.name}"
        _write_private(self.connection_path, json.dumps(conn))
        self.directory_key_path.write_text(json.dumps(directory_key, indent=2))

    def connection(self) -> tuple[str, Credentials]:
        data = _read_json(self.connection_path, "connection settings")

        def held(field: str) -> Path | None:
            return self.path / data[field] if data.get(field) else None

        creds = Credentials(
            data["user"], SecretStr(data["password"]), held("ca"), held("cert"), held("key")
        )
        return str(data["nats_url"]), creds

    def directory_verifier(self) -> DirectoryVerifier:
        return DirectoryVerifier.from_jwk(_read_json(self.directory_key_path, "directory key"))

    def cached_directory(self) -> bytes | None:
        path = self.directory_cache_path
        return path.read_bytes() if path.is_file() else None

    def cache_directory(self, signed: bytes) -> None:
        _write_atomic(self.directory_cache_path, signed)


@dataclass(frozen=True)
class Home:
    path: Path

    @property
    def directory_path(self) -> Path:
        """The current signed key directory (what `GET /api/v1/directory` serves)."""
        return self.path / "directory.json"

    @property
    def directory_key_path(self) -> Path:
        return self.path / "keys" / "directory.private.jwk.json"

    @property
    def directory_public_path(self) -> Path:
        """The directory's public key: agencies pin it (see docs/wire-format.md)."""
        return self.path / "keys" / "directory.public.jwk.json"

    @property
    def agencies_path(self) -> Path:
        """Where the embedded deployment keeps its four agency homes: beside, not inside."""
        return self.path.parent / f"{self.path.name}.agencies"

    def agency_home(self, agency: str) -> AgencyHome:
        return AgencyHome(self.agencies_path / agency)

    def identity_path(self, name: str) -> Path:
        return self.path / "keys" / f"{name}.private.jwks.json"

    @property
    def nats_conf(self) -> Path:
        return self.path / "nats" / "nats-server.conf"

    @property
    def jetstream_dir(self) -> Path:
        return self.path / "nats" / "jetstream"

    def creds_path(self, user: str) -> Path:
        return self.path / "nats" / "creds" / f"{user}.json"

    @property
    def providers_path(self) -> Path:
        """The admitted funded services (`s284 provider admit`): identity and service."""
        return self.path / "nats" / "providers.json"

    @property
    def render_path(self) -> Path:
        """What the NATS config was rendered with, so admitting a provider re-renders it."""
        return self.path / "nats" / "render.json"

    def providers(self) -> dict[ProviderId, str]:
        """Each admitted provider and its service type (none: {})."""
        if not self.providers_path.is_file():
            return {}
        listed = _read_json(self.providers_path, "providers")
        return {ProviderId.parse(k): str(v) for k, v in listed.items()}

    @property
    def admin_creds_path(self) -> Path:
        """The provisioning identity: read by `s284 up` and `s284 provision`, never by a
        running gateway, so the gateway cannot change or cut a stream."""
        return self.path / "nats" / "admin" / "admin.json"

    @property
    def tls_files(self) -> TlsFiles:
        """The embedded NATS server's local CA and certificate (keys 0600)."""
        tls = self.path / "tls"
        return TlsFiles(tls / "ca.pem", tls / "server.pem", tls / "server.key")

    @property
    def trusted_ca(self) -> Path | None:
        """What NATS clients verify the server against: S284_TLS_CA, else the home's CA."""
        configured = Settings().tls_ca
        if configured is not None:
            return configured
        return self.tls_files.ca if self.tls_files.ca.is_file() else None

    @property
    def deployment_path(self) -> Path:
        return self.path / "deployment.json"

    @property
    def log_vkey_path(self) -> Path:
        """The log's public verifier key (C2SP note format), for agencies and auditors."""
        return self.path / "keys" / "audit-log.vkey"

    @property
    def signer_path(self) -> Path:
        """The log signer's directory: beside the home, never inside it (see broker/signer)."""
        return self.path.parent / f"{self.path.name}.signer"

    def signer_socket(self, settings: Settings) -> Path:
        return settings.signer_socket or self.signer_path / "signer.sock"

    def signer_home(self) -> SignerHome:
        """The signer's directory; a key an older home kept in keys/ is moved there."""
        signer = SignerHome(self.signer_path)
        if signer.adopt(self.path / "keys" / "audit-log.private.json"):
            log.warning("log_key_moved", to=str(signer.key_path))
        return signer

    def log_vkey(self) -> str:
        """The log's verifier key; never created here: a new key would verify nothing."""
        self.require()
        if self.log_vkey_path.is_file():
            return self.log_vkey_path.read_text().strip()
        signer = self.signer_home()
        if signer.exists:
            return signer.signer().vkey
        raise ConfigError(
            f"no disclosure-log key in {self.path / 'keys'}; pass the log's verifier key "
            "with --log-key"
        )

    @property
    def exists(self) -> bool:
        return self.deployment_path.is_file()

    def init(
        self, nats_port: int, mutual_tls: bool = False, server: ServerOptions | None = None
    ) -> bool:
        """Create everything a first start needs; return False if it already existed.
        `server`: the NATS server's other options (default: fsync before every ack).
        Either way the home ends owner-only: files 0600, directories 0700."""
        with private_umask():
            created = self._create(nats_port, mutual_tls, server)
        lock_down(self.path)
        return created

    def _create(self, nats_port: int, mutual_tls: bool, server: ServerOptions | None) -> bool:
        if self.exists:
            return False
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        gateway = Identity.generate(GATEWAY)
        gateway.save(self.identity_path(GATEWAY))
        options = dataclasses.replace(server or ServerOptions(), mutual_tls=mutual_tls)
        self._init_nats(nats_port, options)
        self._init_signer()
        nats_url = f"tls://127.0.0.1:{nats_port}"
        self._init_directory(gateway, nats_url)
        self.deployment_path.write_text(json.dumps({"nats_url": nats_url}, indent=2))
        return True

    def _init_signer(self) -> None:
        """The log key, created in the signer's directory; only its public half stays here."""
        signer = self.signer_home()
        vkey = signer.signer().vkey if signer.exists else signer.create()
        self.log_vkey_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_vkey_path.write_text(vkey + "\n")

    def _init_nats(self, nats_port: int, options: ServerOptions) -> None:
        """The local CA, a login per NATS user (the admin's kept apart), the server config."""
        tls = create_local_ca(self.tls_files.ca.parent)
        hashes = {}
        for user in [*ALL_USERS, ADMIN]:
            path = self.admin_creds_path if user == ADMIN else self.creds_path(user)
            password = secrets.token_urlsafe(32)
            login = {"user": user, "password": password}
            if options.mutual_tls:  # the certificate is the login; the password stays unused
                client = issue_client_certificate(tls.ca.parent, user, path.parent)
                login |= {"cert": client.cert.name, "key": client.key.name}  # beside it
            _write_private(path, json.dumps(login))
            hashes[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10, b"2a")).decode()
        self.jetstream_dir.mkdir(parents=True, exist_ok=True)
        config = render_config(nats_port, self.jetstream_dir, hashes, tls, options)
        _write_private(self.nats_conf, config)
        render = {"port": nats_port, "options": dataclasses.asdict(options)}
        _write_private(self.render_path, json.dumps(render))

    def _init_directory(self, gateway: Identity, nats_url: str) -> None:
        """Version 1: the gateway's keys and the embedded parties (the four agencies and the
        Authority), each created in its own home and admitted from its registration
        request, as an operator would."""
        key = DirectoryKey.generate()
        _write_private(self.directory_key_path, json.dumps(key.private_jwk()))
        self.directory_public_path.write_text(json.dumps(key.public_jwk(), indent=2))
        now = datetime.now(UTC)
        directory = add(KeyDirectory([]), verify_registration(registration_request(gateway)), now)
        for agency in AGENCY_NAMES:
            agency_home, request = AgencyHome.create(self.agency_home(agency).path, agency)
            directory = add(directory, read_request(request), now)
            agency_home.trust(nats_url, self._credentials(agency), key.public_jwk())
        directory = KeyDirectory(directory.entries, 1, now)
        self.write_directory(key.sign(directory))

    def directory_key(self) -> DirectoryKey:
        """The operator's directory signing key."""
        self.require()
        return DirectoryKey.from_private_jwk(_read_json(self.directory_key_path, "directory key"))

    def directory_verifier(self) -> DirectoryVerifier:
        self.require()
        if not self.directory_public_path.is_file():
            raise ConfigError(
                f"{self.path} predates the signed key directory (no "
                f"{self.directory_public_path.name}); start a new home with `s284 up --home NEW`"
            )
        return DirectoryVerifier.from_jwk(_read_json(self.directory_public_path, "directory key"))

    def signed_directory(self) -> bytes:
        self.require()
        try:
            return self.directory_path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"no key directory at {self.directory_path}") from exc

    def write_directory(self, signed: bytes) -> None:
        _write_atomic(self.directory_path, signed)

    def require(self) -> None:
        if not self.exists:
            raise ConfigError(
                f"no s284 deployment at {self.path}; start one with `s284 up --home {self.path}`"
            )

    @property
    def nats_url(self) -> str:
        self.require()
        return str(json.loads(self.deployment_path.read_text())["nats_url"])

    def credentials(self, user: str) -> Credentials:
        self.require()
        return self._credentials(user)

    def _credentials(self, user: str) -> Credentials:
        return _read_credentials(self.creds_path(user), user, self.path, self.trusted_ca)

    def admin_credentials(self) -> Credentials:
        """Only for provisioning streams and consumers (`s284 up`, `s284 provision`)."""
        self.require()
        if not self.admin_creds_path.is_file():
            raise ConfigError(
                f"{self.path} predates per-agency NATS accounts and has no admin identity; "
                "start a new home (`s284 up --home NEW_DIR`)"
            )
        return _read_credentials(self.admin_creds_path, ADMIN, self.path, self.trusted_ca)

    def identity(self, name: str) -> Identity:
        """The gateway's keys; for an agency, the embedded demo's convenience: the newest
        generation in its agency home beside this one (never in this home)."""
        self.require()
        if name != GATEWAY:
            return self.agency_home(name).keyring().generations[-1]
        return Identity.load(self.identity_path(name))

    def directory(self) -> KeyDirectory:
        """The current directory, verified against the directory public key."""
        return self.directory_verifier().verify(self.signed_directory())


AGENCY_NAMES = [a.value for a in Agency]  # every party with a home: the MAP agencies and psa
MAP_AGENCY_NAMES = [a.value for a in MAP_AGENCIES]
__all__ = [
    "AGENCY_NAMES",
    "GATEWAY",
    "MAP_AGENCY_NAMES",
    "AgencyHome",
    "Credentials",
    "Home",
    "read_request",
]
