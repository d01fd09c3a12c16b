"""`s284 demo`: a scripted multi-agency scenario that shows what the broker lets through
and what it refuses, then checks every recipient's inbox.

Three lawful flows are accepted and delivered (Corrections -> Police and Health,
Health -> Corrections, DFFH -> Corrections); four frames from a misbehaving or hostile
sender are refused, each with its reason code (a purpose outside s 284, a forged
signature, a replay, a risk_reduction disclosure without a justification). All data is
synthetic. Nothing here logs or prints a payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from broker.demo.report import ACCEPTED, Report, Sent, print_report
from broker.demo.routing import play_routing
from broker.errors import BrokerError, ConfigError, ReasonCode, ReceiptTimeoutError
from broker.gateway.checkpoints import verify_home_log
from broker.home import GATEWAY, Home
from broker.ids import new_id
from broker.nats.server import free_loopback_ports
from broker.runtime import Started, run_embedded
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import (
    MAP_AGENCIES,
    Agency,
    Envelope,
    IngressClaims,
    Kind,
    Purpose,
    Receipt,
    SealedContent,
    Sender,
)
from broker.wire.jose import b64u, b64u_decode, jwe_encrypt, jws_sign
from broker.wire.sealing import TYP_INGRESS, VerifiedDelivery, seal_ingress


def _say(text: str, *, err: bool = False) -> None:
    """The demo's user-facing lines (it prints; it is not a CLI, so no click)."""
    (sys.stderr if err else sys.stdout).write(text + "\n")


UNLISTED_PURPOSE = "general_interest"  # not one of the eight s 284 grounds
RECEIPT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
ROLES = {
    Agency.POLICE: "designated_contact",
    Agency.CORRECTIONS: "case_manager",
    Agency.DFFH: "housing_worker",
    Agency.HEALTH: "clinician",
}

# -- the script --------------------------------------------------------------------------

Forge = Callable[[Home, Envelope, dict[str, Any]], bytes]


@dataclass(frozen=True)
class Step:
    """One scripted message and the answer the gateway should give (accepted or a code)."""

    name: str
    sender: Agency
    to: tuple[Agency, ...]
    kind: Kind
    purpose: Purpose
    offender: str
    payload: dict[str, Any]
    expect: str = ACCEPTED
    extra: dict[str, str] = field(default_factory=dict)


RISK_UPDATE = Step(
    "Corrections risk.update to Police and Health (offender_management)",
    Agency.CORRECTIONS,
    (Agency.POLICE, Agency.HEALTH),
    Kind.RISK_UPDATE,
    Purpose.OFFENDER_MANAGEMENT,
    "S284-000101",
    {
        "risk_rating": "elevated",
        "assessment_tool": "synthetic-dynamic-review",
        "review_in_days": 14,
        "conditions_reviewed": ["curfew", "exclusion_zone"],
    },
)
TREATMENT = Step(
    "Health service.progress to Corrections (treatment, offender_management)",
    Agency.HEALTH,
    (Agency.CORRECTIONS,),
    Kind.SERVICE_PROGRESS,
    Purpose.OFFENDER_MANAGEMENT,
    "S284-000101",
    {
        "programme": "synthetic-treatment-programme",
        "sessions_scheduled": 8,
        "sessions_attended": 7,
        "engagement": "consistent",
    },
)
HOUSING = Step(
    "DFFH service.progress to Corrections (housing, csp_service_delivery)",
    Agency.DFFH,
    (Agency.CORRECTIONS,),
    Kind.SERVICE_PROGRESS,
    Purpose.CSP_SERVICE_DELIVERY,
    "S284-000102",
    {
        "housing_status": "transitional",
        "placement_ref": "HSG-DEMO-0042",
        "tenancy_review_in_days": 28,
    },
    extra={"order_status": "supervision_order"},
)
UNLISTED = Step(
    f"Corrections risk.update to Police for unlisted purpose {UNLISTED_PURPOSE!r}",
    Agency.CORRECTIONS,
    (Agency.POLICE,),
    Kind.RISK_UPDATE,
    Purpose.OFFENDER_MANAGEMENT,
    "S284-000103",
    {"risk_rating": "moderate"},
    ReasonCode.ENVELOPE_UNKNOWN_PURPOSE.value,
)
BAD_SIGNATURE = Step(
    "Corrections risk.update to Police with a tampered signature",
    Agency.CORRECTIONS,
    (Agency.POLICE,),
    Kind.RISK_UPDATE,
    Purpose.OFFENDER_MANAGEMENT,
    "S284-000104",
    {"risk_rating": "low"},
    ReasonCode.AUTH_BAD_SIGNATURE.value,
)
REPLAY = Step(
    "Replay of the Corrections risk.update (same bytes, new Nats-Msg-Id)",
    RISK_UPDATE.sender,
    RISK_UPDATE.to,
    RISK_UPDATE.kind,
    RISK_UPDATE.purpose,
    RISK_UPDATE.offender,
    RISK_UPDATE.payload,
    ReasonCode.REPLAY_DUPLICATE_ID.value,
)
NO_JUSTIFICATION = Step(
    "Corrections risk.alert to Police for risk_reduction without a justification",
    Agency.CORRECTIONS,
    (Agency.POLICE,),
    Kind.RISK_ALERT,
    Purpose.RISK_REDUCTION,
    "S284-000105",
    {"alert_level": "high", "window_hours": 48},
    ReasonCode.POLICY_DENIED.value,
)


# -- frames a misbehaving system would send ----------------------------------------------


def _unlisted_purpose(home: Home, env: Envelope, payload: dict[str, Any]) -> bytes:
    """A correctly signed and sealed frame whose envelope names a purpose outside s 284."""
    content = SealedContent(envelope=env, payload=payload).model_dump(mode="json")
    content["envelope"]["purpose"] = UNLISTED_PURPOSE
    gateway = home.directory().encryption_key_for(GATEWAY)
    if not isinstance(gateway.key, X25519PublicKey):
        raise ConfigError("the gateway's encryption key in the directory is not X25519")
    sealed = jwe_encrypt(
        json.dumps(content).encode(), gateway.key, gateway.kid, {"s284_id": env.id}
    )
    claims = IngressClaims(
        id=env.id, created_at=env.created_at, agency=env.sender.agency, sealed=sealed
    )
    sender = home.identity(env.sender.agency.value)
    token = jws_sign(claims.model_dump_json().encode(), sender.signing, sender.sig_kid, TYP_INGRESS)
    return token.encode("ascii")


def _tampered(frame: bytes) -> bytes:
    """The same frame with one bit of its signature flipped."""
    head, body, sig = frame.decode("ascii").split(".")
    raw = bytearray(b64u_decode(sig))
    raw[0] ^= 0x01
    return f"{head}.{body}.{b64u(bytes(raw))}".encode("ascii")


def _bad_signature(home: Home, env: Envelope, payload: dict[str, Any]) -> bytes:
    sender = home.identity(env.sender.agency.value)
    return _tampered(seal_ingress(env, payload, sender, home.directory()))


# -- playing the script ------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    home: Home
    clients: dict[Agency, AgencyClient]


async def _receipt(client: AgencyClient, message_id: str) -> Receipt | None:
    try:
        return await client.receipt(message_id, RECEIPT_TIMEOUT_S)
    except ReceiptTimeoutError:
        return None


async def _send(scene: Scene, step: Step, forge: Forge | None = None) -> Sent:
    client = scene.clients[step.sender]
    env = client.envelope(
        kind=step.kind, purpose=step.purpose, offender=step.offender, to=step.to, **step.extra
    )
    frame = (
        client.seal(env, step.payload) if forge is None else forge(scene.home, env, step.payload)
    )
    await client.publish_frame(frame, env.id)
    return Sent(step, env.id, frame, await _receipt(client, env.id))


async def _replay(scene: Scene, original: Sent) -> Sent:
    """Re-publish the exact bytes under a fresh Nats-Msg-Id, so JetStream cannot de-duplicate.

    The gateway answers on the original message id; a receipt arriving before we wait for
    it is kept by the client (`_early`), so publishing first and then waiting is safe.
    """
    client = scene.clients[REPLAY.sender]
    await client.publish_unchecked(original.frame, {"Nats-Msg-Id": f"replay-{new_id()}"})
    return Sent(
        REPLAY, original.message_id, original.frame, await _receipt(client, original.message_id)
    )


async def _play(scene: Scene) -> list[Sent]:
    risk = await _send(scene, RISK_UPDATE)
    sent = [risk, await _send(scene, TREATMENT), await _send(scene, HOUSING)]
    sent.append(await _send(scene, UNLISTED, _unlisted_purpose))
    sent.append(await _send(scene, BAD_SIGNATURE, _bad_signature))
    sent.append(await _replay(scene, risk))
    sent.append(await _send(scene, NO_JUSTIFICATION))
    return sent


def _sender(agency: Agency) -> Sender:
    return Sender(
        agency=agency, unit="demo-unit", person_id=f"demo-{agency.value}-01", role=ROLES[agency]
    )


@contextlib.asynccontextmanager
async def _clients(home: Path) -> AsyncIterator[dict[Agency, AgencyClient]]:
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for agency in MAP_AGENCIES:
            client = await AgencyClient.from_home(home, agency.value, _sender(agency))
            clients[agency] = await stack.enter_async_context(client)
        yield clients


async def _drain(client: AgencyClient) -> list[VerifiedDelivery]:
    return [item async for item in client.inbox(follow=False)]


async def _scenario(home_path: Path, strict: bool) -> Report:
    started = time.monotonic()
    async with _clients(home_path) as clients:
        sent = await _play(Scene(Home(home_path), clients))
        drained = await asyncio.gather(*(_drain(c) for c in clients.values()))
    inboxes = dict(zip(clients, drained, strict=True))
    return Report(sent, inboxes, strict, time.monotonic() - started)


# -- the embedded deployment -------------------------------------------------------------


async def _until_started(task: asyncio.Task[None], ready: asyncio.Future[Started]) -> Started:
    either: set[asyncio.Future[Any]] = {task, ready}
    await asyncio.wait(either, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        return ready.result()
    if task.done():
        task.result()  # raises why the deployment did not start
    raise ConfigError(f"the embedded deployment did not start within {START_TIMEOUT_S:.0f} s")


async def _shutdown(task: asyncio.Task[None], stop: asyncio.Event) -> BaseException | None:
    stop.set()
    _, pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
    if pending:
        task.cancel()
        await asyncio.wait({task})
    return None if task.cancelled() else task.exception()


@contextlib.asynccontextmanager
async def _embedded(settings: Settings) -> AsyncIterator[Started]:
    """run_embedded until the block ends; stopped (and awaited) however the block ends."""
    stop = asyncio.Event()
    ready: asyncio.Future[Started] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_embedded(settings, ready.set_result, stop))
    try:
        yield await _until_started(task, ready)
    except BaseException:
        await _shutdown(task, stop)  # the scenario's error is the one worth reporting
        raise
    error = await _shutdown(task, stop)
    if error is not None:
        raise error


def _fresh_settings(home: Path) -> Settings:
    nats_port, http_port = free_loopback_ports(2)
    return Settings(home=home, nats_port=nats_port, http_port=http_port, nats_url=None, db_url=None)


async def run_demo(as_json: bool) -> int:
    """The scenario on a fresh embedded deployment in a temporary home; 0 if all held."""
    with tempfile.TemporaryDirectory(prefix="s284-demo-") as tmp:
        async with _embedded(_fresh_settings(Path(tmp) / "home")) as started:
            report = await _scenario(started.home.path, strict=True)
            routed = await play_routing(started.home, started.http_url or "", started.database_url)
        log = await asyncio.to_thread(verify_home_log, started.home)  # after the last checkpoint
        report = replace(report, log=log, routing=tuple(routed.checks))
    print_report(report, as_json)
    return 0 if report.ok else 1


async def run_demo_against(home_path: Path) -> None:
    """The scenario against a deployment already running at `home_path` (`s284 up --demo`).

    Reading the inboxes acknowledges whatever is waiting there, demo or not.
    """
    try:
        report = await _scenario(home_path, strict=False)
    except BrokerError as exc:
        _say(f"demo failed: {exc}", err=True)
        return
    print_report(report, as_json=False)
