"""Corrections adapter: provider CSV exports and order/CSP events in, JSON documents out
(gateway on the in-memory twin of NATS), and the new-case counting rule as a table."""

from __future__ import annotations

import json
from datetime import date

import pytest

from adapters.corrections import generate, new_case_counts_in
from adapters.counting import Contact, add_months, new_case_counts
from tests.adapter_kit import LOCAL_IDS, adapter, drain, make_config

# -- the counting rule ---------------------------------------------------------------------

D = date.fromisoformat
COUNTING_TABLE = [
    ("first service opens a case", [("A", "MBCP", "2026-01-10", False)], {("2026-01", "MBCP"): 1}),
    (
        "service carrying into the next month is not a new case",
        [("A", "MBCP", "2026-01-10", False), ("A", "MBCP", "2026-02-07", False)],
        {("2026-01", "MBCP"): 1},
    ),
    (
        "service carrying into a new year is not a new case",
        [("A", "ICM", "2025-12-20", False), ("A", "ICM", "2026-01-03", False)],
        {("2025-12", "ICM"): 1},
    ),
    (
        "a return after a closed case is a new case",
        [("A", "MBCP", "2026-01-10", True), ("A", "MBCP", "2026-02-01", False)],
        {("2026-01", "MBCP"): 1, ("2026-02", "MBCP"): 1},
    ),
    (
        "a return after three months or more without service is a new case",
        [("A", "MBCP", "2026-01-31", False), ("A", "MBCP", "2026-04-30", False)],
        {("2026-01", "MBCP"): 1, ("2026-04", "MBCP"): 1},
    ),
    (
        "a return one day short of three months is not",
        [("A", "MBCP", "2026-01-31", False), ("A", "MBCP", "2026-04-29", False)],
        {("2026-01", "MBCP"): 1},
    ),
    (
        "the same client in two programs is a case in each",
        [("A", "MBCP", "2026-03-01", False), ("A", "ICM", "2026-03-02", False)],
        {("2026-03", "ICM"): 1, ("2026-03", "MBCP"): 1},
    ),
    (
        "two clients in one month and program count twice",
        [("A", "MBCP", "2026-03-01", False), ("B", "MBCP", "2026-03-09", False)],
        {("2026-03", "MBCP"): 2},
    ),
    (
        "order of the export does not matter",
        [("A", "MBCP", "2026-06-01", False), ("A", "MBCP", "2026-01-01", False)],
        {("2026-01", "MBCP"): 1, ("2026-06", "MBCP"): 1},
    ),
]


@pytest.mark.parametrize(
    ("name", "contacts", "expected"), COUNTING_TABLE, ids=[r[0] for r in COUNTING_TABLE]
)
def test_new_case_counting_rule(name, contacts, expected):
    """The monthly new-case count per program follows the counting rule: `name` (one
    provider, contacts of unknown length)."""
    rows = [Contact(c, p, D(d), closed, provider="P") for c, p, d, closed in contacts]
    assert new_case_counts(rows) == {(m, "P", p): n for (m, p), n in expected.items()}, name


# (provider, client, program, day, minutes, closes) -> counts per (month, provider, program)
PROVIDER_TABLE = [
    (
        "the same client at two providers is a new case at each",
        [("north", "A", "MBCP", "2026-03-02", 120, False),
         ("south", "A", "MBCP", "2026-03-16", 120, False)],
        {("2026-03", "north", "MBCP"): 1, ("2026-03", "south", "MBCP"): 1},
    ),
    (
        "service at another provider does not keep a case open",
        [("north", "A", "MBCP", "2026-01-05", 90, False),
         ("south", "A", "MBCP", "2026-03-01", 90, False),
         ("north", "A", "MBCP", "2026-04-06", 90, False)],
        {("2026-01", "north", "MBCP"): 1, ("2026-03", "south", "MBCP"): 1,
         ("2026-04", "north", "MBCP"): 1},
    ),
    (
        "a contact under an hour opens no case",
        [("north", "A", "ICM", "2026-02-03", 59, False)],
        {},
    ),
    (
        "exactly one hour is a service",
        [("north", "A", "ICM", "2026-02-03", 60, False)],
        {("2026-02", "north", "ICM"): 1},
    ),
    (
        "a short contact does not reset the three-month clock",
        [("north", "A", "ICM", "2026-01-10", 60, False),
         ("north", "A", "ICM", "2026-03-01", 20, False),
         ("north", "A", "ICM", "2026-04-10", 60, False)],
        {("2026-01", "north", "ICM"): 1, ("2026-04", "north", "ICM"): 1},
    ),
    (
        "a short contact does not close the case",
        [("north", "A", "ICM", "2026-01-10", 60, False),
         ("north", "A", "ICM", "2026-01-20", 15, True),
         ("north", "A", "ICM", "2026-02-10", 60, False)],
        {("2026-01", "north", "ICM"): 1},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "contacts", "expected"), PROVIDER_TABLE, ids=[r[0] for r in PROVIDER_TABLE]
)
def test_new_cases_per_provider_with_the_one_hour_rule(name, contacts, expected):
    """Cases are counted per provider ("from this service provider") and only contacts of
    an hour or more are service: `name`."""
    rows = [
        Contact(c, prog, D(d), closes, provider=who, minutes=mins)
        for who, c, prog, d, mins, closes in contacts
    ]
    assert new_case_counts(rows) == expected, name


def test_a_hand_counted_history_of_two_providers(tmp_path):
    """An attendance export of two providers over five months, counted by hand:
    north: CCS-1 opens in Jan (90 min); a 30-minute call in Feb is not service, so the
    clock runs from 10 Jan and 12 Apr (past 10 Apr) is a new case. CCS-2 opens in Feb; a
    missed session in Mar changes nothing; 2 Apr continues its case.
    south: CCS-1 opens in Mar (its own case); closes in Mar; returns in May: a new case.
    So: 2026-01 north 1, 2026-02 north 1, 2026-03 south 1, 2026-04 north 1, 2026-05 south 1."""
    (tmp_path / "attendance-2026.csv").write_text(
        "record_id,provider,program,client_id,incident_id,session_date,attended,case_status,"
        "duration_minutes\n"
        "1,north,MBCP,CCS-1,I1,2026-01-10,Y,open,90\n"
        "2,north,MBCP,CCS-1,I1,2026-02-14,Y,open,30\n"
        "3,north,MBCP,CCS-1,I1,2026-04-12,Y,open,120\n"
        "4,north,MBCP,CCS-2,I2,2026-02-02,Y,open,120\n"
        "5,north,MBCP,CCS-2,I2,2026-03-02,N,open,0\n"
        "6,north,MBCP,CCS-2,I2,2026-04-02,Y,open,120\n"
        "7,south,MBCP,CCS-1,I1,2026-03-03,Y,open,60\n"
        "8,south,MBCP,CCS-1,I1,2026-03-17,Y,closed,60\n"
        "9,south,MBCP,CCS-1,I1,2026-05-05,Y,open,75\n"
    )
    assert new_case_counts_in(tmp_path) == {
        ("2026-01", "north", "MBCP"): 1,
        ("2026-02", "north", "MBCP"): 1,
        ("2026-03", "south", "MBCP"): 1,
        ("2026-04", "north", "MBCP"): 1,
        ("2026-05", "south", "MBCP"): 1,
    }


def test_add_months_clamps_to_month_end():
    """Three months after 30 November is 28 February (or 29th in a leap year)."""
    assert add_months(D("2026-11-30"), 3) == D("2027-02-28")
    assert add_months(D("2027-11-30"), 3) == D("2028-02-29")


def test_counts_from_attendance_exports(tmp_path):
    """Counts come from the providers' attendance exports; missed sessions are not service."""
    (tmp_path / "attendance-2026-01.csv").write_text(
        "record_id,provider,program,client_id,incident_id,session_date,attended,case_status\n"
        "1,P,MBCP,CCS-1,I1,2026-01-05,Y,open\n"
        "2,P,MBCP,CCS-1,I1,2026-02-05,Y,closed\n"
        "3,P,MBCP,CCS-1,I1,2026-03-05,Y,open\n"
        "4,P,ICM,CCS-2,I9,2026-03-06,N,open\n"
    )
    expected = {("2026-01", "P", "MBCP"): 1, ("2026-03", "P", "MBCP"): 1}
    assert new_case_counts_in(tmp_path) == expected


# -- through the broker --------------------------------------------------------------------


async def test_exports_and_orders_reach_the_panel(twin_deployment, twin_gateway, tmp_path):
    """Attendance reaches Police as service.progress; an order status reaches Police, Health
    and DFFH (DFFH seeing only residence fields); an endorsed CSP for an offender on a
    supervision order reaches all three for csp_preparation."""
    config = make_config(tmp_path, twin_deployment.home.path, "corrections")
    generate(config.source, LOCAL_IDS["corrections"], 5)
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        assert a.state.quarantined() == []
    clients = {n: await twin_deployment.client(n) for n in ("police", "health", "dffh")}
    try:
        got = {n: await drain(c) for n, c in clients.items()}
    finally:
        for c in clients.values():
            await c.close()
    police_kinds = sorted(i.envelope.kind.value for i in got["police"])
    assert police_kinds == ["csp.update", "order.status"] + ["service.progress"] * 5
    (order,) = [i for i in got["dffh"] if i.envelope.kind.value == "order.status"]
    assert set(order.payload) == {"residence_restrictions", "exclusion_zones"}
    assert "electronic_monitoring" in order.withheld or "conditions" in order.withheld
    (csp,) = [i for i in got["health"] if i.envelope.kind.value == "csp.update"]
    assert csp.envelope.purpose.value == "csp_preparation"


async def test_case_notes_stay_local_and_refusals_quarantined(
    twin_deployment, twin_gateway, tmp_path
):
    """Case notes are never disclosed; a CSP for an offender on no order is refused by the
    s 284 policy and quarantined with the gateway's reason code."""
    config = make_config(tmp_path, twin_deployment.home.path, "corrections")
    (config.source / "casenotes-01.csv").write_text(
        "record_id,provider,program,client_id,note_date,note\n"
        "N1,P,MBCP,CCS-50001,2026-01-05,synthetic note text\n"
    )
    csp = {
        "event_id": "CSP-X",
        "event_type": "csp",
        "offender_id": "CCS-50002",
        "order_type": "none",
        "csp_id": "CSP-X",
        "csp_status": "created",
    }
    (config.source / "orders-01.json").write_text(json.dumps([csp]))
    async with adapter(config, twin_deployment) as a:
        await a.poll_once()
        (row,) = a.state.quarantined()
    assert (row.record_key, row.reason) == ("corrections:csp:CSP-X", "refused.policy.denied")
    async with await twin_deployment.client("police") as police:
        assert await drain(police) == []


async def test_delivery_written_in_corrections_ids(twin_deployment, twin_gateway, tmp_path):
    """A Health progress report delivered to Corrections is written as a JSON document with
    Corrections' own client id and every disclosed field."""
    config = make_config(tmp_path, twin_deployment.home.path, "corrections")
    async with await twin_deployment.client("health") as health:
        receipt = await health.send(
            kind="service.progress",
            purpose="offender_management",
            offender="S284-000101",
            to=["corrections"],
            payload={"programme": "synthetic", "sessions_attended": 3},
        )
    assert receipt.accepted
    async with adapter(config, twin_deployment) as a:
        assert await a.drain_outbound() == 1
    (path,) = config.destination.glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["local_id"] == "CCS-50001"
    assert doc["payload"] == {"programme": "synthetic", "sessions_attended": 3}
