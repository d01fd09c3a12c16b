"""The perpetrator-intervention new-case counting rule, per month and program.

A contact opens a NEW case for a client in a program when:
  * the client is served in that program for the first time; or
  * the client returns after their previous case was closed; or
  * the client returns (for the same incident or any other) after three calendar months
    or more without service in that program.
It is NOT a new case when service simply continues into a new month or a new year.

A new incident while a case is open, less than three months after the last service, is
part of the open case (the rule names no other trigger). Only attended sessions are
service: a missed session neither opens a case nor resets the three-month clock.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

GAP_MONTHS = 3


@dataclass(frozen=True)
class Contact:
    client_id: str
    program: str
    served_on: date
    closes_case: bool = False  # the provider closed the case at this contact


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def new_case_counts(contacts: Iterable[Contact]) -> dict[tuple[str, str], int]:
    """(month "YYYY-MM", program) -> number of new cases opened that month."""
    counts: Counter[tuple[str, str]] = Counter()
    last: dict[tuple[str, str], Contact] = {}
    for contact in sorted(contacts, key=lambda c: (c.client_id, c.program, c.served_on)):
        key = (contact.client_id, contact.program)
        previous = last.get(key)
        if (
            previous is None
            or previous.closes_case
            or contact.served_on >= add_months(previous.served_on, GAP_MONTHS)
        ):
            counts[(contact.served_on.strftime("%Y-%m"), contact.program)] += 1
        last[key] = contact
    return dict(sorted(counts.items()))
