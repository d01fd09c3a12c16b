"""The perpetrator-intervention new-case counting rule, per month, provider and program.

A contact opens a NEW case for a client in a program from this service provider when:
  * the client is served in that program for the first time; or
  * the client returns after their previous case was closed; or
  * the client returns (for the same incident or any other) after three calendar months
    or more without service in that program.
It is NOT a new case when service simply continues into a new month or a new year.

A new incident while a case is open, less than three months after the last service, is
part of the open case (the rule names no other trigger). Only attended sessions are
service: a missed session neither opens a case nor resets the three-month clock.

Cases are per provider: the same client in the same program at two providers is a case
at each, and a client's history at one provider never opens or continues a case at
another. A service is a contact that lasted at least one hour (`MIN_SERVICE_MINUTES`): a
shorter contact is not service, so (like a missed session) it neither opens a case nor
resets the clock, nor closes one. A contact whose length the export does not give
(`minutes` None: older exports without `duration_minutes`) counts as a session, as before.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

GAP_MONTHS = 3
MIN_SERVICE_MINUTES = 60


@dataclass(frozen=True)
class Contact:
    client_id: str
    program: str
    served_on: date
    closes_case: bool = False  # the provider closed the case at this contact
    provider: str = ""  # the service provider (its identity, or the export's provider name)
    minutes: int | None = None  # how long the contact lasted, where the export says

    @property
    def is_service(self) -> bool:
        return self.minutes is None or self.minutes >= MIN_SERVICE_MINUTES


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def new_case_counts(contacts: Iterable[Contact]) -> dict[tuple[str, str, str], int]:
    """(month "YYYY-MM", provider, program) -> number of new cases opened that month."""
    counts: Counter[tuple[str, str, str]] = Counter()
    last: dict[tuple[str, str, str], Contact] = {}
    services = (c for c in contacts if c.is_service)
    order = lambda c: (c.provider, c.client_id, c.program, c.served_on)  # noqa: E731
    for contact in sorted(services, key=order):
        key = (contact.provider, contact.client_id, contact.program)
        previous = last.get(key)
        if (
            previous is None
            or previous.closes_case
            or contact.served_on >= add_months(previous.served_on, GAP_MONTHS)
        ):
            month = contact.served_on.strftime("%Y-%m")
            counts[(month, contact.provider, contact.program)] += 1
        last[key] = contact
    return dict(sorted(counts.items()))
