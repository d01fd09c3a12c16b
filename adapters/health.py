"""Health (DH): HL7 FHIR R4 through `fhir.resources`.

Inbound: a folder of FHIR Bundles (or single resources) as JSON. CarePlan, Encounter and
Observation (mental-health treatment progress) -> `service.progress` to Corrections for
`offender_management`; Patient entries are context and skipped; any other resource is
quarantined. The patient is the subject reference `Patient/<local id>`.

Outbound: risk updates and alerts become a Bundle with a `Flag` (safety) and a
`Communication` carrying the disclosed fields; any other kind a `Communication` only.

`fhir.resources` 8 models R5 at its top level; R4-compatible models live in
`fhir.resources.R4B` (FHIR 4.3, which keeps R4's shape for these resources). Narrative
text is never copied into a message: only the structured fields below.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from adapters._files import json_bytes, publish_file, read_json
from adapters._model import Outbound, Outgoing, SourceRecord, Unmappable
from broker import Agency, Kind, Purpose

PROGRAMME = "forensic-mental-health"
OFFENDER_SYSTEM = "urn:s284:offender"
MESSAGE_SYSTEM = "urn:s284:message"
_MODELS: dict[str, Any] = {
    "Observation": Observation,
    "Encounter": Encounter,
    "CarePlan": CarePlan,
}
_CONTEXT = {"Patient"}
_RISK_KINDS = {Kind.RISK_UPDATE, Kind.RISK_ALERT}


class HealthModule:
    agency = Agency.HEALTH
    suffixes = (".json",)

    def records(self, path: Path) -> list[SourceRecord]:
        data = read_json(path)
        if not isinstance(data, dict):
            raise Unmappable("fhir.not_a_resource", f"{path.name} is not a FHIR resource")
        if data.get("resourceType") != "Bundle":
            return [_record(path, 0, data)]
        entries = [e if isinstance(e, dict) else {} for e in data.get("entry") or []]
        patients = _bundle_patients(entries)
        return [
            _record(path, i, _resolve_subject(e.get("resource"), patients))
            for i, e in enumerate(entries)
            if not (
                isinstance(e.get("resource"), dict)
                and e["resource"].get("resourceType") in _CONTEXT
            )
        ]

    def map_in(self, record: SourceRecord) -> Outgoing | None:
        model = _MODELS.get(record.record_type)
        if model is None:
            raise Unmappable(
                "fhir.unsupported_resource",
                f"{record.record_type} is not mapped (CarePlan, Encounter, Observation are)",
            )
        try:
            resource = model.model_validate(record.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Unmappable(
                "fhir.invalid", f"{record.record_type}: {where}: {first['type']}"
            ) from None
        payload = {"programme": PROGRAMME, "fhir_id": resource.id, **_progress(resource)}
        return Outgoing(
            kind=Kind.SERVICE_PROGRESS,
            purpose=Purpose.OFFENDER_MANAGEMENT,
            local_offender_id=_patient_id(resource),
            to=(Agency.CORRECTIONS,),
            payload={k: v for k, v in payload.items() if v is not None},
        )

    def render(self, delivery: Outbound) -> tuple[str, bytes]:
        resources = [_communication(delivery)]
        if delivery.kind in _RISK_KINDS:
            resources.insert(0, _flag(delivery))
        bundle = Bundle.model_validate(
            {
                "resourceType": "Bundle",
                "id": _fhir_id(delivery.delivery_id),
                "type": "collection",
                "timestamp": delivery.created_at.isoformat(),
                "entry": [{"resource": r} for r in resources],
            }
        )
        return ".json", json_bytes(json.loads(bundle.model_dump_json(exclude_none=True)))


def _record(path: Path, index: int, resource: Any) -> SourceRecord:
    if not isinstance(resource, dict):
        return SourceRecord(f"health:{path.name}#{index}", "invalid", resource)
    rtype = str(resource.get("resourceType") or "unknown")
    rid = resource.get("id")
    version = (resource.get("meta") or {}).get("versionId")
    key = f"health:{rtype}/{rid}" if rid else f"health:{path.name}#{index}"
    return SourceRecord(f"{key}/_history/{version}" if version else key, rtype, resource)


def _bundle_patients(entries: list[dict[str, Any]]) -> dict[str, str]:
    """fullUrl (e.g. `urn:uuid:...` in a transaction bundle) -> the Patient's local id."""
    out = {}
    for entry in entries:
        res = entry.get("resource")
        if isinstance(res, dict) and res.get("resourceType") == "Patient" and entry.get("fullUrl"):
            idents = res.get("identifier") or [{}]
            local = res.get("id") or (
                idents[0].get("value") if isinstance(idents[0], dict) else None
            )
            if local:
                out[str(entry["fullUrl"])] = str(local)
    return out


def _resolve_subject(resource: Any, patients: dict[str, str]) -> Any:
    """A subject that points at a Patient entry of the same bundle, as `Patient/<id>`."""
    if not isinstance(resource, dict) or not isinstance(resource.get("subject"), dict):
        return resource
    ref = resource["subject"].get("reference")
    if ref in patients:
        return {**resource, "subject": {"reference": f"Patient/{patients[ref]}"}}
    return resource


def _patient_id(resource: Any) -> str:
    subject = resource.subject
    if subject is not None and subject.reference and subject.reference.startswith("Patient/"):
        return str(subject.reference.removeprefix("Patient/"))
    if subject is not None and subject.identifier is not None and subject.identifier.value:
        return str(subject.identifier.value)
    raise Unmappable("record.no_subject", f"{type(resource).__name__} names no Patient subject")


def _concept(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return str(concept.text)
    codings = concept.coding or []
    return str(codings[0].display or codings[0].code) if codings else None


def _progress(resource: Any) -> dict[str, Any]:
    if isinstance(resource, Observation):
        return _observation(resource)
    if isinstance(resource, Encounter):
        attended = resource.status == "finished"
        period = resource.period
        return {
            "record_type": "encounter",
            "status": resource.status,
            "session_date": str(period.start) if period and period.start else None,
            "sessions_scheduled": 1,
            "sessions_attended": int(attended),
            "engagement": "attended" if attended else resource.status,
        }
    period = resource.period
    return {
        "record_type": "careplan",
        "status": resource.status,
        "intent": resource.intent,
        "plan_start": str(period.start) if period and period.start else None,
        "plan_end": str(period.end) if period and period.end else None,
        "activities": len(resource.activity or []),
    }


def _observation(obs: Observation) -> dict[str, Any]:
    value: Any = None
    if obs.valueQuantity is not None:
        value = {"value": float(obs.valueQuantity.value or 0), "unit": obs.valueQuantity.unit}
    elif obs.valueCodeableConcept is not None:
        value = _concept(obs.valueCodeableConcept)
    elif obs.valueInteger is not None:
        value = obs.valueInteger
    return {
        "record_type": "observation",
        "status": obs.status,
        "measure": _concept(obs.code),
        "value": value,
        "effective": str(obs.effectiveDateTime) if obs.effectiveDateTime else None,
    }


def _fhir_id(text: str) -> str:
    return text.replace("_", "-")[:64]


def _subject(delivery: Outbound) -> dict[str, Any]:
    if delivery.local_id is not None:
        return {"reference": f"Patient/{delivery.local_id}"}
    return {"identifier": {"system": OFFENDER_SYSTEM, "value": delivery.offender_ref}}


def _flag(delivery: Outbound) -> dict[str, Any]:
    level = delivery.payload.get("risk_level") or delivery.payload.get("alert_level") or "unrated"
    return {
        "resourceType": "Flag",
        "id": _fhir_id(f"flag-{delivery.delivery_id}"),
        "identifier": [{"system": MESSAGE_SYSTEM, "value": delivery.message_id}],
        "status": "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "safety",
                        "display": "Safety",
                    }
                ]
            }
        ],
        "code": {"text": f"{delivery.kind.value} from {delivery.sender.value}: {level}"},
        "subject": _subject(delivery),
        "period": {"start": delivery.created_at.isoformat()},
    }


def _communication(delivery: Outbound) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "id": _fhir_id(f"comm-{delivery.delivery_id}"),
        "identifier": [{"system": MESSAGE_SYSTEM, "value": delivery.message_id}],
        "status": "completed",
        "category": [{"text": delivery.kind.value}],
        "reasonCode": [{"text": f"s 284 ground: {delivery.purpose.value}"}],
        "subject": _subject(delivery),
        "sent": delivery.created_at.isoformat(),
        "payload": [{"contentString": json.dumps(delivery.payload, sort_keys=True)}],
    }


# -- synthetic data ------------------------------------------------------------------------


def generate(folder: Path, local_ids: list[str], count: int, seed: int = 284) -> list[Path]:
    """Bundles of invented treatment progress: `count` resources over `local_ids`."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"resource": _synthetic(rng, i, rng.choice(local_ids), seed)} for i in range(count)]
    path = folder / f"bundle-{seed:04d}.json"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    publish_file(path, json_bytes(bundle))
    return [path]


def _synthetic(rng: random.Random, i: int, patient: str, seed: int) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient}"}
    rid = f"syn-{seed}-{i:05d}"
    day = f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}"
    match i % 3:
        case 0:
            return {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {"text": "synthetic treatment engagement score"},
                "subject": subject,
                "effectiveDateTime": day,
                "valueInteger": rng.randint(1, 5),
            }
        case 1:
            return {
                "resourceType": "Encounter",
                "id": rid,
                "status": rng.choice(["finished", "finished", "cancelled"]),
                "class": {"code": "AMB"},
                "subject": subject,
                "period": {"start": day},
            }
        case _:
            return {
                "resourceType": "CarePlan",
                "id": rid,
                "status": "active",
                "intent": "plan",
                "subject": subject,
                "period": {"start": day},
                "activity": [{"detail": {"status": "scheduled"}}],
            }
