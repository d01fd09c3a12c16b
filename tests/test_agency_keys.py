"""Agency-owned keys and the signed, versioned key directory (issue 11 B).

Four agency homes that each hold only their own private keys exchange messages through
the real gateway and nats-server; the operator rotates and revokes keys while messages
flow; a bad registration request or directory is refused with a specific message and
nothing already accepted is lost."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.errors import ConfigError, DirectoryError, RegistrationError
from broker.gateway import steps
from broker.home import AGENCY_NAMES, GATEWAY, AgencyHome, Home, read_request
from broker.nats.client import Connection
from broker.nats.config import DIRECTORY_SUBJECT
from broker.sdk import AgencyClient
from broker.wire import directory as keydir
from broker.wire.envelope import Agency
from broker.wire.jose import jws_sign, jws_unverified_header
from broker.wire.keys import DirectoryHolder, Identity, KeyDirectory
from tests.conftest import Deployment, s284
from tests.frames import craft, envelope_dict

UPDATE = {
    "kind": "service.progress",
    "purpose": "offender_management",
    "offender": "S284-000710",
    "payload": {"programme": "MBCP", "sessions_attended": 3},
}


def _operate(home: Home, change: Callable[[KeyDirectory, datetime], KeyDirectory]) -> int:
    """What `s284 directory add|rotate|revoke` does: the next version, signed, in the home."""
    new = change(home.directory(), datetime.now(UTC))
    home.write_directory(home.directory_key().sign(new))
    return new.version


async def _gateway_holds(running: Any, version: int) -> None:
    for _ in range(100):
        if running.directory.version >= version:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the gateway never adopted directory version {version}")


async def _client_holds(client: AgencyClient, version: int) -> None:
    """The gateway publishes a version it adopted a moment later: poll as the SDK would."""
    for _ in range(100):
        await client.refresh_directory(force=True)
        if client.directory_version >= version:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the client never picked up directory version {version}")


def _client(dep: Deployment, agency: str) -> Any:
    return AgencyClient.from_agency_home(dep.home.agency_home(agency).path)


def _kid(frame: bytes) -> str:
    return str(jws_unverified_header(frame.decode())["kid"])


# -- agency homes and registration requests (no server) ------------------------------------


def test_agency_init_keeps_private_keys_private_and_requests_only_public_ones(tmp_path):
    """`s284 agency init` creates the keys in a 0700 folder as 0600 files, and a request
    whose keys are public, named by their RFC 7638 thumbprints, signed by the new key."""
    result = s284("agency", "init", "--agency", "police", "--dir", str(tmp_path / "pol"))
    assert result.returncode == 0, result.stderr
    keys = tmp_path / "pol" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in keys.iterdir()] == [0o600]
    request = json.loads((tmp_path / "pol" / "registration-1.json").read_text())
    assert all("d" not in jwk for jwk in request["keys"])
    reg = read_request(tmp_path / "pol" / "registration-1.json")
    assert (reg.identity, reg.sig.kid) == ("police", request["keys"][0]["kid"])
    again = s284("agency", "init", "--agency", "police", "--dir", str(tmp_path / "pol"))
    assert again.returncode == 1
    assert "already holds an agency's keys" in again.stderr


def _request(tmp_path: Path, agency: str = "police") -> dict[str, Any]:
    _, path = AgencyHome.create(tmp_path / agency, agency)
    return dict(json.loads(path.read_text()))


def test_registration_whose_kid_is_not_its_thumbprint_is_refused(tmp_path):
    """The operator's `directory add` names the key whose id is not its thumbprint."""
    request = _request(tmp_path)
    request["keys"][1]["kid"] = "not-a-thumbprint"
    with pytest.raises(RegistrationError, match="not the RFC 7638 thumbprint"):
        keydir.verify_registration(request)


def test_registration_not_signed_by_its_own_key_is_refused(tmp_path):
    """A request signed by another key (no proof of possession), or altered after signing,
    is refused with a sentence saying which."""
    request = _request(tmp_path)
    other = Identity.generate("police")
    forged = {**request, "proof": jws_sign(b"{}", other.signing, other.sig_kid, "x")}
    with pytest.raises(RegistrationError, match="proof of possession does not verify"):
        keydir.verify_registration(forged)
    with pytest.raises(RegistrationError, match="does not match the request"):
        keydir.verify_registration({**request, "created_at": "2020-01-01T00:00:00Z"})
    with pytest.raises(RegistrationError, match="does not verify"):
        keydir.verify_registration({k: v for k, v in request.items() if k != "proof"})


def test_directory_cli_refuses_bad_requests_and_writes_versions(tmp_path):
    """The operator's commands: a bad request exits 1 with its reason and writes nothing;
    add, revoke and show each work on the verified current version."""
    home = Home(tmp_path / "home")
    home.init(4999)
    request = _request(tmp_path / "new")  # a second police key set, as a fresh request
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({**request, "keys": [request["keys"][0] | {"kid": "x"}, request["keys"][1]]})
    )
    h = ["--home", str(home.path)]
    refused = s284("directory", "add", *h, str(bad))
    assert refused.returncode == 1
    assert "not the RFC 7638 thumbprint" in refused.stderr
    assert home.directory().version == 1
    good = tmp_path / "good.json"
    good.write_text(json.dumps(request))
    assert "already has current keys" in s284("directory", "add", *h, str(good)).stderr
    rotated = s284("directory", "rotate", *h, str(good), "--overlap", "1h")
    assert rotated.returncode == 0, rotated.stderr
    revoked = s284("directory", "revoke", *h, "--agency", "dffh")
    assert revoked.returncode == 0, revoked.stderr
    shown = s284("directory", "show", *h)
    assert "key directory version 3" in shown.stdout
    assert shown.stdout.count("revoked") == 2
    gateway_kid = home.identity(GATEWAY).sig_kid
    assert "not an agency's" in s284("directory", "revoke", *h, "--kid", gateway_kid).stderr
    home.write_directory(keydir.DirectoryKey.generate().sign(home.directory()))
    tampered = s284("directory", "show", *h)
    assert tampered.returncode == 1
    assert "directory refused: signed by key" in tampered.stderr


def test_broker_home_holds_no_agency_private_key(tmp_path):
    """The embedded deployment's four agencies live in their own homes beside the broker's:
    no file in the broker's home holds an agency's private key, and each agency home holds
    its own agency's private keys only."""
    home = Home(tmp_path / "home")
    home.init(4999)
    secrets = {
        agency: [jwk["d"] for jwk in json.loads(p.read_text())["keys"]]
        for agency in AGENCY_NAMES
        for p in (home.agency_home(agency).keys_dir).iterdir()
    }
    broker_files = "".join(
        p.read_text(errors="replace") for p in home.path.rglob("*") if p.is_file()
    )
    assert not any(d in broker_files for ds in secrets.values() for d in ds)
    assert not home.agencies_path.is_relative_to(home.path)
    for agency in AGENCY_NAMES:
        ah = home.agency_home(agency).path
        text = "".join(p.read_text() for p in ah.rglob("*") if p.is_file())
        others = [d for a, ds in secrets.items() if a != agency for d in ds]
        assert all(d in text for d in secrets[agency])
        assert not any(d in text for d in others)
        assert stat.S_IMODE(ah.stat().st_mode) == 0o700
    assert home.directory().signing_key(home.identity(GATEWAY).sig_kid) is not None


# -- the directory's signature and version (no server) ----------------------------------


def test_unsigned_wrongly_signed_or_altered_directory_is_refused(tmp_path):
    """Each bad directory is refused with what is wrong; nothing in it is used."""
    home = Home(tmp_path / "home")
    home.init(4999)
    verifier = home.directory_verifier()
    current = home.directory()
    unsigned = keydir.canonical(keydir.to_document(current))
    with pytest.raises(DirectoryError, match="not a signed s284 directory"):
        verifier.verify(unsigned)
    with pytest.raises(DirectoryError, match="not the directory key"):
        verifier.verify(keydir.DirectoryKey.generate().sign(current))
    signed = json.loads(home.signed_directory())
    head, body, sig = signed["jws"].split(".")
    flipped = {**signed, "jws": f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"}
    with pytest.raises(DirectoryError, match="signature does not verify"):
        verifier.verify(json.dumps(flipped).encode())


def test_lower_version_is_refused_and_the_held_one_kept(tmp_path):
    """A rollback to an older, correctly signed version is refused; the same version again
    changes nothing; a newer one is adopted."""
    home = Home(tmp_path / "home")
    home.init(4999)
    v1 = home.signed_directory()
    v2_version = _operate(home, lambda d, now: keydir.revoke(d, now, identity="dffh"))
    holder = DirectoryHolder(home.directory(), home.signed_directory())
    with pytest.raises(DirectoryError, match="version 1 is lower than version 2"):
        keydir.offer(holder, home.directory_verifier(), v1)
    assert holder.version == v2_version
    assert keydir.offer(holder, home.directory_verifier(), home.signed_directory()) is False
    _operate(home, lambda d, now: keydir.revoke(d, now, identity="health"))
    assert keydir.offer(holder, home.directory_verifier(), home.signed_directory()) is True
    assert holder.version == 3


def _authenticate(signer: Identity, directory: KeyDirectory, **env: Any) -> str:
    _, frame = craft(signer, directory, envelope_dict(sender=signer.name, **env))
    try:
        steps.authenticate(steps.Frame(Agency(signer.name), frame.decode()), directory)
    except steps.Refusal as refusal:
        return str(refusal.code)
    return "accepted"


def test_rotated_out_key_verifies_only_what_it_signed_before_its_not_after(tmp_path):
    """After a rotation the old key still verifies a message signed before its not_after
    and is refused with auth.key_expired for one signed after; a revoked key is refused
    with auth.key_revoked whenever the message was signed."""
    home = Home(tmp_path / "home")
    home.init(4999)
    old = home.identity("police")
    request = home.agency_home("police").rotate()
    _operate(home, lambda d, now: keydir.rotate(d, read_request(request), now, timedelta(0)))
    directory = home.directory()
    before = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    assert _authenticate(old, directory, created_at=before) == "accepted"
    assert _authenticate(old, directory) == "auth.key_expired"
    assert _authenticate(home.identity("police"), directory) == "accepted"
    _operate(home, lambda d, now: keydir.revoke(d, now, identity="police"))
    revoked = home.directory()
    assert _authenticate(home.identity("police"), revoked, created_at=before) == "auth.key_revoked"


# -- end to end: real nats-server and gateway ------------------------------------------------


@pytest.mark.nats
async def test_four_agency_homes_send_and_receive(deployment, gateway):
    """Each agency connects from its own home (keys, credentials, pinned directory key,
    the directory fetched from NATS): Corrections' update reaches Police and Health."""
    async with await _client(deployment, "corrections") as corrections:
        assert corrections.directory_version == 1
        receipt = await corrections.send(to=["police", "health"], **UPDATE)
    assert receipt.accepted, receipt.detail
    for agency in ("police", "health"):
        async with await _client(deployment, agency) as reader:
            [item] = [d async for d in reader.inbox()]
        assert item.envelope.id == receipt.message_id
    cache = deployment.home.agency_home("police").directory_cache_path
    assert json.loads(cache.read_text())["version"] == 1


@pytest.mark.nats
async def test_rotation_while_messages_flow_refuses_nothing_signed_before_not_after(
    deployment, gateway
):
    """Corrections rotates: a message it signed with the old key before the operator's
    rotation is still accepted after it; the SDK then signs with the new key, reads what
    was sealed to its old key and to its new one; nothing is refused."""
    home = deployment.home
    async with (
        await _client(deployment, "corrections") as corr,
        await _client(deployment, "police") as police,
    ):
        to_old = await police.send(to=["corrections"], kind="risk.update", **_no_kind(UPDATE))
        env = corr.envelope(to=["police"], **_no_payload(UPDATE))
        signed_before = corr.seal(env, UPDATE["payload"])
        request = home.agency_home("corrections").rotate()
        version = _operate(
            home, lambda d, now: keydir.rotate(d, read_request(request), now, timedelta(0))
        )
        await _gateway_holds(gateway, version)
        await _client_holds(corr, version)
        await corr.publish_frame(signed_before, env.id)
        late = await corr.receipt(env.id)
        fresh = corr.envelope(to=["police"], **_no_payload(UPDATE))
        assert _kid(corr.seal(fresh, {})) == home.identity("corrections").sig_kid
        after = await corr.send(to=["police"], **UPDATE)
        await _client_holds(police, version)
        to_new = await police.send(to=["corrections"], kind="risk.update", **_no_kind(UPDATE))
        read = {d.envelope.id async for d in corr.inbox()}
        delivered = {d.envelope.id async for d in police.inbox()}
    assert [r.accepted for r in (to_old, late, after, to_new)] == [True] * 4, late.detail
    assert read == {to_old.message_id, to_new.message_id}
    assert delivered == {env.id, after.message_id}


def _no_kind(update: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in update.items() if k != "kind"}


def _no_payload(update: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in update.items() if k != "payload"}


@pytest.mark.nats
async def test_revoked_agency_is_refused_and_others_unaffected(deployment, gateway):
    """The operator revokes Corrections' keys: its next message is refused with
    auth.key_revoked, its SDK says it has no current key, what it sent before is still
    read by Police, and Police's own messages still go through."""
    home = deployment.home
    async with await _client(deployment, "corrections") as corr:
        earlier = await corr.send(to=["police"], **UPDATE)
        version = _operate(home, lambda d, now: keydir.revoke(d, now, identity="corrections"))
        await _gateway_holds(gateway, version)
        await _client_holds(corr, version)
        with pytest.raises(ConfigError, match="none of corrections's signing keys is current"):
            await corr.send(to=["police"], **UPDATE)
        mid, frame = craft(home.identity("corrections"), home.directory())
        await corr.publish_frame(frame, mid)
        refused = await corr.receipt(mid)
    assert earlier.accepted
    assert (refused.status, refused.reason) == ("refused", "auth.key_revoked")
    async with await _client(deployment, "police") as police:
        [item] = [d async for d in police.inbox()]
        other = await police.send(to=["health"], kind="risk.update", **_no_kind(UPDATE))
    assert item.envelope.id == earlier.message_id
    assert other.accepted, other.detail


@pytest.mark.nats
async def test_sdk_refuses_a_bad_or_older_directory_on_nats_and_keeps_its_own(deployment, gateway):
    """Someone publishes, on s284.directory, a directory signed by another key and then an
    older genuine version: the SDK refuses both and keeps the version it holds; the
    gateway, offered the older version in its home, keeps its own and messages still go;
    the operator's next genuine version is adopted by both."""
    home = deployment.home
    v1 = home.signed_directory()
    version = _operate(home, lambda d, now: keydir.revoke(d, now, identity="dffh"))
    await _gateway_holds(gateway, version)
    conn = await Connection.connect(
        f"nats://127.0.0.1:{deployment.port}", home.credentials(GATEWAY), name="intruder"
    )
    async with await _client(deployment, "police") as police:
        assert police.directory_version == 2
        forged = keydir.DirectoryKey.generate().sign(
            KeyDirectory(home.directory().entries, 9, datetime.now(UTC))
        )
        for n, bad in enumerate((forged, v1)):
            await conn.publish(DIRECTORY_SUBJECT, bad, f"bad-{n}")
            await police.refresh_directory(force=True)
            assert police.directory_version == 2
        genuine = home.signed_directory()
        home.write_directory(v1)  # the gateway is offered the rollback in its home too
        await asyncio.sleep(1.5)
        assert gateway.directory.version == 2
        after = await police.send(to=["corrections"], kind="risk.update", **_no_kind(UPDATE))
        assert after.accepted, after.detail
        home.write_directory(genuine)
        version = _operate(home, lambda d, now: keydir.revoke(d, now, identity="health"))
        await _gateway_holds(gateway, version)
        await _client_holds(police, version)
        assert police.directory_version == 3
    await conn.close()


@pytest.mark.nats
def test_embedded_up_serves_the_signed_directory_and_real_agency_homes_send(running):
    """`s284 up`: GET /api/v1/directory (no token) serves a directory that verifies
    against the directory public key; `s284 send --agency-home` works from an agency home,
    and a revocation shows up at the endpoint as the next version."""
    home_path, _, http = running
    home = Home(home_path)
    url = f"http://127.0.0.1:{http}/api/v1/directory"
    served = httpx.get(url, timeout=5)
    assert served.status_code == 200
    assert home.directory_verifier().verify(served.content).version == 1
    update = home_path.parent / "update.json"
    update.write_text(json.dumps(UPDATE["payload"]))
    corrections = str(home.agency_home("corrections").path)
    args = ["--kind", "service.progress", "--purpose", "offender_management"]
    args += ["--offender", "S284-000711", "--to", "police", "--payload", str(update)]
    sent = s284("send", "--agency-home", corrections, *args)
    assert sent.returncode == 0, sent.stderr
    assert s284("directory", "revoke", "--home", str(home_path), "--agency", "dffh").returncode == 0
    for _ in range(50):
        if json.loads(httpx.get(url, timeout=5).content)["version"] == 2:
            break
        time.sleep(0.1)
    assert home.directory_verifier().verify(httpx.get(url, timeout=5).content).version == 2
    refused = s284("send", "--home", str(home_path), "--as", "dffh", *args)
    assert refused.returncode == 1
    assert "none of dffh's signing keys is current" in refused.stderr
