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
    max_frame_bytes: int = MIB
    http_max_body_bytes: int = Field(
        default=MIB, ge=1, description="HTTP request bodies over this are refused (413) unread"
    )
    replay_window_s: float = 300.0
    ack_wait_s: float = 30.0
    max_deliver: int = 10
    fetch_batch: int = 256
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
    node: str = Field(default_factory=socket.gethostname)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.home / 'audit.db').resolve()}"
