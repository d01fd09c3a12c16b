"""NATS subjects, streams, identities and the server's account configuration.

Isolation rests on NATS *accounts*, not on publish/subscribe permissions: a reply
subject is never checked against publish permissions, so an agency sharing the
streams' account could make JetStream store its replies anywhere. Here every agency
has its own account with no JetStream; the BROKER account alone holds the streams,
and an agency reaches it only through service imports of its own ingress and
confirmation subjects and of the JetStream API subjects of its own consumers. A reply
subject an agency sets is resolved back in its own account, where no stream listens. In
the BROKER account the gateway may publish and consume but not create, change, delete or
purge; only the admin identity (used by provisioning, never by the running gateway) may.
Each admitted funded service has an account of its own too, with its own ingress subject and
receipts (broker/wire/providers.py). Over the ~400-line norm by a few lines: the whole
account layout stays in one module, since nats-server reads it as one document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from broker.nats.tls import TlsFiles
from broker.wire.envelope import Agency
from broker.wire.keys import GATEWAY
from broker.wire.providers import PROVIDER_TOKEN, ProviderId


@dataclass(frozen=True)
class Credentials:
    """How one identity connects: NATS user and password (never printed: SecretStr), the
    CA its TLS connection verifies the server against, and an optional client certificate."""

    user: str
    password: SecretStr
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


ADMIN = "admin"
BROKER_ACCOUNT = "BROKER"
STREAM_DELIVER = "S284_DELIVER"
STREAM_RECEIPTS = "S284_RECEIPTS"
STREAM_DLQ = "S284_DLQ"
STREAM_CHECKPOINTS = "S284_CHECKPOINTS"
STREAM_DIRECTORY = "S284_DIRECTORY"
STREAM_CONFIRM = "S284_CONFIRM"
STREAM_OUTBOX = "S284_OUTBOX"  # sealed deliveries until confirmed; the broker account's own
CHECKPOINT_SUBJECT = "s284.checkpoint"
DIRECTORY_SUBJECT = "s284.directory"
GATEWAY_CONSUMER = "gateway"
MAX_PAYLOAD = 8 * 1024 * 1024  # a delivery carries the sender's original frame (<= 1 MiB)
# The newest signed directory, by JetStream "direct get": answered by the stream itself, so
# it works through a service import (the STREAM.MSG.GET API would answer for the caller's
# own account, which has no JetStream).
DIRECTORY_LAST = f"$JS.API.DIRECT.GET.{STREAM_DIRECTORY}.{DIRECTORY_SUBJECT}"
INGRESS_SEQ_RANGE = 10**12
"""Each agency's ingress stream numbers its messages in its own range (first sequence
index * 10**12 + 1), so an ingress sequence names one frame across all agencies."""


def account(agency: str) -> str:
    return agency.upper()


def ingress_subject(agency: str) -> str:
    return f"s284.ingress.{agency}"


def provider_ingress_subject(provider: ProviderId) -> str:
    """`s284.ingress.p.<funder>.<slug>`: held in the funder's ingress stream."""
    return f"s284.ingress.{provider.token}"


def provider_ingress_family(agency: str) -> str:
    """Every provider subject a funder's ingress stream captures."""
    return f"s284.ingress.{PROVIDER_TOKEN}.{agency}.*"


def provider_receipt_subject(provider: ProviderId, message_ref: str) -> str:
    return f"s284.receipt.{provider.token}.{message_ref}"


def ingress_stream(agency: str) -> str:
    """One ingress stream per agency: JetStream de-duplicates message ids per stream."""
    return f"S284_INGRESS_{agency.upper()}"


def ingress_first_seq(agency: str) -> int:
    return [a.value for a in Agency].index(agency) * INGRESS_SEQ_RANGE + 1


def ingress_streams() -> list[str]:
    return [ingress_stream(a.value) for a in Agency]


def confirm_subject(agency: str) -> str:
    """Where an agency's system confirms it took a delivery (wire format section 3.7)."""
    return f"s284.confirm.{agency}"


def outbox_subject(delivery_subject: str) -> str:
    """`s284.deliver.police.risk.update` -> `s284.outbox.deliver.police.risk.update`: the
    outbox copy names where the frame goes again (broker/gateway/outbox.py)."""
    return "s284.outbox." + delivery_subject.removeprefix("s284.")


def resend_subject(outbox: str) -> str:
    """The inverse of `outbox_subject`."""
    return "s284." + outbox.removeprefix("s284.outbox.")


def deliver_subject(agency: str, kind: str) -> str:
    return f"s284.deliver.{agency}.{kind}"


def receipt_subject(agency: str, message_ref: str) -> str:
    return f"s284.receipt.{agency}.{message_ref}"


def alert_subject(agency: str, contact: str) -> str:
    """A designated contact's own alert subject (`duty` for the agency's duty inbox)."""
    return f"s284.alert.{agency}.{contact}"


def notice_subject(agency: str, notice_id: str) -> str:
    return f"s284.notice.{agency}.{notice_id}"


def alert_consumer(agency: str) -> str:
    return f"alerts-{agency}"


def notice_consumer(agency: str) -> str:
    return f"notices-{agency}"


def deliver_consumer(agency: str) -> str:
    return f"deliver-{agency}"


def receipt_consumer(agency: str) -> str:
    return f"receipt-{agency}"


def checkpoint_consumer(agency: str) -> str:
    return f"checkpoints-{agency}"


def directory_consumer(agency: str) -> str:
    return f"directory-{agency}"


def inbox_prefix(user: str) -> str:
    return f"_INBOX_{user}"


@dataclass(frozen=True)
class AgencyConsumer:
    """A durable pull consumer an agency may read: stream, durable name, filter."""

    stream: str
    durable: str
    filter_subject: str

    @property
    def next_subject(self) -> str:
        return f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"

    @property
    def ack_subjects(self) -> str:
        return f"$JS.ACK.{self.stream}.{self.durable}.>"


def agency_consumers(agency: str) -> list[AgencyConsumer]:
    return [
        AgencyConsumer(STREAM_DELIVER, deliver_consumer(agency), f"s284.deliver.{agency}.>"),
        AgencyConsumer(STREAM_DELIVER, alert_consumer(agency), f"s284.alert.{agency}.>"),
        AgencyConsumer(STREAM_DELIVER, notice_consumer(agency), f"s284.notice.{agency}.>"),
        AgencyConsumer(STREAM_RECEIPTS, receipt_consumer(agency), f"s284.receipt.{agency}.>"),
        AgencyConsumer(STREAM_CHECKPOINTS, checkpoint_consumer(agency), CHECKPOINT_SUBJECT),
        AgencyConsumer(STREAM_DIRECTORY, directory_consumer(agency), DIRECTORY_SUBJECT),
    ]


def provider_consumers(provider: ProviderId) -> list[AgencyConsumer]:
    """A provider reads its own receipts and the public directory; nothing is delivered to
    it (no recipient is a provider), so it has no delivery, alert or notice consumer."""
    user = provider.user
    receipts = f"s284.receipt.{provider.token}.>"
    return [
        AgencyConsumer(STREAM_RECEIPTS, receipt_consumer(user), receipts),
        AgencyConsumer(STREAM_DIRECTORY, directory_consumer(user), DIRECTORY_SUBJECT),
    ]


def _provider_exports(provider: ProviderId) -> list[dict[str, Any]]:
    """What the BROKER account offers one provider's account (and only it)."""
    only = [provider.account]
    exports: list[dict[str, Any]] = [
        {"service": provider_ingress_subject(provider), "accounts": only},
        {"stream": f"s284.receipt.{provider.token}.>", "accounts": only},
        {"service": DIRECTORY_LAST, "accounts": only},
    ]
    for consumer in provider_consumers(provider):
        exports += [
            {"service": consumer.next_subject, "accounts": only, "response_type": "stream"},
            {"service": consumer.ack_subjects, "accounts": only},
        ]
    return exports


def provider_permissions(provider: ProviderId) -> dict[str, Any]:
    """Inside its own account: its ingress subject, its consumers, the directory."""
    publish = [provider_ingress_subject(provider), DIRECTORY_LAST]
    for consumer in provider_consumers(provider):
        publish += [consumer.next_subject, consumer.ack_subjects]
    return {
        "publish": {"allow": publish},
        "subscribe": {
            "allow": [f"{inbox_prefix(provider.user)}.>", f"s284.receipt.{provider.token}.>"]
        },
    }


def _provider_account(
    provider: ProviderId, users: dict[str, str], mutual_tls: bool
) -> dict[str, Any]:
    imports: list[dict[str, Any]] = []
    for export in _provider_exports(provider):
        kind = "service" if "service" in export else "stream"
        imports.append({kind: {"account": BROKER_ACCOUNT, "subject": export[kind]}})
    login = _login(provider.user, users, mutual_tls)
    return {"users": [{**login, "permissions": provider_permissions(provider)}], "imports": imports}


def _exports(agency: str) -> list[dict[str, Any]]:
    """What the BROKER account offers one agency (and only it)."""
    only = [account(agency)]
    exports: list[dict[str, Any]] = [
        {"service": ingress_subject(agency), "accounts": only},
        {"service": confirm_subject(agency), "accounts": only},
        {"stream": f"s284.receipt.{agency}.>", "accounts": only},
        {"service": DIRECTORY_LAST, "accounts": only},  # the newest signed key directory
    ]
    for consumer in agency_consumers(agency):
        exports += [
            {"service": consumer.next_subject, "accounts": only, "response_type": "stream"},
            {"service": consumer.ack_subjects, "accounts": only},
        ]
    return exports


def _imports(agency: str) -> list[dict[str, Any]]:
    """The same subjects seen from the agency's account, under the same names."""
    imports: list[dict[str, Any]] = []
    for export in _exports(agency):
        kind = "service" if "service" in export else "stream"
        imports.append({kind: {"account": BROKER_ACCOUNT, "subject": export[kind]}})
    return imports


def agency_permissions(agency: str) -> dict[str, Any]:
    """Inside its own account (defence in depth: the account is the boundary)."""
    publish = [ingress_subject(agency), confirm_subject(agency), DIRECTORY_LAST]
    for consumer in agency_consumers(agency):
        publish += [consumer.next_subject, consumer.ack_subjects]
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": [f"{inbox_prefix(agency)}.>", f"s284.receipt.{agency}.>"]},
    }


def gateway_permissions() -> dict[str, Any]:
    """Publish and consume; read stream state; never create, change, delete or purge."""
    return {
        "publish": {
            "allow": [
                "s284.deliver.>",
                "s284.receipt.>",
                "s284.alert.>",
                "s284.notice.>",
                "s284.dlq.>",
                "s284.outbox.>",  # no agency imports it: only the gateway sees the outbox
                CHECKPOINT_SUBJECT,
                DIRECTORY_SUBJECT,  # signed by the directory key; readers verify it
                DIRECTORY_LAST,
                *(f"$JS.API.CONSUMER.MSG.NEXT.{s}.{GATEWAY_CONSUMER}" for s in ingress_streams()),
                *(f"$JS.ACK.{s}.{GATEWAY_CONSUMER}.>" for s in ingress_streams()),
                f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_CONFIRM}.{GATEWAY_CONSUMER}",
                f"$JS.ACK.{STREAM_CONFIRM}.{GATEWAY_CONSUMER}.>",
                f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_OUTBOX}.{GATEWAY_CONSUMER}",
                f"$JS.ACK.{STREAM_OUTBOX}.{GATEWAY_CONSUMER}.>",
                "$JS.API.INFO",
                "$JS.API.STREAM.INFO.*",
                "$JS.API.CONSUMER.INFO.*.*",
            ],
        },
        "subscribe": {"allow": [f"{inbox_prefix(GATEWAY)}.>"]},
    }


def _login(user: str, users: dict[str, str], mutual_tls: bool) -> dict[str, Any]:
    """With mutual TLS the client certificate (subject `CN=<user>`) is the login."""
    return {"user": f"CN={user}"} if mutual_tls else {"user": user, "password": users[user]}


def _broker_account(
    users: dict[str, str], mutual_tls: bool, providers: tuple[ProviderId, ...] = ()
) -> dict[str, Any]:
    broker_users: list[dict[str, Any]] = [
        _login(ADMIN, users, mutual_tls),
        {**_login(GATEWAY, users, mutual_tls), "permissions": gateway_permissions()},
    ]
    return {
        "jetstream": "enabled",
        "users": broker_users,
        "exports": [
            *(e for a in Agency for e in _exports(a.value)),
            *(e for p in providers for e in _provider_exports(p)),
        ],
    }


def accounts(
    users: dict[str, str], mutual_tls: bool = False, providers: tuple[ProviderId, ...] = ()
) -> dict[str, Any]:
    """users: NATS user -> bcrypt hash of its password (admin, gateway, each agency, each
    admitted provider). Each provider has an account of its own: the funder's users cannot
    publish on its subject or read its receipts, whatever permissions they are given."""
    out = {BROKER_ACCOUNT: _broker_account(users, mutual_tls, providers)}
    for provider in providers:
        out[provider.account] = _provider_account(provider, users, mutual_tls)
    for agency in (a.value for a in Agency):
        login = _login(agency, users, mutual_tls)
        out[account(agency)] = {
            "users": [{**login, "permissions": agency_permissions(agency)}],
            "imports": _imports(agency),
        }
    return out


def tls_block(tls: TlsFiles, mutual_tls: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "ca_file": str(tls.ca),
        "cert_file": str(tls.cert),
        "key_file": str(tls.key),
        "timeout": 2,
    }
    if mutual_tls:
        block["verify_and_map"] = True
    return block


@dataclass(frozen=True)
class ServerOptions:
    """How the embedded server runs beyond its accounts.

    `sync_always`: JetStream fsyncs every write before it acknowledges it (the server's
    `sync_interval: always`); off, it flushes every two minutes and acknowledges at once,
    so a power loss can lose acknowledged messages. Off only to measure what it costs
    (`s284 bench`). `monitor_port`: the HTTP monitoring endpoint on loopback (tests).
    """

    mutual_tls: bool = False
    sync_always: bool = True
    monitor_port: int | None = None


def _jetstream_block(store_dir: Path, sync_always: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"store_dir": str(store_dir)}
    if sync_always:
        block["sync_interval"] = "always"
    return block


def render_config(
    port: int,
    store_dir: Path,
    users: dict[str, str],
    tls: TlsFiles | None = None,
    options: ServerOptions | None = None,
    server_name: str = "s284-embedded",
    host: str = "127.0.0.1",
    providers: tuple[ProviderId, ...] = (),
) -> str:
    """Loopback unless `host` says otherwise (a cluster node), JetStream on disk (fsync
    before every acknowledgement unless told otherwise), one account per agency, TLS when
    given (and, with `mutual_tls`, each client's certificate as its login)."""
    opts = options or ServerOptions()
    # NATS config accepts JSON syntax; json.dumps quotes everything safely.
    lines = [
        "# generated by s284: loopback only, one account per agency, JetStream on disk",
        f"listen: {json.dumps(f'{host}:{port}')}",
        f"server_name: {json.dumps(server_name)}",
        f"max_payload: {MAX_PAYLOAD}",
        f"jetstream: {json.dumps(_jetstream_block(store_dir, opts.sync_always))}",
        f"accounts: {json.dumps(accounts(users, opts.mutual_tls, providers), indent=2)}",
    ]
    if opts.monitor_port is not None:
        lines.append(f"http: {json.dumps(f'127.0.0.1:{opts.monitor_port}')}")
    mutual_tls = opts.mutual_tls
    if tls is not None:
        lines.append(f"tls: {json.dumps(tls_block(tls, mutual_tls))}")
        # broker/nats/cluster.py adds `cluster {}` with the same files for the routes.
    return "\n".join([*lines, ""])


ALL_USERS = [GATEWAY, *(a.value for a in Agency)]
