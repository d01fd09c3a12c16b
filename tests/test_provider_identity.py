"""Funded services' identity without a server: the directory binds a provider's keys to
its identity and service type, registrations cannot blur a provider with an agency, audit
records name the provider only when one sent, and the NATS config gives it an account of
its own. (tests/test_providers.py runs the same against a real nats-server.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit._records import AuditRecord, canonical_record
from broker.cli.main import cli
from broker.errors import ConfigError, Refusal, RegistrationError
from broker.funded import admit_provider
from broker.gateway.steps import check_service_role, ingress_party
from broker.home import AgencyHome, Home, read_request
from broker.nats.config import accounts
from broker.wire.directory import (
    DirectoryKey,
    DirectoryVerifier,
    add,
    from_document,
    to_document,
)
from broker.wire.envelope import Agency, Envelope, Sender
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.providers import SERVICE_ROLES, ProviderId, ServiceType
from policies import load_bundle

HEARTH = ProviderId(Agency.DFFH, "hearth-housing")
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_a_provider_request_carries_its_service_through_the_signed_directory(tmp_path: Path):
    """The provider's registration names its service; the signed directory keeps it on both
    keys, and an agency's entries carry no `s284_service` member at all."""
    _, request = AgencyHome.create(tmp_path / "hearth", HEARTH.identity, "housing")
    reg = read_request(request)
    assert reg.identity == HEARTH.identity
    assert (reg.sig.service, reg.enc.service) == ("housing", "housing")
    agency = read_request(AgencyHome.create(tmp_path / "dffh", "dffh")[1])
    directory = add(add(KeyDirectory([]), reg, NOW), agency, NOW)
    key = DirectoryKey.generate()
    restored = DirectoryVerifier.from_jwk(key.public_jwk()).verify(key.sign(directory))
    services = {e.identity: e.service for e in restored.entries}
    assert services == {HEARTH.identity: "housing", "dffh": None}
    doc = to_document(directory)
    assert all("s284_service" not in e["jwk"] for e in doc["entries"] if e["identity"] == "dffh")
    assert from_document(doc).entries == directory.entries


def test_identity_and_service_must_agree():
    """A provider identity needs a known service type; an agency identity may have none."""
    with pytest.raises(ConfigError):
        Identity.generate(HEARTH.identity)
    with pytest.raises(ConfigError):
        Identity.generate(HEARTH.identity, "catering")
    with pytest.raises(ConfigError):
        Identity.generate("dffh", "housing")
    with pytest.raises(ConfigError):
        ProviderId.parse("fbi/hearth-housing")


def test_an_agency_request_is_not_admitted_as_a_provider(tmp_path: Path):
    """`s284 provider admit` refuses an agency's request: the two never swap places."""
    home = Home(tmp_path / "home")
    home.init(4222)
    _, request = AgencyHome.create(tmp_path / "other", "police")
    with pytest.raises(RegistrationError, match="not a funded service"):
        admit_provider(home, request)


def test_admitting_gives_the_provider_its_own_account_and_login(tmp_path: Path):
    """After `admit`: a new directory version lists the provider's keys with the service,
    its NATS login exists, and the rendered config has its account, whose user may publish
    only on its own ingress subject; DFFH's account imports nothing of the provider's."""
    home = Home(tmp_path / "home")
    home.init(4222)
    _, request = AgencyHome.create(tmp_path / "hearth", HEARTH.identity, "housing")
    done = admit_provider(home, request)
    assert done.version == home.directory().version
    assert home.directory().current(HEARTH.identity, "sig")[0].service == "housing"
    assert home.credentials(HEARTH.user).user == HEARTH.user
    assert HEARTH.account in home.nats_conf.read_text()
    users = dict.fromkeys(["gateway", "admin", *(a.value for a in Agency), HEARTH.user], "h")
    acc = accounts(users, providers=(HEARTH,))
    [user] = acc[HEARTH.account]["users"]
    publish = user["permissions"]["publish"]["allow"]
    assert "s284.ingress.p.dffh.hearth-housing" in publish
    assert not any(s.startswith("s284.ingress.dffh") for s in publish)
    dffh_imports = json.dumps(acc["DFFH"]["imports"])
    assert "hearth-housing" not in dffh_imports
    with pytest.raises(RegistrationError, match="already admitted"):
        admit_provider(home, request)


def test_ingress_subjects_name_the_party():
    """The gateway reads the sending party from the subject the NATS account allowed."""
    assert ingress_party("s284.ingress.dffh") == (Agency.DFFH, None)
    assert ingress_party("s284.ingress.p.dffh.hearth-housing") == (Agency.DFFH, HEARTH)
    with pytest.raises(ValueError, match="not a provider identity"):
        ingress_party("s284.ingress.p.nowhere.hearth-housing")


def _env(role: str, agency: str = "dffh") -> Envelope:
    return Envelope(
        sender=Sender(agency=Agency(agency), unit="u", person_id="p-1", role=role),
        kind="service.progress",
        purpose="csp_service_delivery",
        offender="S284-000777",
        recipients=[Agency.DFFH],
    )


def test_the_role_must_fit_the_service_the_directory_names(tmp_path: Path):
    """Provider roles only from a provider key of that service; providers only in theirs."""
    _, request = AgencyHome.create(tmp_path / "hearth", HEARTH.identity, "housing")
    directory = add(KeyDirectory([]), read_request(request), NOW)
    services = {"housing_provider": "housing", "pi_practitioner": "perpetrator_intervention"}
    check_service_role(_env("housing_provider"), HEARTH, directory, services)
    check_service_role(_env("case_manager"), None, directory, services)
    for env, provider in (
        (_env("case_manager"), HEARTH),
        (_env("pi_practitioner"), HEARTH),
        (_env("housing_provider"), None),
    ):
        with pytest.raises(Refusal) as refused:
            check_service_role(env, provider, directory, services)
        assert refused.value.code.value == "auth.service_role"


def _record(**extra: str) -> AuditRecord:
    return AuditRecord("01J", "k", "disclosed", NOW, "dffh", "permit", None, "ok", "n", **extra)


def test_records_name_the_provider_only_when_one_sent():
    """`sender_provider` is in the hashed record of a provider's message, and absent (not
    null) otherwise, so every older record keeps its exact bytes."""
    plain = canonical_record(_record(sender_agency="dffh"), 0, NOW, b"s" * 32)
    assert "sender_provider" not in plain
    mine = canonical_record(
        _record(sender_agency="dffh", sender_provider=HEARTH.identity), 0, NOW, b"s" * 32
    )
    assert mine["sender_provider"] == "dffh/hearth-housing"
    assert {k: v for k, v in mine.items() if k != "sender_provider"} == plain


def test_provider_init_and_admit_from_the_command_line(tmp_path: Path):
    """`s284 provider init` on the provider's side, `s284 provider admit` on the operator's:
    each says what it made and what to do next; a bad slug is a ConfigError (one clear line
    from the CLI's error map) and creates nothing."""
    home = Home(tmp_path / "home")
    home.init(4222)
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["provider", "init", "--funder", "corrections", "--provider", "mbcp-north",
         "--service", "perpetrator_intervention", "--dir", str(tmp_path / "mbcp")],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "provider corrections/mbcp-north (perpetrator_intervention)" in made.output
    request = tmp_path / "mbcp" / "registration-1.json"
    admitted = runner.invoke(cli, ["provider", "admit", "--home", str(home.path), str(request)])
    assert admitted.exit_code == 0, admitted.output
    assert "own NATS account P_CORRECTIONS_MBCP-NORTH" in admitted.output
    mbcp = ProviderId(Agency.CORRECTIONS, "mbcp-north")
    assert home.providers() == {mbcp: "perpetrator_intervention"}
    bad = runner.invoke(
        cli,
        ["provider", "init", "--funder", "dffh", "--provider", "Bad Slug", "--service",
         "housing", "--dir", str(tmp_path / "bad")],
    )  # fmt: skip
    # a ConfigError: the CLI's one error map prints it as one line and exits 1
    assert isinstance(bad.exception, ConfigError)
    assert "is not a provider identity" in str(bad.exception)
    assert not (tmp_path / "bad").exists()


def test_the_sdks_default_provider_roles_are_the_bundles():
    """Each service type's default SDK role is a role of that service in the bundle, and
    every service type has one."""
    services = load_bundle().role_services()
    assert {SERVICE_ROLES[s]: s.value for s in ServiceType} == services
