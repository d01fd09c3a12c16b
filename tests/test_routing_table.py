"""The routing table: YAML import and export round-trip, every import is a new version with
before/after digests and row counts, bad rows are named, deadlines count working time."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from routing import Contact, RoutingError, RoutingStore, Topic, WorkingHours

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "routing-table.yaml"
MEL = ZoneInfo("Australia/Melbourne")
OFFICE = WorkingHours(frozenset(range(5)), time(9), time(17), "Australia/Melbourne")


def mel(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=MEL)  # type: ignore[misc]


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture
def store(store_url):
    s = RoutingStore.open(store_url)
    yield s
    s.close()


def test_the_example_table_imports_and_exports_unchanged(store):
    """Importing the exported table changes nothing: same digest, no rows added or removed."""
    first = store.import_table(example(), actor="admin-01")
    assert (first.version, first.previous_version, first.digest_before) == (1, None, None)
    assert (first.added, first.removed, first.changed) == (15, 0, 0)
    exported = store.export_table()
    again = store.import_table(yaml.safe_load(yaml.safe_dump(exported)), actor="admin-02")
    assert (again.version, again.previous_version) == (2, 1)
    assert again.digest_before == again.digest_after == first.digest_after
    assert (again.added, again.removed, again.changed) == (0, 0, 0)
    assert store.export_table() == exported == store.table_version(1)
    assert [(v.version, v.actor) for v in store.versions()] == [(1, "admin-01"), (2, "admin-02")]


def test_a_new_version_counts_added_removed_and_changed_rows_and_keeps_the_old(store):
    """An edit becomes version 2; the change says how many rows moved; version 1 is kept."""
    store.import_table(example(), actor="admin-01")
    doc = example()
    doc["contacts"][0]["active"] = False  # changed
    del doc["contacts"][1]  # removed
    doc["contacts"].append(
        {
            "agency": "dffh",
            "area": "barwon-south-west",
            "topic": "income_support",
            "contact": {"id": "inc-bsw-311", "name": "Lou Example", "channel": "alert"},
        }
    )  # added
    change = store.import_table(doc, actor="admin-02")
    assert (change.added, change.removed, change.changed) == (1, 1, 1)
    assert change.digest_before != change.digest_after
    assert len(store.table_version(1)["contacts"]) == 15
    assert len(store.rows()) == 15
    row = next(r for r in store.rows() if r.contact.id == "pol-nwm-017")
    assert row.active is False


def test_rows_take_defaults_and_override_them(store):
    """A row without hours or ack_within gets the defaults; one with them keeps its own."""
    store.import_table(example(), actor="admin-01")
    rows = {r.contact.id: r for r in store.rows()}
    assert rows["pol-nwm-017"].hours.days == frozenset(range(7))
    assert rows["pol-nwm-017"].hours.tz == "Australia/Melbourne"
    assert rows["pol-nwm-017"].ack_within_min == 120
    assert rows["pol-bsw-004"].ack_within_min == 90
    assert rows["hsg-nwm-201"].hours == OFFICE
    assert rows["hsg-nwm-201"].ack_within_min == 240
    assert rows["cns-nwm-601"].hours.days == frozenset({0, 2, 4})
    assert rows["pol-bsw-004"].deputy is None
    assert [(r.contact.id, r.agency) for r in store.csp_reviewers()] == [
        ("soct", "dffh"),
        ("map-chair", "corrections"),
    ]
    assert ("dffh", "barwon-south-west", Topic.INCOME_SUPPORT) in store.scheme_needs()


def _bad(path: str, value: object):
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_bad("contacts.2.topic", "gardening"), "contacts[2].topic: 'gardening' is not a topic"),
        (_bad("contacts.2.area", "gippsland"), "contacts[2] (police/gippsland/risk): area"),
        (
            _bad("contacts.2.ack_within", "soon"),
            "contacts[2] (police/barwon-south-west/risk).ack_within: 'soon' is not a duration",
        ),
        (
            _bad("contacts.2.contact", {"id": "Pol 4", "name": "X", "channel": "alert"}),
            "contacts[2] (police/barwon-south-west/risk).contact: contact id 'Pol 4'",
        ),
        (
            _bad("contacts.2.contact", {"id": "duty", "name": "X", "channel": "alert"}),
            "contacts[2] (police/barwon-south-west/risk).contact: contact id 'duty'",
        ),
        (
            _bad("contacts.2.hours", {"start": "17:00", "end": "09:00"}),
            "contacts[2] (police/barwon-south-west/risk).hours: start must be before end",
        ),
        (
            _bad("contacts.2.hours", {"tz": "Australia/Gotham"}),
            "contacts[2] (police/barwon-south-west/risk).hours: unknown time zone",
        ),
        (
            _bad("contacts.2.hours", {"days": "fri-mon"}),
            "contacts[2] (police/barwon-south-west/risk).hours.days: range 'fri-mon'",
        ),
        (_bad("contacts.2.deupty", None), "contacts[2]: unknown key(s) deupty"),
        (
            _bad("contacts.2.escalation", "nobody"),
            "contacts[2] (police/barwon-south-west/risk): escalation must be 'duty'",
        ),
        (
            _bad("contacts.3.topic", "risk"),
            "police/barwon-south-west/risk appears twice",
        ),
        (_bad("needs.police", ["risk", "hugs"]), "needs.police[1]: 'hugs' is not a topic"),
        (_bad("defaults.ack_within", "0m"), "defaults.ack_within: must be longer than zero"),
    ],
)
def test_a_bad_row_is_refused_naming_it_and_nothing_is_stored(store, mutate, expected):
    """A bad table is refused whole with an error that names the row and what is wrong."""
    doc = example()
    mutate(doc)
    with pytest.raises(RoutingError) as caught:
        store.import_table(doc, actor="admin-01")
    assert caught.value.reason == "routing.bad_table"
    assert expected in str(caught.value)
    assert store.versions() == []


def test_unquoted_yaml_clock_times_are_read_as_times(store):
    """`start: 08:30` unquoted (which YAML 1.1 reads as 510) still means half past eight."""
    doc = yaml.safe_load(EXAMPLE.read_text().replace('start: "09:00"', "start: 08:30"))
    doc["defaults"]["hours"]["end"] = yaml.safe_load("17:30")
    store.import_table(doc, actor="admin-01")
    hours = next(r for r in store.rows() if r.contact.id == "hsg-nwm-201").hours
    assert (hours.start, hours.end) == (time(8, 30), time(17, 30))


def test_friday_afternoon_deadline_lands_on_monday_morning():
    """Two working hours from Friday 16:00 is Monday 10:00 in the contact's zone (UTC out)."""
    deadline = OFFICE.add_working(datetime(2026, 3, 6, 16, 0, tzinfo=MEL), 120)
    assert deadline.tzinfo == UTC
    assert deadline.astimezone(MEL) == datetime(2026, 3, 9, 10, 0, tzinfo=MEL)


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        (mel(2026, 3, 7, 11, 0), 30, mel(2026, 3, 9, 9, 30)),  # Saturday
        (mel(2026, 3, 10, 20, 0), 60, mel(2026, 3, 11, 10, 0)),  # Tuesday evening
        (mel(2026, 3, 10, 7, 0), 60, mel(2026, 3, 10, 10, 0)),  # before opening
        (mel(2026, 3, 10, 16, 59), 1, mel(2026, 3, 10, 17, 0)),  # to the minute
        (mel(2026, 3, 10, 10, 0), 8 * 60 * 3, mel(2026, 3, 13, 10, 0)),  # 3 days
        (mel(2026, 4, 3, 16, 0), 120, mel(2026, 4, 6, 10, 0)),  # over DST's end
    ],
)
def test_deadlines_count_only_working_time(start, minutes, expected):
    """Time outside Mon-Fri 09:00-17:00 Melbourne does not count, DST changes included."""
    assert OFFICE.add_working(start, minutes).astimezone(MEL) == expected


def test_deadlines_follow_the_contacts_own_time_zone():
    """The same moment gives a contact in Perth a different deadline than one in Melbourne."""
    perth = WorkingHours(frozenset(range(5)), time(9), time(17), "Australia/Perth")
    moment = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 17:00 Melbourne, 14:00 Perth
    assert OFFICE.add_working(moment, 60) == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
    assert perth.add_working(moment, 60) == datetime(2026, 3, 10, 7, 0, tzinfo=UTC)


def test_a_naive_datetime_is_refused():
    """A moment without a zone is refused rather than guessed."""
    with pytest.raises(RoutingError, match=r"routing\.naive_datetime"):
        OFFICE.add_working(datetime(2026, 3, 10, 10, 0), 60)  # noqa: DTZ001 - the point


def test_a_contacts_name_never_appears_in_its_repr():
    """Logs carry ids, never names: a contact's repr has its id and channel only."""
    contact = Contact("pol-nwm-017", "Sgt. Jo Example", "alert")
    assert "Jo Example" not in repr(contact)
    assert "pol-nwm-017" in repr(contact)


def test_export_without_a_table_says_so(store):
    """Exporting before any import is a clear error, not an empty table."""
    with pytest.raises(RoutingError, match=r"routing\.no_table"):
        store.export_table()
    with pytest.raises(RoutingError, match=r"routing\.unknown_version"):
        store.table_version(3)
    assert copy.deepcopy(store.rows()) == []
