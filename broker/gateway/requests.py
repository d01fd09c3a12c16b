"""Notices and information requests in the gateway (docs/notices.md).

Two calls join the gateway's steps (broker/gateway/pipeline.py):

    5a requests   before the s 284 decision: a psa.notice or info.request names a readable
                  `respond_by` in the future (`request.bad_deadline`); an info.response
                  answers, by `in_reply_to`, a request the register holds
                  (`request.unknown`), sent by one of its recipients to its requester only
                  (`request.wrong_party`). Each a refusal the sender receives, recorded.
    7b register   after the records are durable (with the alert rows): delivered requests
                  enter the request register, one row per recipient; a delivered answer
                  marks its request answered.

The deadline is read from the payload here, once, and kept in the register's structured
columns: the statistics never read a payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from broker.errors import ReasonCode, Refusal
from broker.gateway.stages import Recorded
from broker.wire.envelope import Envelope, Kind
from routing import Answer, OpenRequest, RequestRow

REQUEST_KINDS = frozenset({Kind.PSA_NOTICE, Kind.INFO_REQUEST})
VICTORIA = ZoneInfo("Australia/Melbourne")


def respond_by(env: Envelope, payload: dict[str, Any]) -> datetime:
    """The deadline of a notice or request: an RFC 3339 time with its zone, or a date (the
    end of that day in Victoria); later than the message's `created_at`."""
    value = payload.get("respond_by")
    if not isinstance(value, str) or not value:
        raise _bad_deadline("payload.respond_by is missing (an RFC 3339 time or a date)")
    try:
        moment = _moment(value)
    except ValueError:
        raise _bad_deadline("payload.respond_by is not an RFC 3339 time or a date") from None
    if moment <= env.created_at:
        raise _bad_deadline("payload.respond_by is not after the message's created_at")
    return moment.astimezone(UTC)  # stored as UTC (SQLite keeps naive times)


def _moment(value: str) -> datetime:
    if len(value) == len("YYYY-MM-DD"):
        day = datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 - a date, zoned below
        return datetime.combine(day + timedelta(days=1), time(), VICTORIA)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(value)
    return moment


def _bad_deadline(detail: str) -> Refusal:
    return Refusal(ReasonCode.REQUEST_BAD_DEADLINE, detail)


def check(env: Envelope, payload: dict[str, Any], known: dict[str, list[RequestRow]]) -> None:
    """5a: refuse a request without a usable deadline, or an answer to no request of the
    sender's; `known` holds the register's rows of the batch's `in_reply_to` ids."""
    if env.kind in REQUEST_KINDS:
        respond_by(env, payload)
    elif env.kind is Kind.INFO_RESPONSE:
        _check_answer(env, known)


def _check_answer(env: Envelope, known: dict[str, list[RequestRow]]) -> None:
    rows = known.get(env.in_reply_to or "", [])
    if not rows:
        raise Refusal(
            ReasonCode.REQUEST_UNKNOWN,
            "in_reply_to names no notice or information request delivered through the broker",
        )
    mine = [r for r in rows if r.recipient == env.sender.agency.value]
    if not mine:
        raise Refusal(
            ReasonCode.REQUEST_WRONG_PARTY,
            "only a recipient of the request may answer it; this sender did not receive it",
        )
    requester = mine[0].from_agency
    if [r.value for r in env.recipients] != [requester]:
        raise Refusal(
            ReasonCode.REQUEST_WRONG_PARTY,
            f"an answer goes to the requester only: recipients must be [{requester}]",
        )


def answered_ids(envelopes: Iterable[Envelope]) -> list[str]:
    """The request ids the batch's answers name (5a's one register lookup)."""
    return [e.in_reply_to for e in envelopes if e.kind is Kind.INFO_RESPONSE and e.in_reply_to]


def opened(recorded: Iterable[Recorded]) -> list[OpenRequest]:
    """7b: the delivered notices and requests, one per recipient."""
    return [
        OpenRequest(
            request_id=env.id,
            recipient=d.ref.recipient.value,
            kind=env.kind.value,
            purpose=env.purpose.value,
            offender=env.offender,
            from_agency=env.sender.agency.value,
            from_unit=env.sender.unit,
            issued_at=item.msg.stored_at,
            respond_by=respond_by(env, item.routed.decided.opened.content.payload),
        )
        for item in recorded
        for env in [item.routed.decided.envelope]
        if env.kind in REQUEST_KINDS
        for d in item.routed.deliveries
        if d.ref.recipient in env.recipients  # not a subscriber's copy
    ]


def answers(recorded: Iterable[Recorded]) -> list[Answer]:
    """7b: the delivered answers."""
    return [
        Answer(env.in_reply_to, env.sender.agency.value, env.id, item.msg.stored_at)
        for item in recorded
        for env in [item.routed.decided.envelope]
        if env.kind is Kind.INFO_RESPONSE and env.in_reply_to
    ]
