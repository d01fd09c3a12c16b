"""Health adapter: FHIR R4 bundles in, FHIR Flag/Communication bundles out, through a
gateway on the in-memory twin of NATS."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from adapters import SendStatus, SourceRecord, Unmappable
from adapters.health import HealthModule, generate
from tests.adapter_kit import LOCAL_IDS, adapter, drain, make_config

# The shape of HL7's published R4 example Observation ("observation-example.json", as
# published in hl7-fhir/hl7-fhir.github.io @ c39c15d0b1f1733e71b2819fbbccfab4b05412ff):
# category, coded `code` with LOINC and SNOMED codings, subject, encounter,
# effectiveDateTime and valueQuantity. Trimmed (no narrative) and with a synthetic subject.
HL7_EXAMPLE_OBSERVATION = {
    "resourceType": "Observation",
    "id": "example",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/observation-category",
                    "code": "vital-signs",
                    "display": "Vital Signs",
                }
            ]
        }
    ],
    "code": {
        "coding": [
            {"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"},
            {"system": "http://snomed.info/sct", "code": "27113001", "display": "Body weight"},
        ]
    },
    "subject": {"reference": "Patient/UR-900001"},
    "encounter": {"reference": "Encounter/example"},
    "effectiveDateTime": "2016-03-28",
    "valueQuantity": {
        "value": 185,
        "unit": "lbs",
        "system": "http://unitsofmeasure.org",
        "code": "[lb_av]",
    },
}


def _bundle(*resources: dict[str, object]) -> str:
    entries = [{"resource": r} for r in resources]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


async def test_hl7_example_observation_reaches_corrections(twin_deployment, twin_gateway, tmp_path):
    """An HL7-published Observation shape in a bundle arrives at Corrections as
    service.progress about the mapped scheme offender, with the measure and value."""
    config = make_config(tmp_path, twin_deployment.home.path, "health")
    patient = {"resourceType": "Patient", "id": "UR-900001"}
    (config.source / "b1.json").write_text(_bundle(patient, HL7_EXAMPLE_OBSERVATION))
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
    async with await twin_deployment.client("corrections") as corrections:
        items = await drain(corrections)
    assert len(items) == 1
    env, payload = items[0].envelope, items[0].payload
    assert (env.kind.value, env.purpose.value, env.offender) == (
        "service.progress",
        "offender_management",
        "S284-000101",
    )
    assert payload["measure"] == "Body Weight"
    assert payload["value"] == {"value": 185.0, "unit": "lbs"}
    assert payload["fhir_id"] == "example"


async def test_generated_bundles_delivered_once_across_restarts(
    twin_deployment, twin_gateway, tmp_path
):
    """Every generated CarePlan, Encounter and Observation is delivered exactly once: a second
    poll sends nothing again, and a restarted adapter skips finished files but reads a
    bundle dropped while it was down."""
    config = make_config(tmp_path, twin_deployment.home.path, "health")
    generate(config.source, LOCAL_IDS["health"], 9, seed=1)
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        await a.poll_once()
    generate(config.source, LOCAL_IDS["health"], 3, seed=2)
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        counts = a.state.counts()
    async with await twin_deployment.client("corrections") as corrections:
        items = await drain(corrections)
    assert counts[SendStatus.SENT] == 12
    assert len({i.envelope.id for i in items}) == len(items) == 12
    assert {i.payload["record_type"] for i in items} == {"careplan", "encounter", "observation"}


async def test_unmapped_patient_and_invalid_resource_quarantined(
    twin_deployment, twin_gateway, tmp_path
):
    """A patient missing from the offender map, an invalid Observation and an unsupported
    resource are quarantined with a reason each; the valid record in the same bundle flows."""
    config = make_config(tmp_path, twin_deployment.home.path, "health")
    unknown = {**HL7_EXAMPLE_OBSERVATION, "id": "o2", "subject": {"reference": "Patient/UR-1"}}
    invalid = {"resourceType": "Observation", "id": "o3", "status": "not-a-status"}
    other = {"resourceType": "MedicationRequest", "id": "m1"}
    bundle = _bundle(HL7_EXAMPLE_OBSERVATION, unknown, invalid, other)
    (config.source / "b1.json").write_text(bundle)
    (config.source / "broken.json").write_text("{not json")
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        rows = {r.record_key: r.reason for r in a.state.quarantined()}
    assert rows == {
        "health:Observation/o2": "offender.unmapped",
        "health:Observation/o3": "fhir.invalid",
        "health:MedicationRequest/m1": "fhir.unsupported_resource",
        "broken.json#file": "file.not_json",
    }
    async with await twin_deployment.client("corrections") as corrections:
        assert len(await drain(corrections)) == 1


async def test_risk_update_written_as_fhir_flag_and_communication(
    twin_deployment, twin_gateway, tmp_path
):
    """A Corrections risk.update to Health is written to the destination folder as a valid
    FHIR Bundle with a safety Flag and a Communication, the patient in Health's own id."""
    config = make_config(tmp_path, twin_deployment.home.path, "health")
    async with await twin_deployment.client("corrections") as corrections:
        receipt = await corrections.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000102",
            to=["health"],
            payload={"risk_level": "elevated", "summary": "synthetic"},
        )
    assert receipt.accepted
    async with adapter(config, twin_deployment) as a:
        assert await a.drain_outbound() == 1
        assert await a.drain_outbound() == 0  # acknowledged: not delivered again
    files = list(config.destination.glob("*.json"))
    assert len(files) == 1
    bundle = Bundle.model_validate_json(files[0].read_text())
    flag, comm = (e.resource for e in bundle.entry)
    assert flag.get_resource_type() == "Flag"
    assert flag.subject.reference == "Patient/UR-900002"
    assert comm.get_resource_type() == "Communication"
    assert "elevated" in comm.payload[0].contentString


def test_module_never_copies_narrative():
    """Narrative text in a FHIR resource never becomes part of a message payload."""
    obs = {**HL7_EXAMPLE_OBSERVATION, "text": {"status": "generated", "div": "<div>x</div>"}}
    out = HealthModule().map_in(SourceRecord("health:Observation/example", "Observation", obs))
    assert out is not None
    assert "<div>" not in json.dumps(out.payload)


def test_bundle_internal_patient_reference_resolved(tmp_path):
    """In a transaction bundle, a subject `urn:uuid:...` pointing at the bundle's Patient entry
    resolves to that patient's id; an unresolvable subject is quarantined, never guessed."""
    patient = {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "UR-900003"}}
    obs = {**HL7_EXAMPLE_OBSERVATION, "subject": {"reference": "urn:uuid:p1"}}
    lost = {**HL7_EXAMPLE_OBSERVATION, "id": "o9", "subject": {"reference": "urn:uuid:nobody"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [patient, {"fullUrl": "urn:uuid:o1", "resource": obs}, {"resource": lost}],
    }
    (tmp_path / "t.json").write_text(json.dumps(bundle))
    module = HealthModule()
    first, second = module.records(tmp_path / "t.json")
    out = module.map_in(first)
    assert out is not None
    assert out.local_offender_id == "UR-900003"
    with pytest.raises(Unmappable) as err:
        module.map_in(second)
    assert err.value.reason == "record.no_subject"
