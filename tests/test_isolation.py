"""Isolation the server enforces: whatever subject, reply subject or JetStream API request an
agency's credentials send, nothing is stored outside its own ingress stream, nothing of
another agency's is read, and no identity the running system holds can change a stream.

Every test runs with the per-user permissions, with them removed (so that the accounts
alone are shown to be the boundary), and with mutual TLS logins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from broker.errors import TransportError
from broker.ids import new_id
from broker.nats import config
from broker.nats.client import Connection
from broker.nats.config import (
    ADMIN,
    CHECKPOINT_SUBJECT,
    DIRECTORY_SUBJECT,
    STREAM_CHECKPOINTS,
    STREAM_CONFIRM,
    STREAM_DELIVER,
    STREAM_DIRECTORY,
    STREAM_DLQ,
    STREAM_RECEIPTS,
    AgencyConsumer,
    agency_consumers,
    confirm_subject,
    inbox_prefix,
    ingress_stream,
    ingress_streams,
    ingress_subject,
)
from broker.wire.envelope import Agency
from tests.conftest import Deployment, raw_nats, started_deployment
from tests.frames import craft

pytestmark = pytest.mark.nats

AGENCIES = [a.value for a in Agency]
STREAMS = [
    *ingress_streams(),
    STREAM_CONFIRM,
    STREAM_DELIVER,
    STREAM_RECEIPTS,
    STREAM_DLQ,
    STREAM_CHECKPOINTS,
    STREAM_DIRECTORY,
]
PULL = json.dumps({"batch": 1, "no_wait": True}).encode()


@pytest.fixture(params=["with-permissions", "accounts-only", "mutual-tls"])
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Deployment]:
    """The usual deployment; in `accounts-only` the agencies' users have no permissions;
    in `mutual-tls` each identity logs in with its client certificate instead of a password."""
    if request.param == "accounts-only":
        monkeypatch.setattr(config, "agency_permissions", lambda _agency: {})
    mutual_tls = request.param == "mutual-tls"
    async with started_deployment(tmp_path, mutual_tls=mutual_tls) as dep:
        yield dep


async def _nc(dep: Deployment, user: str) -> Client:
    async def quiet(_exc: Exception) -> None:
        return None  # permission violations are expected here

    return await raw_nats(dep.home, user, error_cb=quiet, max_reconnect_attempts=0)


async def _snapshot(admin: Client) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """Per stream: messages, last sequence and the whole configuration."""
    js = admin.jetstream()
    out = {}
    for name in STREAMS:
        info = await js.stream_info(name)
        out[name] = (info.state.messages, info.state.last_seq, info.config.as_dict())
    return out


def _protected(agency: str) -> list[str]:
    subjects = [CHECKPOINT_SUBJECT, DIRECTORY_SUBJECT, f"s284.dlq.ingress.{agency}"]
    for other in AGENCIES:
        subjects += [
            f"s284.deliver.{other}.risk.update",
            f"s284.alert.{other}.duty",
            f"s284.notice.{other}.{new_id()}",
            f"s284.receipt.{other}.{new_id()}",
        ]
        if other != agency:
            subjects += [ingress_subject(other), confirm_subject(other)]
    return subjects


def _private(agency: str) -> list[str]:
    return [
        f"s284.deliver.{agency}.risk.update",
        f"s284.alert.{agency}.duty",
        f"s284.notice.{agency}.{new_id()}",
        f"s284.receipt.{agency}.{new_id()}",
    ]


async def _seed(admin: Client, agency: str, marker: bytes, *, public: bool = True) -> None:
    """Something on every subject the agency may read, so that its pulls return data."""
    js = admin.jetstream()
    public_subjects = [CHECKPOINT_SUBJECT, DIRECTORY_SUBJECT] if public else []
    for subject in [*_private(agency), *public_subjects]:
        await js.publish(subject, marker, headers={"Nats-Msg-Id": new_id()})


async def _inject(nc: Client, agency: str, reply: str, acks: list[str]) -> None:
    """Every request the agency may send, with `reply` as its reply subject: a publish to
    its own ingress and confirmation subjects, a fetch on each of its consumers, acks of
    messages it received."""
    await nc.publish(ingress_subject(agency), b"not a frame", reply=reply)
    await nc.publish(confirm_subject(agency), b"not a confirmation", reply=reply)
    for consumer in agency_consumers(agency):
        await nc.publish(consumer.next_subject, PULL, reply=reply)
    for ack in acks:
        await nc.publish(ack, b"+NAK", reply=reply)


async def _pull(nc: Client, consumer: AgencyConsumer, timeout: float = 2.0) -> list[Msg]:
    """One message from a durable consumer, as the SDK fetches; [] if refused or empty."""
    try:
        sub = await nc.jetstream().pull_subscribe_bind(
            durable=consumer.durable, stream=consumer.stream
        )
        return await sub.fetch(1, timeout=timeout)
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
        return []


async def _real_ack_subjects(nc: Client, agency: str) -> list[str]:
    """Acks of messages the agency really received, to be re-sent with a forged reply."""
    subjects = []
    for consumer in agency_consumers(agency):
        [msg] = await _pull(nc, consumer)
        subjects.append(msg.reply)
    return subjects


async def test_reply_subject_injection_stores_nothing(deployment: Deployment) -> None:
    """For each agency, every request it may send (a publish to its own ingress or
    confirmation subject, a fetch or an ack on each of its consumers), with its reply
    subject set to a protected subject (checkpoints, directory, another agency's ingress or
    confirmations, any delivery, alert, notice, receipt or dead letter), stores nothing:
    only its own ingress stream and the confirmation stream grow, by its publishes."""
    admin = await _nc(deployment, ADMIN)
    for agency in AGENCIES:
        await _seed(admin, agency, b"seed")
    before = await _snapshot(admin)
    expected_ingress = dict.fromkeys(AGENCIES, 0)
    for agency in AGENCIES:
        nc = await _nc(deployment, agency)
        acks = await _real_ack_subjects(nc, agency)
        for reply in _protected(agency):
            await _inject(nc, agency, reply, acks)
            expected_ingress[agency] += 1
        await nc.flush()
        await nc.close()
    await asyncio.sleep(1.0)
    after = await _snapshot(admin)
    await admin.close()
    for agency in AGENCIES:
        stream = ingress_stream(agency)
        assert after[stream][0] == before[stream][0] + expected_ingress[agency]
        assert after[stream][2] == before[stream][2]
    confirmed = after[STREAM_CONFIRM][0] - before[STREAM_CONFIRM][0]
    assert confirmed == sum(expected_ingress.values())  # each agency's own, nothing else
    for name in STREAMS:
        if name not in [*ingress_streams(), STREAM_CONFIRM]:
            assert after[name] == before[name], f"{name} changed"


async def _snoop(nc: Client, victim: str) -> list[bytes]:
    """Try every way to read the victim's data; return whatever bytes came back."""
    seen: list[bytes] = []

    async def keep(msg: Any) -> None:
        seen.append(msg.data)

    for subject in (
        f"s284.*.{victim}.>",
        confirm_subject(victim),
        f"{inbox_prefix(victim)}.>",
        ">",
    ):
        try:
            await nc.subscribe(subject, cb=keep)
        except nats.errors.Error:
            continue
    for consumer in agency_consumers(victim):
        seen += [msg.data for msg in await _pull(nc, consumer, timeout=0.5)]
    return seen


def _secret(agency: str) -> bytes:
    return f"secret-for-{agency}".encode()


async def test_no_agency_reads_another_agencys_data(deployment: Deployment) -> None:
    """Each agency subscribing to another's subjects and inbox (or to everything) and
    pulling from each of its consumers gets none of its messages, stored before or
    published while it listens; each agency itself still gets its own."""
    admin = await _nc(deployment, ADMIN)
    for victim in AGENCIES:
        await _seed(admin, victim, _secret(victim), public=False)
    snoopers = {agency: await _nc(deployment, agency) for agency in AGENCIES}
    pairs = [(a, v) for a in AGENCIES for v in AGENCIES if v != a]
    seen = await asyncio.gather(*(_snoop(snoopers[a], v) for a, v in pairs))
    for victim in AGENCIES:
        await _seed(admin, victim, _secret(victim), public=False)
    await asyncio.sleep(1.0)
    for agency in AGENCIES:
        await snoopers[agency].close()
    leaks = [
        pair
        for pair, got in zip(pairs, seen, strict=True)
        if any(_secret(pair[1]) in data for data in got)
    ]
    assert leaks == []
    for agency in AGENCIES:
        own = await _nc(deployment, agency)
        got = await _pull(own, agency_consumers(agency)[0])
        await own.close()
        assert [msg.data for msg in got] == [_secret(agency)]
    await admin.close()


async def _refused(nc: Client, subject: str, body: bytes) -> bool:
    """True when the server did not carry the request out (no reply, or an API error)."""
    try:
        reply = await nc.request(subject, body, timeout=1.0)
    except (nats.errors.Error, TimeoutError):
        return True
    return "error" in json.loads(reply.data or b"{}")


def _admin_requests(stream: str, cfg: dict[str, Any]) -> list[tuple[str, bytes]]:
    cut = json.dumps({**cfg, "max_msgs": 1}).encode()
    return [
        (f"$JS.API.STREAM.UPDATE.{stream}", cut),
        (f"$JS.API.STREAM.DELETE.{stream}", b""),
        (f"$JS.API.STREAM.PURGE.{stream}", b""),
        (f"$JS.API.STREAM.MSG.DELETE.{stream}", b'{"seq": 1}'),
        (f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.evil", b'{"durable_name": "evil"}'),
        (f"$JS.API.CONSUMER.DELETE.{stream}.gateway", b""),
    ]


async def test_running_identities_cannot_change_streams(deployment: Deployment) -> None:
    """Neither the gateway nor any agency can update (e.g. `max_msgs=1`), delete or purge a
    stream, delete one of its messages, or create or delete a consumer: every stream is
    exactly as before."""
    admin = await _nc(deployment, ADMIN)
    await _seed(admin, "police", b"seed")
    before = await _snapshot(admin)
    requests = [r for s in STREAMS for r in _admin_requests(s, before[s][2])]
    for user in ["gateway", *AGENCIES]:
        nc = await _nc(deployment, user)
        results = await asyncio.gather(*(_refused(nc, subj, body) for subj, body in requests))
        await nc.close()
        assert all(results), (
            user,
            [r[0] for r, ok in zip(requests, results, strict=True) if not ok],
        )
    assert await _snapshot(admin) == before
    await admin.close()


async def test_message_ids_are_deduplicated_per_agency(deployment: Deployment) -> None:
    """Police publishing under a message id Corrections already used is stored, not taken
    for a duplicate; Corrections re-publishing its own id is de-duplicated as before; each
    agency's ingress sequences lie in a range of their own."""
    mid = new_id()
    corrections, police = await _nc(deployment, "corrections"), await _nc(deployment, "police")
    headers = {"Nats-Msg-Id": mid}
    first = await corrections.jetstream().publish(
        ingress_subject("corrections"), b"c", headers=headers
    )
    other = await police.jetstream().publish(ingress_subject("police"), b"p", headers=headers)
    again = await corrections.jetstream().publish(
        ingress_subject("corrections"), b"c", headers=headers
    )
    await corrections.close()
    await police.close()
    assert not other.duplicate
    assert again.duplicate
    assert first.seq != other.seq


async def test_nats_msg_id_must_equal_the_message_id(deployment: Deployment, gateway) -> None:
    """A well-signed frame whose Nats-Msg-Id header is another id, or missing, is refused
    with frame.msg_id_mismatch and delivered to no one."""
    directory = deployment.home.directory()
    async with await deployment.client("corrections") as sender:
        for headers in ({"Nats-Msg-Id": new_id()}, {}):
            mid, frame = craft(deployment.home.identity("corrections"), directory)
            await sender.publish_unchecked(frame, headers)
            receipt = await sender.receipt(mid, timeout=10)
            assert receipt.reason == "frame.msg_id_mismatch"
    async with await deployment.client("police") as police:
        assert [d async for d in police.inbox()] == []


async def test_agency_cannot_publish_outside_its_ingress(deployment: Deployment) -> None:
    """Police's SDK publishing on DFFH's ingress or confirmation subject gets a clear
    error, not a receipt."""
    conn = await Connection.connect(
        deployment.home.nats_url, deployment.home.credentials("police"), name="t"
    )
    try:
        with pytest.raises(TransportError):
            await conn.publish(ingress_subject("dffh"), b"x", new_id(), attempts=2)
        with pytest.raises(TransportError):
            await conn.publish(confirm_subject("dffh"), b"x", new_id(), attempts=2)
    finally:
        await conn.close()
