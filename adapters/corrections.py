"""Corrections (DJCS, Community Correctional Services).

Inbound, by file name (kind / purpose -> recipients):

* `attendance-*.csv`: a perpetrator-intervention session -> service.progress /
  offender_management -> Police
* `completion-*.csv`: a program completion report -> service.progress /
  offender_management -> Police
* `casenotes-*.csv`: a provider's case note -> kept local (case notes stay with the
  managing officer; they are counted, never disclosed)
* `orders-*.json`, a list of events by `event_type`:
  `order_status` (conditions: residence, electronic monitoring, exclusion zones) ->
  order.status / offender_management -> Police, Health, DFFH;
  `csp` (created, endorsed, reviewed, closed, on `status_date`; services and responsible
  agencies) ->
  csp.update / csp_preparation -> Police, Health, DFFH;
  `breach` -> order.breach / offender_management -> Police, Health (`action_taken`, when
  given, becomes the payload's `action`)

The gateway's minimisation decides which fields each recipient sees (Police: attendance,
engagement and completion only; DFFH: housing and residence fields only).
Provider exports carry `client_id`, the Corrections local id the offender map resolves.
New cases are counted by the rule in `adapters.counting` (`new_case_counts_in`).
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

from adapters._files import (
    delivery_document,
    export_type,
    json_bytes,
    publish_file,
    read_csv,
    read_json,
)
from adapters._model import Outbound, Outgoing, SourceRecord, Unmappable, require
from adapters.counting import Contact, new_case_counts
from broker import Agency, BreachAction, Kind, OrderStatus, Purpose

PROGRAMS = {"MBCP", "ICM"}  # Men's Behaviour Change Program, Individual Case Management
_CSV = {
    "attendance": {"record_id", "program", "client_id", "session_date", "attended", "case_status"},
    "completion": {"record_id", "program", "client_id", "completed_on", "completion_status"},
    "casenotes": {"record_id", "program", "client_id", "note_date"},
}
_EXPORTS = (*_CSV, "orders")
_PANEL = (Agency.POLICE, Agency.HEALTH, Agency.DFFH)


class CorrectionsModule:
    agency = Agency.CORRECTIONS
    suffixes = (".csv", ".json")

    def records(self, path: Path) -> list[SourceRecord]:
        kind = export_type(path, _EXPORTS)
        if kind != "orders":
            rows = read_csv(path, _CSV[kind])
            return [_record(path, i, kind, r.get("record_id"), r) for i, r in enumerate(rows)]
        data = read_json(path)
        if not isinstance(data, list):
            raise Unmappable("file.not_list", f"{path.name} must hold a JSON list of events")
        return [
            _record(path, i, str(e.get("event_type")), e.get("event_id"), e)
            if isinstance(e, dict)
            else _record(path, i, "invalid", None, e)
            for i, e in enumerate(data)
        ]

    def map_in(self, record: SourceRecord) -> Outgoing | None:
        mapper = _MAPPERS.get(record.record_type)
        if mapper is None:
            raise Unmappable(
                "record.unknown_type", f"event_type must be one of {', '.join(_EVENT_TYPES)}"
            )
        result: Outgoing | None = mapper(record.data)
        return result

    def render(self, delivery: Outbound) -> tuple[str, bytes]:
        return ".json", json_bytes(delivery_document(delivery))


def _record(path: Path, index: int, rtype: str, rid: Any, data: Any) -> SourceRecord:
    key = f"corrections:{rtype}:{rid}" if rid else f"corrections:{path.name}#{index}"
    return SourceRecord(key, rtype, data)


def _program(row: dict[str, Any]) -> str:
    if row.get("program") not in PROGRAMS:
        raise Unmappable(
            "record.bad_value", f"program must be one of {', '.join(sorted(PROGRAMS))}"
        )
    return str(row["program"])


def _progress(row: dict[str, Any], payload: dict[str, Any]) -> Outgoing:
    return Outgoing(
        kind=Kind.SERVICE_PROGRESS,
        purpose=Purpose.OFFENDER_MANAGEMENT,
        local_offender_id=str(row["client_id"]),
        to=(Agency.POLICE,),
        payload={"programme": _program(row), **payload},
    )


def _attendance(row: dict[str, Any]) -> Outgoing:
    require(row, "record_id", "client_id", "session_date", "attended")
    attended = str(row["attended"]).upper() in {"Y", "YES", "TRUE", "1"}
    return _progress(
        row,
        {
            "session_date": _date(row, "session_date").isoformat(),
            "sessions_scheduled": 1,
            "sessions_attended": int(attended),
            "engagement": "attended" if attended else "did_not_attend",
        },
    )


def _completion(row: dict[str, Any]) -> Outgoing:
    require(row, "record_id", "client_id", "completed_on", "completion_status")
    return _progress(
        row,
        {
            "completion_status": row["completion_status"],
            "completed_on": _date(row, "completed_on").isoformat(),
        },
    )


def _case_note(row: dict[str, Any]) -> None:
    require(row, "record_id", "client_id")
    _program(row)


def _order_status(event: dict[str, Any]) -> Outgoing:
    require(event, "event_id", "offender_id", "order_type")
    status = _order(event)
    fields = ("conditions", "residence_restrictions", "electronic_monitoring", "exclusion_zones")
    return Outgoing(
        kind=Kind.ORDER_STATUS,
        purpose=Purpose.OFFENDER_MANAGEMENT,
        local_offender_id=str(event["offender_id"]),
        to=_PANEL,
        payload={
            "order_type": status.value,
            "order_status": event.get("order_status", "active"),
            "expiry_date": event.get("expiry_date"),
            **{f: event[f] for f in fields if f in event},
        },
        order_status=status,
    )


# A plan's life as csp.update carries it (docs/wire-format.md); `status_date`, when the
# system gives it, is the day of the event (endorsement starts the six-month review clock).
_CSP_STATUSES = frozenset({"created", "endorsed", "reviewed", "closed"})


def _csp(event: dict[str, Any]) -> Outgoing:
    require(event, "event_id", "offender_id", "csp_id", "csp_status", "order_type")
    if event["csp_status"] not in _CSP_STATUSES:
        raise Unmappable(
            "record.bad_value", "csp_status must be created, endorsed, reviewed or closed"
        )
    status_on = event.get("status_date")
    if status_on is not None:
        try:
            status_on = date.fromisoformat(str(status_on)).isoformat()
        except ValueError:
            detail = "status_date must be a date (YYYY-MM-DD)"
            raise Unmappable("record.bad_value", detail) from None
    services = [
        {"service_type": s.get("service_type"), "responsible_agency": s.get("responsible_agency")}
        for s in event.get("services", [])
        if isinstance(s, dict)
    ]
    return Outgoing(
        kind=Kind.CSP_UPDATE,
        purpose=Purpose.CSP_PREPARATION,
        local_offender_id=str(event["offender_id"]),
        to=_PANEL,
        payload={
            "csp_id": event["csp_id"],
            "csp_status": event["csp_status"],
            **({"status_on": status_on} if status_on else {}),
            "review_due": event.get("review_due"),
            "conditions": event.get("conditions", []),
            "services": services,
            "summary": f"coordinated services plan {event['csp_status']}",
        },
        order_status=_order(event),
    )


def _breach(event: dict[str, Any]) -> Outgoing:
    """A breach and, when the system states it, the action taken (`action_taken`, one of
    broker.BreachAction: counted by action in the oversight figures)."""
    require(event, "event_id", "offender_id", "condition", "detected_at")
    action = event.get("action_taken")
    if action is not None and action not in {a.value for a in BreachAction}:
        allowed = ", ".join(a.value for a in BreachAction)
        raise Unmappable("record.bad_value", f"action_taken must be one of {allowed}")
    return Outgoing(
        kind=Kind.ORDER_BREACH,
        purpose=Purpose.OFFENDER_MANAGEMENT,
        local_offender_id=str(event["offender_id"]),
        to=(Agency.POLICE, Agency.HEALTH),
        payload={
            "order_type": event.get("order_type", "supervision_order"),
            "condition_breached": event["condition"],
            "detected_at": event["detected_at"],
            **({"action": action} if action is not None else {}),
        },
    )


def _order(event: dict[str, Any]) -> OrderStatus:
    try:
        return OrderStatus(event["order_type"])
    except ValueError:
        raise Unmappable(
            "record.bad_value", f"order_type must be one of {', '.join(OrderStatus)}"
        ) from None


def _date(row: dict[str, Any], name: str) -> date:
    try:
        return date.fromisoformat(str(row[name]))
    except ValueError:
        raise Unmappable("record.bad_value", f"{name} must be a date YYYY-MM-DD") from None


_MAPPERS: dict[str, Any] = {
    "attendance": _attendance,
    "completion": _completion,
    "casenotes": _case_note,
    "order_status": _order_status,
    "csp": _csp,
    "breach": _breach,
}
_EVENT_TYPES = ("order_status", "csp", "breach")


def new_case_counts_in(folder: Path) -> dict[tuple[str, str, str], int]:
    """New cases per (month, provider, program) over every attendance export in `folder`:
    the export's `provider` column (empty if it has none) and, where it has one,
    `duration_minutes` (a contact under an hour is not service: adapters/counting.py).

    Rows that cannot be read are skipped here; the adapter quarantines them.
    """
    contacts = []
    for path in sorted(folder.glob("attendance*.csv")):
        for row in read_csv(path, _CSV["attendance"]):
            try:
                if str(row["attended"]).upper() not in {"Y", "YES", "TRUE", "1"}:
                    continue
                contacts.append(
                    Contact(
                        row["client_id"],
                        _program(row),
                        _date(row, "session_date"),
                        row["case_status"] == "closed",
                        provider=str(row.get("provider") or ""),
                        minutes=_minutes(row),
                    )
                )
            except Unmappable:
                continue
    return new_case_counts(contacts)


def _minutes(row: dict[str, Any]) -> int | None:
    raw = str(row.get("duration_minutes") or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Unmappable("record.bad_value", "duration_minutes must be whole minutes")
    return int(raw)


# -- synthetic data ------------------------------------------------------------------------

_ATTENDANCE_HEADER = (
    "record_id,provider,program,client_id,incident_id,session_date,attended,case_status\n"
)


def generate(folder: Path, local_ids: list[str], count: int, seed: int = 284) -> list[Path]:
    """An attendance export and an orders file of invented records."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    rows = [
        f"PI-{seed}-{i:05d},Synthetic Provider {i % 3 + 1},{rng.choice(sorted(PROGRAMS))},"
        f"{rng.choice(local_ids)},INC-{rng.randint(100, 999)},"
        f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)},{rng.choice('YYN')},open\n"
        for i in range(count)
    ]
    attendance = folder / f"attendance-{seed:04d}.csv"
    publish_file(attendance, (_ATTENDANCE_HEADER + "".join(rows)).encode())
    orders = folder / f"orders-{seed:04d}.json"
    publish_file(orders, json_bytes(_synthetic_orders(rng, local_ids, seed)))
    return [attendance, orders]


def _synthetic_orders(rng: random.Random, local_ids: list[str], seed: int) -> list[Any]:
    who = rng.choice(local_ids)
    return [
        {
            "event_id": f"ORD-{seed}-1",
            "event_type": "order_status",
            "offender_id": who,
            "order_type": "supervision_order",
            "expiry_date": "2031-06-30",
            "conditions": ["curfew", "electronic_monitoring"],
            "residence_restrictions": ["approved address only"],
            "exclusion_zones": ["synthetic zone A"],
        },
        {
            "event_id": f"CSP-{seed}-1",
            "event_type": "csp",
            "offender_id": who,
            "order_type": "supervision_order",
            "csp_id": f"CSP-{seed}",
            "csp_status": "endorsed",
            "status_date": "2026-06-01",
            "review_due": "2026-12-01",
            "services": [{"service_type": "housing", "responsible_agency": "dffh"}],
        },
    ]
