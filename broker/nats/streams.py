"""The JetStream layout as data: which streams hold which subjects, with what retention
and limits, and the durable consumers on them. The real client renders it into JetStream
API calls; the in-memory twin builds its streams from it, so the two cannot disagree."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from broker.nats.config import (
    CHECKPOINT_SUBJECT,
    DIRECTORY_SUBJECT,
    GATEWAY_CONSUMER,
    MAX_PAYLOAD,
    STREAM_CHECKPOINTS,
    STREAM_CONFIRM,
    STREAM_DELIVER,
    STREAM_DIRECTORY,
    STREAM_DLQ,
    STREAM_OUTBOX,
    STREAM_RECEIPTS,
    agency_consumers,
    alert_subject,
    confirm_subject,
    deliver_subject,
    ingress_first_seq,
    ingress_stream,
    ingress_subject,
    notice_subject,
    provider_consumers,
    provider_ingress_family,
    receipt_subject,
)
from broker.nats.transport import StreamLimits
from broker.wire.providers import ProviderId

_DAY = 86_400.0
INGRESS_ALL = ""  # the gateway's ingress consumers: no filter, the agency's and its providers'

HEADER_ROOM = 64 * 1024  # NATS headers travel inside the frame limit


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    work_queue: bool  # an acked message is removed; otherwise kept up to max_age
    max_msg_size: int
    max_age_s: float  # 0: kept for ever
    duplicate_window_s: float
    first_seq: int = 1  # ingress: each agency's stream numbers in its own range
    allow_direct: bool = False  # the directory: read by "direct get" across accounts
    max_msgs: int = -1  # -1: no count limit; otherwise the oldest go first
    replicas: int = 1  # R1 embedded, R3 on a cluster (broker.nats.cluster.replicas_for)


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subject: str
    ack_wait_s: float
    max_deliver: int  # -1: unbounded
    max_ack_pending: int = 4096
    replicas: int = 1  # as its stream's: a consumer's state survives the node it led on


def stream_specs(limits: StreamLimits, agencies: list[str], replicas: int = 1) -> list[StreamSpec]:
    """One ingress stream per agency (JetStream de-duplicates message ids per stream, so
    one agency can never make another's message id a duplicate), then the shared ones;
    each with `replicas` copies on as many nodes."""
    return [
        dataclasses.replace(spec, replicas=replicas) for spec in _stream_specs(limits, agencies)
    ]


def _stream_specs(limits: StreamLimits, agencies: list[str]) -> list[StreamSpec]:
    window = max(300.0, limits.ack_wait_s * (limits.max_deliver + 1))
    ingress = [
        StreamSpec(
            ingress_stream(agency),
            (ingress_subject(agency), provider_ingress_family(agency)),
            work_queue=True,
            max_msg_size=limits.max_frame_bytes + HEADER_ROOM,
            max_age_s=0.0,
            duplicate_window_s=window,
            first_seq=ingress_first_seq(agency),
        )
        for agency in agencies
    ]
    kept = [
        (
            STREAM_DELIVER,
            tuple(_family(f("*", "*")) for f in (deliver_subject, alert_subject, notice_subject)),
            30 * _DAY,
        ),
        (STREAM_RECEIPTS, (_family(receipt_subject("*", "*")),), 7 * _DAY),
        (STREAM_DLQ, ("s284.dlq.>",), 90 * _DAY),
        (STREAM_CHECKPOINTS, (CHECKPOINT_SUBJECT,), 0.0),  # kept for ever
        (STREAM_DIRECTORY, (DIRECTORY_SUBJECT,), 0.0),  # every signed version, for ever
    ]
    return [
        *ingress,
        _confirm_stream(window),
        _outbox_stream(window),
        *(
            StreamSpec(
                name,
                subjects,
                work_queue=False,
                max_msg_size=MAX_PAYLOAD,
                max_age_s=age,
                duplicate_window_s=window,
                allow_direct=name == STREAM_DIRECTORY,
            )
            for name, subjects, age in kept
        ),
    ]


CONFIRM_MAX_BYTES = 4096  # ids, a time and a signature: a few hundred bytes


def _confirm_stream(window: float) -> StreamSpec:
    """Every agency's confirmations of receipt, until the gateway has recorded them."""
    subjects = (_family(confirm_subject("*")),)
    return StreamSpec(STREAM_CONFIRM, subjects, True, CONFIRM_MAX_BYTES, 0.0, window)  # noqa: FBT003 - positional dataclass


OUTBOX_MAX_AGE_S = 7 * _DAY  # past the reconciler's last re-send (hours), with room
OUTBOX_MAX_MSGS = 1_000_000  # unconfirmed frames kept at most; beyond, the oldest go


def _outbox_stream(window: float) -> StreamSpec:
    """Each sealed delivery until its recipient confirms it (broker/gateway/outbox.py): a
    work queue, so the reconciler's ack is the deletion; bounded by age and count."""
    return StreamSpec(
        STREAM_OUTBOX, ("s284.outbox.>",), work_queue=True,
        max_msg_size=MAX_PAYLOAD, max_age_s=OUTBOX_MAX_AGE_S,
        duplicate_window_s=window, max_msgs=OUTBOX_MAX_MSGS,
    )  # fmt: skip


def _family(pattern: str) -> str:
    """`s284.deliver.*.*` -> `s284.deliver.>`: every subject of that family."""
    return ".".join(pattern.split(".")[:2]) + ".>"


def consumer_specs(
    limits: StreamLimits,
    agencies: list[str],
    replicas: int = 1,
    providers: tuple[ProviderId, ...] = (),
) -> list[ConsumerSpec]:
    """The gateway's consumer on each ingress stream, then each agency's own consumers and
    each admitted provider's, each replicated like the streams."""
    own = [
        ConsumerSpec(c.stream, c.durable, c.filter_subject, limits.ack_wait_s, -1)
        for p in providers
        for c in provider_consumers(p)
    ]
    return [
        dataclasses.replace(spec, replicas=replicas)
        for spec in [*_consumer_specs(limits, agencies), *own]
    ]


def _consumer_specs(limits: StreamLimits, agencies: list[str]) -> list[ConsumerSpec]:
    specs = [
        ConsumerSpec(
            ingress_stream(a), GATEWAY_CONSUMER, INGRESS_ALL, limits.ack_wait_s,
            limits.max_deliver,
        )
        for a in agencies
    ]  # fmt: skip
    specs.append(
        # unbounded: a confirmation waits out a log outage rather than being dropped
        ConsumerSpec(STREAM_CONFIRM, GATEWAY_CONSUMER, _family(confirm_subject("*")),
                     limits.ack_wait_s, -1)
    )  # fmt: skip
    specs.append(
        # every unconfirmed frame waits as a pending (nak-delayed) message: room for all
        ConsumerSpec(STREAM_OUTBOX, GATEWAY_CONSUMER, "s284.outbox.>", limits.ack_wait_s, -1,
                     max_ack_pending=OUTBOX_MAX_MSGS)
    )  # fmt: skip
    for agency in agencies:
        specs += [
            ConsumerSpec(c.stream, c.durable, c.filter_subject, limits.ack_wait_s, -1)
            for c in agency_consumers(agency)
        ]
    return specs
