"""Funded services as parties, against a real nats-server and gateway: a housing provider
funded by DFFH (`dffh/hearth-housing`) made its own keys in its own home, the operator
admitted it, and it connects with its own NATS login. Each party uses only its own home."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from click.testing import CliRunner
from nats.aio.client import Client

from audit import AuditStore
from broker.cli.main import cli
from broker.funded import admit_provider
from broker.home import AgencyHome, Home
from broker.nats.config import (
    ADMIN,
    STREAM_RECEIPTS,
    inbox_prefix,
    ingress_stream,
    ingress_subject,
    provider_ingress_subject,
    receipt_consumer,
)
from broker.nats.server import NatsServer
from broker.nats.tls import client_context
from broker.runtime import gateway_running, provision
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import Agency, Envelope, Receipt, Sender
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.providers import ProviderId
from broker.wire.sealing import TYP_RECEIPT, seal_ingress, verify_by
from tests.conftest import free_port, raw_nats

pytestmark = pytest.mark.nats

HEARTH = ProviderId(Agency.DFFH, "hearth-housing")


@dataclass
class Funded:
    home: Home  # the broker operator's
    provider: AgencyHome  # the provider's own, apart from the broker's and the funder's
    funder: AgencyHome  # DFFH's own
    settings: Settings

    def directory(self) -> KeyDirectory:
        return self.home.directory()


@contextlib.asynccontextmanager
async def funded_deployment(tmp_path: Path) -> AsyncIterator[Funded]:
    home = Home(tmp_path / "home")
    port = free_port()
    home.init(port)
    _, request = AgencyHome.create(tmp_path / "hearth", HEARTH.identity, "housing")
    admitted = admit_provider(home, request)  # what `s284 provider admit` does
    provider = AgencyHome(tmp_path / "hearth")
    pinned = json.loads(home.directory_public_path.read_text())
    provider.trust(home.nats_url, home.credentials(admitted.provider.user), pinned)
    server = NatsServer(home.nats_conf, port, tmp_path / "nats.log")
    await server.start()
    settings = Settings(home=home.path, ack_wait_s=3.0)
    try:
        await provision(settings)
        async with gateway_running(settings, asyncio.Event()):
            yield Funded(home, provider, home.agency_home("dffh"), settings)
    finally:
        await server.stop()


@pytest.fixture
async def funded(tmp_path: Path) -> AsyncIterator[Funded]:
    async with funded_deployment(tmp_path) as dep:
        yield dep


async def _connect(party: AgencyHome) -> Client:
    """A connection with the party's own login, from its own home only."""
    url, creds = party.connection()

    async def quiet(_exc: Exception) -> None:
        return None  # permission violations are expected in some tests

    return await nats.connect(
        url,
        user=creds.user,
        password=creds.password.get_secret_value(),
        tls=client_context(creds.ca, creds.cert, creds.key),
        inbox_prefix=inbox_prefix(creds.user).encode(),
        error_cb=quiet,
        max_reconnect_attempts=0,
    )


def _frame(signer: Identity, directory: KeyDirectory, role: str, agency: str = "dffh") -> Envelope:
    return Envelope(
        sender=Sender(agency=Agency(agency), unit="hearth", person_id="hw-0007", role=role),
        kind="service.progress",
        purpose="csp_service_delivery",
        offender="S284-000777",
        order_status="supervision_order",
        recipients=[Agency.DFFH],
    )


async def _publish(
    party: AgencyHome, subject: str, signer: Identity, directory: KeyDirectory, role: str
) -> str:
    env = _frame(signer, directory, role)
    frame = seal_ingress(env, {"attended": True, "session": 4}, signer, directory)
    nc = await _connect(party)
    try:
        await nc.jetstream().publish(subject, frame, headers={"Nats-Msg-Id": env.id})
    finally:
        await nc.close()
    return env.id


async def _receipt(
    party: AgencyHome, user: str, directory: KeyDirectory, wait: float = 20.0
) -> Receipt | None:
    """The next receipt on the party's own receipt consumer (None if none comes in `wait`
    seconds; where none is expected, the expected receipt of the same batch came first)."""
    nc = await _connect(party)
    try:
        sub = await nc.jetstream().pull_subscribe_bind(
            durable=receipt_consumer(user), stream=STREAM_RECEIPTS
        )
        try:
            [msg] = await sub.fetch(1, timeout=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return None
        await msg.ack()
        body = verify_by(msg.data.decode(), directory, GATEWAY, TYP_RECEIPT)
        return Receipt.model_validate_json(body)
    finally:
        await nc.close()


def _provider_key(dep: Funded) -> Identity:
    return dep.provider.keyring().generations[-1]


def _funder_key(dep: Funded) -> Identity:
    return dep.funder.keyring().generations[-1]


def _records(dep: Funded, message_id: str | None) -> list[dict[str, Any]]:
    return AuditStore.open(dep.settings.database_url).records(message_id)


async def test_provider_message_is_recorded_as_the_provider_and_answered_to_it(
    funded: Funded,
) -> None:
    """The provider's progress report, sent on its own subject with its own key and a role of
    its service, is disclosed to DFFH, whose SDK verifies the provider's signature and names
    it; the log (and `s284 audit accounting`) names the provider beside its funder; the
    receipt reaches the provider, not DFFH."""
    directory = funded.directory()
    subject = provider_ingress_subject(HEARTH)
    sent = await _publish(
        funded.provider, subject, _provider_key(funded), directory, "housing_provider"
    )
    receipt = await _receipt(funded.provider, HEARTH.user, directory)
    assert receipt is not None
    assert (receipt.message_id, receipt.status) == (sent, "accepted")
    [record] = [r for r in _records(funded, sent) if r["event"] == "disclosed"]
    assert record["sender_agency"] == "dffh"
    assert record["sender_provider"] == "dffh/hearth-housing"
    assert record["recipient_agency"] == "dffh"
    assert await _receipt(funded.funder, "dffh", directory, wait=2.0) is None  # not DFFH's
    async with await AgencyClient.from_agency_home(funded.funder.path) as dffh:
        delivered = [item async for item in dffh.inbox(idle_timeout=3.0)]
    assert [(d.envelope.id, d.provider) for d in delivered] == [(sent, "dffh/hearth-housing")]
    shown = CliRunner().invoke(
        cli, ["audit", "accounting", "S284-000777", "--db", funded.settings.database_url]
    )
    assert shown.exit_code == 0, shown.output
    assert "dffh (dffh/hearth-housing) -> dffh  csp_service_delivery" in shown.output


async def test_the_providers_system_uses_the_sdk_from_its_own_home(funded: Funded) -> None:
    """`AgencyClient.from_agency_home` on the provider's home: it sends as its funder's
    funded service in its service's role by default, publishes on its own subject and gets
    its receipt; the broker kept the receipt on the provider's consumer too."""
    async with await AgencyClient.from_agency_home(funded.provider.path) as hearth:
        assert hearth.agency is Agency.DFFH
        receipt = await hearth.send(
            kind="service.progress",
            purpose="csp_service_delivery",
            offender="S284-000777",
            order_status="supervision_order",
            to=["dffh"],
            payload={"attended": True, "session": 5},
        )
        assert (receipt.status, receipt.reason) == ("accepted", None)
        assert [r.message_id for r in await hearth.stored_receipts()] == [receipt.message_id]
    [record] = [r for r in _records(funded, receipt.message_id) if r["event"] == "disclosed"]
    assert record["sender_provider"] == "dffh/hearth-housing"
    assert record["inputs"]["sender_role"] == "housing_provider"


async def test_a_provider_key_on_the_funders_subject_is_refused(funded: Funded) -> None:
    """DFFH's system publishing a frame signed with the provider's key (a key that leaked)
    on DFFH's subject is refused `auth.provider_mismatch`, and DFFH is told."""
    directory = funded.directory()
    sent = await _publish(
        funded.funder, ingress_subject("dffh"), _provider_key(funded), directory, "system"
    )
    receipt = await _receipt(funded.funder, "dffh", directory)
    assert receipt is not None
    assert (receipt.message_id, receipt.status) == (sent, "refused")
    assert receipt.reason == "auth.provider_mismatch"


async def test_the_funders_key_on_the_providers_subject_is_refused(funded: Funded) -> None:
    """The provider cannot pass for its funder: a frame signed with DFFH's key on the
    provider's subject is refused `auth.provider_mismatch`, recorded as the provider's."""
    directory = funded.directory()
    subject = provider_ingress_subject(HEARTH)
    await _publish(funded.provider, subject, _funder_key(funded), directory, "system")
    receipt = await _receipt(funded.provider, HEARTH.user, directory)
    assert receipt is not None
    assert receipt.reason == "auth.provider_mismatch"
    # refused before the id was authenticated: the record holds no message id
    [record] = [r for r in _records(funded, None) if r["event"] == "refused"]
    assert record["sender_provider"] == "dffh/hearth-housing"
    assert record["reason_code"] == "auth.provider_mismatch"


async def test_a_role_binds_to_the_service_the_directory_names(funded: Funded) -> None:
    """The provider may not send as a DFFH case manager, and DFFH may not send as a housing
    provider: `auth.service_role`, judged from the key directory, not the envelope."""
    directory = funded.directory()
    await _publish(
        funded.provider,
        provider_ingress_subject(HEARTH),
        _provider_key(funded),
        directory,
        "case_manager",
    )
    receipt = await _receipt(funded.provider, HEARTH.user, directory)
    assert receipt is not None
    assert receipt.reason == "auth.service_role"
    await _publish(
        funded.funder, ingress_subject("dffh"), _funder_key(funded), directory, "housing_provider"
    )
    receipt = await _receipt(funded.funder, "dffh", directory)
    assert receipt is not None
    assert receipt.reason == "auth.service_role"


async def _last_seq(admin: Client, stream: str) -> int:
    return int((await admin.jetstream().stream_info(stream)).state.last_seq)


async def _try_publish(party: AgencyHome, subject: str) -> None:
    nc = await _connect(party)
    try:
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
            await nc.jetstream().publish(subject, b"x.y.z", timeout=2)
    finally:
        await nc.close()


async def test_the_server_keeps_each_party_to_its_own_subjects(funded: Funded) -> None:
    """With its own login, the provider cannot put anything on DFFH's ingress subject, nor
    DFFH on the provider's; DFFH's login hears nothing of the provider's receipts."""
    admin = await raw_nats(funded.home, ADMIN)
    try:
        before = await _last_seq(admin, ingress_stream("dffh"))
        await _try_publish(funded.provider, ingress_subject("dffh"))
        await _try_publish(funded.funder, provider_ingress_subject(HEARTH))
        await _try_publish(funded.provider, ingress_subject("corrections"))
        assert await _last_seq(admin, ingress_stream("dffh")) == before
        dffh = await _connect(funded.funder)
        heard: list[bytes] = []

        async def hear(msg: Any) -> None:
            heard.append(msg.data)

        await dffh.subscribe("s284.receipt.p.dffh.hearth-housing.>", cb=hear)
        await dffh.flush()
        directory = funded.directory()
        subject = provider_ingress_subject(HEARTH)
        await _publish(
            funded.provider, subject, _provider_key(funded), directory, "housing_provider"
        )
        assert await _receipt(funded.provider, HEARTH.user, directory) is not None
        await dffh.flush()
        assert heard == []
        await dffh.close()
    finally:
        await admin.close()
