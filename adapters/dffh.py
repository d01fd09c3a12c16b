"""DFFH: housing, disability services and child protection exports.

* `referrals-*.csv`, `tenancy-*.csv`, `outcomes-*.csv`: a referral, tenancy status or
  service outcome -> service.progress / offender_management -> Corrections
* `concerns-*.json`: a child-safety concern -> risk.alert / offender_management ->
  Corrections, Police

Outbound: each delivery as a one-row CSV (the format DFFH's case systems import), with the
disclosed fields as a JSON column.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

from adapters._files import export_type, json_bytes, publish_file, read_csv, read_json
from adapters._model import Outbound, Outgoing, SourceRecord, Unmappable, require
from broker import Agency, Kind, Purpose

SERVICES = {"housing", "disability", "child_protection"}
_CSV = {
    "referrals": {"record_id", "client_id", "service", "referred_on", "status"},
    "tenancy": {"record_id", "client_id", "housing_status"},
    "outcomes": {"record_id", "client_id", "service", "outcome", "recorded_on"},
}
_EXPORTS = (*_CSV, "concerns")
_OUT_COLUMNS = (
    "delivery_id",
    "message_id",
    "from",
    "kind",
    "purpose",
    "offender_ref",
    "local_id",
    "created_at",
    "withheld",
    "payload_json",
)


class DffhModule:
    agency = Agency.DFFH
    suffixes = (".csv", ".json")

    def records(self, path: Path) -> list[SourceRecord]:
        kind = export_type(path, _EXPORTS)
        if kind != "concerns":
            rows: list[Any] = read_csv(path, _CSV[kind])
            ids = [r.get("record_id") for r in rows]
        else:
            rows = read_json(path)
            if not isinstance(rows, list):
                raise Unmappable("file.not_list", f"{path.name} must hold a JSON list")
            ids = [r.get("concern_id") if isinstance(r, dict) else None for r in rows]
        return [
            SourceRecord(f"dffh:{kind}:{rid}" if rid else f"dffh:{path.name}#{i}", kind, row)
            for i, (rid, row) in enumerate(zip(ids, rows, strict=True))
        ]

    def map_in(self, record: SourceRecord) -> Outgoing:
        data = record.data
        if not isinstance(data, dict):
            raise Unmappable("record.not_object", "a record must be an object")
        if record.record_type == "concerns":
            return _concern(data)
        require(data, "record_id", "client_id")
        payload = _PROGRESS[record.record_type](data)
        return Outgoing(
            kind=Kind.SERVICE_PROGRESS,
            purpose=Purpose.OFFENDER_MANAGEMENT,
            local_offender_id=str(data["client_id"]),
            to=(Agency.CORRECTIONS,),
            payload={k: v for k, v in payload.items() if v not in (None, "")},
        )

    def render(self, delivery: Outbound) -> tuple[str, bytes]:
        row = {**delivery.summary(), "payload_json": json.dumps(delivery.payload, sort_keys=True)}
        row["withheld"] = ";".join(delivery.withheld)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=_OUT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerow({k: row.get(k) for k in _OUT_COLUMNS})
        return ".csv", buf.getvalue().encode("utf-8")


def _service(data: dict[str, Any]) -> str:
    if data.get("service") not in SERVICES:
        raise Unmappable(
            "record.bad_value", f"service must be one of {', '.join(sorted(SERVICES))}"
        )
    return str(data["service"])


def _referral(data: dict[str, Any]) -> dict[str, Any]:
    require(data, "referred_on", "status")
    return {
        "record_type": "referral",
        "service": _service(data),
        "referral_status": data["status"],
        "referred_on": data["referred_on"],
        "housing_need": data.get("housing_need"),
    }


def _tenancy(data: dict[str, Any]) -> dict[str, Any]:
    days = data.get("tenancy_review_in_days")
    return {
        "record_type": "tenancy",
        "housing_status": data["housing_status"],
        "placement_ref": data.get("placement_ref"),
        "move_in_date": data.get("move_in_date"),
        "tenancy_review_in_days": int(days) if days and str(days).isdigit() else None,
    }


def _outcome(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "record_type": "outcome",
        "service": _service(data),
        "outcome": data["outcome"],
        "recorded_on": data["recorded_on"],
    }


_PROGRESS = {"referrals": _referral, "tenancy": _tenancy, "outcomes": _outcome}


def _concern(data: dict[str, Any]) -> Outgoing:
    require(data, "concern_id", "client_id", "reported_at", "concern_type")
    return Outgoing(
        kind=Kind.RISK_ALERT,
        purpose=Purpose.OFFENDER_MANAGEMENT,
        local_offender_id=str(data["client_id"]),
        to=(Agency.CORRECTIONS, Agency.POLICE),
        payload={
            "concern_id": data["concern_id"],
            "concern_type": data["concern_type"],
            "reported_at": data["reported_at"],
            "alert_level": data.get("alert_level", "high"),
            "safety_concerns_at_address": bool(data.get("safety_concerns_at_address", False)),
        },
    )


# -- synthetic data ------------------------------------------------------------------------


def generate(folder: Path, local_ids: list[str], count: int, seed: int = 284) -> list[Path]:
    """A tenancy export and a child-safety concerns file of invented records."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    header = "record_id,client_id,housing_status,placement_ref,tenancy_review_in_days\n"
    rows = [
        f"TEN-{seed}-{i:05d},{rng.choice(local_ids)},"
        f"{rng.choice(['transitional', 'public_housing', 'crisis'])},HSG-SYN-{i:04d},28\n"
        for i in range(count)
    ]
    tenancy = folder / f"tenancy-{seed:04d}.csv"
    publish_file(tenancy, (header + "".join(rows)).encode())
    concerns = folder / f"concerns-{seed:04d}.json"
    concern = {
        "concern_id": f"CP-{seed}-1",
        "client_id": rng.choice(local_ids),
        "reported_at": "2026-03-02T09:00:00+11:00",
        "concern_type": "unsupervised_contact_with_child",
        "alert_level": "high",
        "safety_concerns_at_address": True,
    }
    publish_file(concerns, json_bytes([concern]))
    return [tenancy, concerns]
