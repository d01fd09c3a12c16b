"""The routing table as a document: parse and check (naming the bad row), and write back.

`to_doc` is the canonical form: `parse_table(t.to_doc()) == t`, and a row carries `hours`
or `ack_within` only where it differs from the defaults, so export round-trips import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from functools import cached_property
from typing import Any, NoReturn, TypeVar

from routing._errors import RoutingError
from routing._hours import DAY_NAMES, WorkingHours
from routing._model import DUTY, TOKEN, Contact, CspReviewer, RouteRow, Topic

T = TypeVar("T")
Key = tuple[str, str, Topic]

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?")
_HHMM = re.compile(r"(\d{2}):(\d{2})")
_MINUTES_PER_DAY = 24 * 60
_TOP_KEYS = frozenset({"areas", "needs", "defaults", "csp_reviewers", "contacts"})
_ROW_KEYS = frozenset(
    {"agency", "area", "topic", "contact", "deputy", "hours", "ack_within", "escalation", "active"}
)
_HOURS_KEYS = frozenset({"days", "start", "end", "tz"})
_CONTACT_KEYS = frozenset({"id", "name", "channel"})
REVIEWERS_DEFAULT_AGENCY = "corrections"  # where reminders went before reviewers had one


@dataclass(frozen=True)
class RouteTable:
    areas: tuple[str, ...]
    needs: tuple[tuple[str, tuple[Topic, ...]], ...]
    hours: WorkingHours
    ack_within_min: int
    csp_reviewers: tuple[CspReviewer, ...]
    rows: tuple[RouteRow, ...]

    @cached_property
    def by_key(self) -> dict[Key, RouteRow]:
        return {(r.agency, r.area, r.topic): r for r in self.rows}

    def row(self, agency: str, area: str, topic: Topic) -> RouteRow | None:
        return self.by_key.get((agency, area, topic))

    def needed(self) -> list[Key]:
        """Every (agency, area, topic) the scheme needs covered: areas x needs."""
        return [(a, area, t) for a, topics in self.needs for area in self.areas for t in topics]

    def to_doc(self) -> dict[str, Any]:
        return {
            "areas": list(self.areas),
            "needs": {agency: [str(t) for t in topics] for agency, topics in self.needs},
            "defaults": {
                "hours": hours_doc(self.hours),
                "ack_within": format_duration(self.ack_within_min),
            },
            "csp_reviewers": [
                {**contact_doc(r.contact), "agency": r.agency} for r in self.csp_reviewers
            ],
            "contacts": [self._row_doc(r) for r in self.rows],
        }

    def _row_doc(self, row: RouteRow) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "agency": row.agency,
            "area": row.area,
            "topic": str(row.topic),
            "contact": contact_doc(row.contact),
            "deputy": contact_doc(row.deputy) if row.deputy else None,
        }
        if row.hours != self.hours:
            doc["hours"] = hours_doc(row.hours)
        if row.ack_within_min != self.ack_within_min:
            doc["ack_within"] = format_duration(row.ack_within_min)
        return {**doc, "escalation": row.escalation, "active": row.active}


def diff(before: RouteTable | None, after: RouteTable) -> tuple[int, int, int]:
    """Rows added, removed and changed, keyed by (agency, area, topic)."""
    old = before.by_key if before else {}
    new = after.by_key
    added = sum(1 for k in new if k not in old)
    removed = sum(1 for k in old if k not in new)
    changed = sum(1 for k, row in new.items() if k in old and old[k] != row)
    return added, removed, changed


# -- parsing -------------------------------------------------------------------------


def parse_table(doc: Any) -> RouteTable:
    """A checked table, or `RoutingError("routing.bad_table")` naming where it is wrong."""
    top = _mapping(doc, "table", _TOP_KEYS, required=_TOP_KEYS - {"csp_reviewers", "contacts"})
    areas = tuple(_token(a, f"areas[{i}]") for i, a in enumerate(_list(top["areas"], "areas")))
    _unique(areas, "areas")
    defaults = _mapping(top["defaults"], "defaults", {"hours", "ack_within"})
    hours = _hours(defaults["hours"], "defaults.hours")
    ack = _duration(defaults["ack_within"], "defaults.ack_within")
    reviewers = tuple(
        _reviewer(c, f"csp_reviewers[{i}]")
        for i, c in enumerate(_list(top.get("csp_reviewers", []), "csp_reviewers"))
    )
    raw_rows = _list(top.get("contacts", []), "contacts")
    rows = tuple(_row(r, f"contacts[{i}]", areas, hours, ack) for i, r in enumerate(raw_rows))
    keys = [(r.agency, r.area, r.topic) for r in rows]
    _unique([f"{a}/{area}/{t}" for a, area, t in keys], "contacts (agency/area/topic)")
    return RouteTable(areas, _needs(top["needs"]), hours, ack, reviewers, rows)


def _row(raw: Any, where: str, areas: tuple[str, ...], hours: WorkingHours, ack: int) -> RouteRow:
    m = _mapping(raw, where, _ROW_KEYS, required={"agency", "area", "topic", "contact"})
    agency = _token(m["agency"], f"{where}.agency")
    area = _token(m["area"], f"{where}.area")
    topic = _topic(m["topic"], f"{where}.topic")
    where = f"{where} ({agency}/{area}/{topic})"
    if area not in areas:
        _fail(where, f"area {area!r} is not listed in areas")
    contact = _contact(m["contact"], f"{where}.contact")
    deputy = None if m.get("deputy") is None else _contact(m["deputy"], f"{where}.deputy")
    if deputy is not None and deputy.id == contact.id:
        _fail(where, "the deputy must be someone other than the contact")
    if m.get("escalation", DUTY) != DUTY:
        _fail(where, "escalation must be 'duty' (the agency's duty inbox)")
    active = m.get("active", True)
    if not isinstance(active, bool):
        _fail(where, "active must be true or false")
    return RouteRow(
        agency=agency,
        area=area,
        topic=topic,
        contact=contact,
        deputy=deputy,
        hours=_hours(m["hours"], f"{where}.hours", hours) if "hours" in m else hours,
        ack_within_min=_duration(m["ack_within"], f"{where}.ack_within")
        if "ack_within" in m
        else ack,
        active=active,
    )


def _needs(raw: Any) -> tuple[tuple[str, tuple[Topic, ...]], ...]:
    needs = []
    for agency, topics in _mapping(raw, "needs", None).items():
        where = f"needs.{agency}"
        parsed = tuple(_topic(t, f"{where}[{i}]") for i, t in enumerate(_list(topics, where)))
        _unique(parsed, where)
        needs.append((_token(agency, where), parsed))
    return tuple(needs)


def _hours(raw: Any, where: str, base: WorkingHours | None = None) -> WorkingHours:
    given = _mapping(raw, where, _HOURS_KEYS, required=_HOURS_KEYS if base is None else set())
    m = {**(hours_doc(base) if base else {}), **given}  # a row's hours amend the defaults
    days = _days(m["days"], f"{where}.days")
    start, end = _time(m["start"], f"{where}.start"), _time(m["end"], f"{where}.end")
    if not isinstance(m["tz"], str):
        _fail(f"{where}.tz", "must be an IANA time zone name such as Australia/Melbourne")
    return _build(where, WorkingHours, days, start, end, m["tz"])


def _days(raw: Any, where: str) -> frozenset[int]:
    names = raw if isinstance(raw, list) else [raw]
    days: set[int] = set()
    for name in names:
        if not isinstance(name, str):
            _fail(where, "days are names such as mon, or a range such as mon-fri")
        first, _, last = name.strip().lower().partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            _fail(where, f"{name!r} is not a day (mon..sun) or a range such as mon-fri")
        lo, hi = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if hi < lo:
            _fail(where, f"range {name!r} runs backwards")
        days.update(range(lo, hi + 1))
    return frozenset(days)


def _time(raw: Any, where: str) -> time:
    # PyYAML reads an unquoted 17:30 as the base-60 integer 1050: minutes since midnight.
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < _MINUTES_PER_DAY:
        return time(raw // 60, raw % 60)
    match = _HHMM.fullmatch(raw) if isinstance(raw, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:  # noqa: PLR2004 - clock
        _fail(where, f"{raw!r} is not a time such as '09:00'")
    return time(int(match[1]), int(match[2]))


def _duration(raw: Any, where: str) -> int:
    match = _DURATION.fullmatch(raw) if isinstance(raw, str) else None
    if match is None or not any(match.groups()):
        _fail(where, f"{raw!r} is not a duration such as 90m or 4h")
    hours, minutes = match.groups()
    total = int(hours or 0) * 60 + int(minutes or 0)
    if total <= 0:
        _fail(where, "must be longer than zero")
    return total


def _contact(raw: Any, where: str) -> Contact:
    m = _mapping(raw, where, _CONTACT_KEYS)
    if not all(isinstance(m[k], str) for k in _CONTACT_KEYS):
        _fail(where, "id, name and channel must be strings")
    return _build(where, Contact, m["id"], m["name"], m["channel"])


def _topic(raw: Any, where: str) -> Topic:
    try:
        return Topic(raw)
    except ValueError:
        _fail(where, f"{raw!r} is not a topic ({', '.join(Topic)})")


def _token(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not TOKEN.fullmatch(raw):
        _fail(where, f"{raw!r} is not a lower-case token [a-z0-9-]+")
    return str(raw)


def _mapping(
    raw: Any, where: str, allowed: frozenset[str] | set[str] | None, required: Any = None
) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        _fail(where, "must be a mapping")
    if allowed is not None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            _fail(where, f"unknown key(s) {', '.join(map(str, unknown))}")
        missing = sorted((allowed if required is None else required) - set(raw))
        if missing:
            _fail(where, f"missing {', '.join(missing)}")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        _fail(where, "must be a list")
    return raw


def _unique(items: Any, where: str) -> None:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            _fail(where, f"{item} appears twice")
        seen.add(item)


def _build(where: str, factory: Callable[..., T], *args: Any) -> T:
    try:
        return factory(*args)
    except RoutingError as exc:
        raise RoutingError("routing.bad_table", f"{where}: {exc.detail}") from None


def _fail(where: str, problem: str) -> NoReturn:
    raise RoutingError("routing.bad_table", f"{where}: {problem}")


# -- writing back ----------------------------------------------------------------------


def _reviewer(raw: Any, where: str) -> CspReviewer:
    """A contact and its agency; a table written before reviewers had one means the
    managing agency (Corrections), as reminders were sent then."""
    m = _mapping(raw, where, _CONTACT_KEYS | {"agency"}, required=_CONTACT_KEYS)
    agency = _token(m.get("agency", REVIEWERS_DEFAULT_AGENCY), f"{where}.agency")
    contact = _contact({k: m[k] for k in _CONTACT_KEYS}, where)
    return CspReviewer(contact, agency)


def contact_doc(contact: Contact) -> dict[str, str]:
    return {"id": contact.id, "name": contact.name, "channel": contact.channel}


def hours_doc(hours: WorkingHours) -> dict[str, Any]:
    return {
        "days": format_days(hours.days),
        "start": hours.start.strftime("%H:%M"),
        "end": hours.end.strftime("%H:%M"),
        "tz": hours.tz,
    }


def format_days(days: frozenset[int]) -> str | list[str]:
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        first, last = DAY_NAMES[ordered[0]], DAY_NAMES[ordered[-1]]
        return first if first == last else f"{first}-{last}"
    return [DAY_NAMES[d] for d in ordered]


def format_duration(minutes: int) -> str:
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
