"""The isolation RULES, as a table built with the subject and consumer names of
`broker.nats.config`: what each user may publish, subscribe to and consume. The in-memory
twin enforces it; nats-server enforces the config rendered from the same names, and the
contract tests (tests/test_transport_contract.py) check that both refuse alike.

An agency publishes only to its own ingress and confirmation subjects and reads only its
own deliveries, alerts, notices, receipts, the checkpoints and the signed key directory;
only the gateway reads ingress and confirmations and publishes the rest; only the admin
identity (provisioning) manages streams; nobody deletes or purges a stream. (nats-server
enforces this with one account per agency, see config.py; this table is the same rule for
the twin.)
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.nats.config import (
    ADMIN,
    CHECKPOINT_SUBJECT,
    DIRECTORY_SUBJECT,
    GATEWAY_CONSUMER,
    STREAM_CONFIRM,
    STREAM_DIRECTORY,
    STREAM_OUTBOX,
    agency_consumers,
    alert_subject,
    confirm_subject,
    deliver_subject,
    inbox_prefix,
    ingress_stream,
    ingress_subject,
    notice_subject,
    provider_consumers,
    provider_ingress_subject,
    receipt_subject,
)
from broker.wire.envelope import Agency
from broker.wire.keys import GATEWAY
from broker.wire.providers import ProviderId

ANY_CONSUMER = ("*", "*")


@dataclass(frozen=True)
class Permissions:
    """Subject patterns (NATS wildcards) and (stream, durable) pairs one user may use."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    pull: tuple[tuple[str, str], ...]  # may fetch from ("*", "*"): any
    ack: tuple[tuple[str, str], ...]
    manage_streams: bool
    read_last: tuple[str, ...] = ()  # streams whose newest message it may get ("*": any)

    def may_publish(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.publish)

    def may_subscribe(self, subject: str) -> bool:
        """A subscription is allowed only if every subject it could match is allowed."""
        return any(pattern_covers(p, subject) for p in self.subscribe)

    def may_pull(self, stream: str, durable: str) -> bool:
        return ANY_CONSUMER in self.pull or (stream, durable) in self.pull

    def may_ack(self, stream: str, durable: str) -> bool:
        return (stream, durable) in self.ack

    def may_read_last(self, stream: str) -> bool:
        return "*" in self.read_last or stream in self.read_last


def _own_consumers(agency: str) -> tuple[tuple[str, str], ...]:
    return tuple((c.stream, c.durable) for c in agency_consumers(agency))


def agency_permissions(agency: str) -> Permissions:
    own = _own_consumers(agency)
    return Permissions(
        publish=(ingress_subject(agency), confirm_subject(agency)),
        subscribe=(f"{inbox_prefix(agency)}.>", receipt_subject(agency, ">")),
        pull=own,
        ack=own,
        manage_streams=False,
        read_last=(STREAM_DIRECTORY,),  # the signed key directory is public
    )


def provider_permissions(provider: ProviderId) -> Permissions:
    """A funded service: its own ingress subject; its own receipts; the directory."""
    own = tuple((c.stream, c.durable) for c in provider_consumers(provider))
    return Permissions(
        publish=(provider_ingress_subject(provider),),
        subscribe=(f"{inbox_prefix(provider.user)}.>", f"s284.receipt.{provider.token}.>"),
        pull=own,
        ack=own,
        manage_streams=False,
        read_last=(STREAM_DIRECTORY,),
    )


def gateway_permissions() -> Permissions:
    return Permissions(
        publish=(
            deliver_subject("*", ">"),
            receipt_subject("*", ">"),
            alert_subject("*", ">"),
            notice_subject("*", ">"),
            "s284.dlq.>",
            "s284.outbox.>",
            CHECKPOINT_SUBJECT,
            DIRECTORY_SUBJECT,
        ),
        subscribe=(f"{inbox_prefix(GATEWAY)}.>",),
        pull=_gateway_consumers(),
        ack=_gateway_consumers(),
        manage_streams=False,  # provisioning is the admin identity's, never the gateway's
        read_last=("*",),
    )


def _gateway_consumers() -> tuple[tuple[str, str], ...]:
    ingress = tuple((ingress_stream(a.value), GATEWAY_CONSUMER) for a in Agency)
    return (*ingress, (STREAM_CONFIRM, GATEWAY_CONSUMER), (STREAM_OUTBOX, GATEWAY_CONSUMER))


def admin_permissions() -> Permissions:
    """Provisioning only: it creates and updates streams and consumers, and nothing else."""
    return Permissions((), (f"{inbox_prefix(ADMIN)}.>",), (), (), manage_streams=True)


def permissions_for(user: str) -> Permissions:
    if user == ADMIN:
        return admin_permissions()
    funder, _, slug = user.partition("_")  # a provider's NATS user is <funder>_<slug>
    if slug:
        return provider_permissions(ProviderId.parse(f"{funder}/{slug}"))
    return gateway_permissions() if user == GATEWAY else agency_permissions(user)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: `*` one token, `>` one or more trailing tokens."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, part in enumerate(pat):
        if part == ">":
            return len(sub) > i
        if i >= len(sub) or part not in ("*", sub[i]):
            return False
    return len(pat) == len(sub)


def pattern_covers(allowed: str, wanted: str) -> bool:
    """Every subject `wanted` (itself a pattern) can match is matched by `allowed`."""
    pat, sub = allowed.split("."), wanted.split(".")
    for i, part in enumerate(pat):
        if part == ">":
            return len(sub) > i
        if i >= len(sub) or sub[i] == ">" or part not in ("*", sub[i]):
            return False
    return len(pat) == len(sub)
