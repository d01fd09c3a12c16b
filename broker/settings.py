"""One frozen settings object; every process takes it instead of many parameters."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Defaults suit the embedded deployment; each can be set as S284_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="S284_", frozen=True, extra="forbid")

    home: Path = Path("var/s284")
    nats_url: str | None = Field(
        default=None, description="NATS server; default: the embedded one recorded in the home"
    )
    nats_port: int = 4284
    http_host: str = "127.0.0.1"
    http_port: int = 8284
    metrics_host: str = Field(
        default="127.0.0.1", description="`s284 gateway`: where its metrics listener binds"
    )
    metrics_port: int | None = Field(
        default=None,
        description="`s284 gateway`: serve /metrics, /healthz and /readyz on this port",
    )
    inbox_host: str = Field(
        default="127.0.0.1", description="`s284 gateway`: where its contacts' inbox binds"
    )
    inbox_port: int | None = Field(
        default=None,
        description="`s284 gateway`: serve the designated contacts' web inbox and alert API "
        "(/inbox, /api/v1/alerts) on this port, beside the alert flow that acts on them",
    )
    tls_ca: Path | None = Field(
        default=None, description="CA (PEM) NATS clients verify the server against; default: home's"
    )
    tls_cert: Path | None = Field(
        default=None, description="certificate (PEM) the HTTP API serves; needed off loopback"
    )
    tls_key: Path | None = Field(default=None, description="private key (PEM) of tls_cert")
    nats_mutual_tls: bool = Field(
        default=False,
        description="embedded NATS: each identity logs in with its client certificate "
        "(verify_and_map) instead of a password; applies when the home is created",
    )
    nats_sync_always: bool = Field(
        default=True,
        description="embedded NATS: JetStream fsyncs each write before acknowledging it; "
        "false only to measure the cost (s284 bench); applies when the home is created",
    )
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home")
    policy_bundle: Path | None = Field(
        default=None, description="s 284 policy bundle directory; default: the one shipped"
    )
    delivery_profile: int = Field(
        default=2,
        ge=1,
        le=2,
        description="JOSE profile the gateway seals deliveries with: 2 (JWE alg "
        "ECDH-ES+A256KW, one ephemeral key per recipient per batch) or 1 (ECDH-ES, one per "
        "delivery) for recipients whose software opens only v1 (docs/wire-format.md 2.3)",
    )
    max_frame_bytes: int = MIB
    http_max_body_bytes: int = Field(
        default=MIB, ge=1, description="HTTP request bodies over this are refused (413) unread"
    )
    replay_window_s: float = 300.0
    ack_wait_s: float = 30.0
    max_deliver: int = 10
    fetch_batch: int = 256
    refusals_kept: int = Field(
        default=20,
        ge=1,
        description="identical refusals (agency, reason) recorded one by one per window; "
        "further ones in it are counted in one record (docs/audit-format.md)",
    )
    refusal_window_s: float = Field(
        default=10.0, gt=0, description="that window; at most a third of ack_wait_s is used"
    )
    checkpoint_every_records: int = Field(
        default=1000, ge=1, description="sign a log checkpoint after this many new records"
    )
    checkpoint_every_s: float = Field(
        default=5.0, gt=0, description="and at least this often while the log grows"
    )
    alert_check_every_s: float = Field(
        default=15.0, gt=0, description="how often overdue alerts are escalated"
    )
    signer_socket: Path | None = Field(
        default=None,
        description="Unix socket of the log signer (`s284 signer`); default: <home>.signer/"
        "signer.sock, served in-process by the embedded deployment if nothing answers",
    )
    signer_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="with signer_socket set, how long a starting gateway waits for the "
        "signer to answer (a sidecar starting beside it) before it gives up",
    )
    outbox_resend_after_s: float = Field(
        default=600.0,
        gt=0,
        description="re-send a delivery its recipient has not confirmed after this long; "
        "each later re-send waits twice as long as the one before",
    )
    outbox_max_resends: int = Field(
        default=5,
        ge=0,
        description="then give up: the frame goes to the dead-letter stream and an operator "
        "alert is logged (delivery_unconfirmed_gave_up)",
    )
    node: str = Field(default_factory=socket.gethostname)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.home / 'audit.db').resolve()}"
