"""The deployment home: keys, key directory, NATS config and credentials, the database.

Created on first start, reused afterwards. Secrets are files readable only by
their owner and are never printed.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from pydantic import SecretStr

from audit import LogSigner
from broker.errors import ConfigError
from broker.nats.config import ADMIN, ALL_USERS, Credentials, render_config
from broker.nats.tls import TlsFiles, create_local_ca, issue_client_certificate
from broker.settings import Settings
from broker.wire.envelope import Agency
from broker.wire.keys import GATEWAY, Identity, KeyDirectory, write_directory


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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


@dataclass(frozen=True)
class Home:
    path: Path

    @property
    def directory_path(self) -> Path:
        return self.path / "keys" / "directory.json"

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
    def log_key_path(self) -> Path:
        return self.path / "keys" / "audit-log.private.json"

    @property
    def log_vkey_path(self) -> Path:
        """The log's public verifier key (C2SP note format), for agencies and auditors."""
        return self.path / "keys" / "audit-log.vkey"

    def log_signer(self) -> LogSigner:
        """The disclosure log's checkpoint key, created on first use."""
        if not self.log_key_path.is_file():
            signer = LogSigner.generate()
            _write_private(self.log_key_path, signer.private_json())
            self.log_vkey_path.write_text(signer.vkey + "\n")
            return signer
        return LogSigner.load(self.log_key_path)

    def log_vkey(self) -> str:
        """The log's verifier key; never created here: a new key would verify nothing."""
        self.require()
        if self.log_vkey_path.is_file():
            return self.log_vkey_path.read_text().strip()
        if self.log_key_path.is_file():
            return LogSigner.load(self.log_key_path).vkey
        raise ConfigError(
            f"no disclosure-log key in {self.path / 'keys'}; pass the log's verifier key "
            "with --log-key"
        )

    @property
    def exists(self) -> bool:
        return self.deployment_path.is_file()

    def init(self, nats_port: int, mutual_tls: bool = False) -> bool:
        """Create everything a first start needs; return False if it already existed."""
        if self.exists:
            return False
        self.path.mkdir(parents=True, exist_ok=True)
        identities = [Identity.generate(name) for name in ALL_USERS]
        for ident in identities:
            ident.save(self.identity_path(ident.name))
        write_directory(self.directory_path, identities)
        self._init_nats(nats_port, mutual_tls)
        self.log_signer()
        self.deployment_path.write_text(
            json.dumps({"nats_url": f"tls://127.0.0.1:{nats_port}"}, indent=2)
        )
        return True

    def _init_nats(self, nats_port: int, mutual_tls: bool) -> None:
        """The local CA, a login per NATS user (the admin's kept apart), the server config."""
        tls = create_local_ca(self.tls_files.ca.parent)
        hashes = {}
        for user in [*ALL_USERS, ADMIN]:
            path = self.admin_creds_path if user == ADMIN else self.creds_path(user)
            password = secrets.token_urlsafe(32)
            login = {"user": user, "password": password}
            if mutual_tls:  # the certificate is the login; the password stays unused
                client = issue_client_certificate(tls.ca.parent, user, path.parent)
                login |= {"cert": client.cert.name, "key": client.key.name}  # beside it
            _write_private(path, json.dumps(login))
            hashes[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10, b"2a")).decode()
        self.jetstream_dir.mkdir(parents=True, exist_ok=True)
        config = render_config(nats_port, self.jetstream_dir, hashes, tls, mutual_tls)
        _write_private(self.nats_conf, config)

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
        self.require()
        return Identity.load(self.identity_path(name))

    def directory(self) -> KeyDirectory:
        self.require()
        return KeyDirectory.load(self.directory_path)


AGENCY_NAMES = [a.value for a in Agency]
__all__ = ["AGENCY_NAMES", "GATEWAY", "Credentials", "Home"]
