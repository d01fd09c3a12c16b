"""Admitting a funded service (the operator's side of `s284 provider admit`).

The provider made its own keys (`s284 provider init`) and sent a registration request
naming its identity `<funder>/<slug>` and its service type. Admitting it: the keys go into
the signed key directory (a new version), the provider gets a NATS login of its own, in an
account of its own, and the NATS server config is rendered again with that account; the
server takes it on a reload (`nats-server --signal reload`, or restart `s284 up`) and
`s284 provision` (or the next `s284 up`) creates its receipt consumer.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bcrypt

from broker.errors import ConfigError, RegistrationError
from broker.filemodes import lock_down, private_umask
from broker.home import Home, read_request
from broker.nats.config import ADMIN, ALL_USERS, ServerOptions, render_config
from broker.nats.tls import issue_client_certificate
from broker.wire.directory import add
from broker.wire.providers import ProviderId, provider_of


@dataclass(frozen=True)
class Admitted:
    provider: ProviderId
    service: str
    creds: Path  # the provider's NATS login, to hand over with the CA and directory key
    version: int  # the key directory version that lists it


def admit_provider(home: Home, request: Path) -> Admitted:
    """Admit a provider's registration request; RegistrationError names what is wrong."""
    home.require()
    reg = read_request(request)
    provider = provider_of(reg.identity)
    if provider is None or reg.sig.service is None:
        raise RegistrationError(
            f"{reg.identity!r} is not a funded service's request (<funder>/<slug> with a "
            "service type); admit an agency with `s284 directory add`"
        )
    listed = home.providers()
    if provider in listed:
        raise RegistrationError(f"{provider.identity} is already admitted; rotate its keys")
    with private_umask():
        directory = add(home.directory(), reg, datetime.now(UTC))
        home.write_directory(home.directory_key().sign(directory))
        creds = _login(home, provider)
        listed[provider] = reg.sig.service
        home.providers_path.write_text(
            json.dumps({p.identity: s for p, s in sorted(listed.items())}, indent=2)
        )
        render_nats(home)
    lock_down(home.path)
    return Admitted(provider, reg.sig.service, creds, directory.version)


def _login(home: Home, provider: ProviderId) -> Path:
    path = home.creds_path(provider.user)
    login = {"user": provider.user, "password": secrets.token_urlsafe(32)}
    if _options(home).mutual_tls:
        client = issue_client_certificate(home.tls_files.ca.parent, provider.user, path.parent)
        login |= {"cert": client.cert.name, "key": client.key.name}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(login))
    path.chmod(0o600)
    return path


def _options(home: Home) -> ServerOptions:
    if not home.render_path.is_file():
        raise ConfigError(
            f"{home.path} predates funded services (no {home.render_path.name}); start a new "
            "home with `s284 up --home NEW`"
        )
    return ServerOptions(**json.loads(home.render_path.read_text())["options"])


def render_nats(home: Home) -> None:
    """The NATS config again, with every admitted provider's account and login."""
    render = json.loads(home.render_path.read_text())
    providers = tuple(sorted(home.providers()))
    hashes = {}
    for user in [*ALL_USERS, ADMIN, *(p.user for p in providers)]:
        creds = home.admin_credentials() if user == ADMIN else home.credentials(user)
        password = creds.password.get_secret_value().encode()
        hashes[user] = bcrypt.hashpw(password, bcrypt.gensalt(10, b"2a")).decode()
    config = render_config(
        int(render["port"]),
        home.jetstream_dir,
        hashes,
        home.tls_files,
        _options(home),
        providers=providers,
    )
    home.nats_conf.write_text(config)
    home.nats_conf.chmod(0o600)


__all__ = ["Admitted", "admit_provider", "render_nats"]
