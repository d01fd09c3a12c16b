"""Working hours and deadlines that count only working time, in the contact's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing._errors import RoutingError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def aware_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is refused (its zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RoutingError("routing.naive_datetime", "datetimes must carry a time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class WorkingHours:
    """Days (0=Mon..6=Sun) and one daily window [start, end) in the IANA zone `tz`."""

    days: frozenset[int]
    start: time
    end: time
    tz: str

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise RoutingError("routing.bad_hours", "days must be a non-empty subset of 0..6")
        if self.start >= self.end:
            raise RoutingError("routing.bad_hours", "start must be before end")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise RoutingError("routing.bad_hours", f"unknown time zone {self.tz!r}") from None

    def add_working(self, start: datetime, minutes: int) -> datetime:
        """The moment `minutes` of working time after `start` have passed (UTC)."""
        if minutes < 0:
            raise RoutingError("routing.bad_hours", "minutes must not be negative")
        remaining = timedelta(minutes=minutes)
        cursor = aware_utc(start)
        zone = ZoneInfo(self.tz)
        day = cursor.astimezone(zone).date()
        while True:  # ends: days is non-empty, so every week holds a window
            window = self._window(day, zone)
            if window is not None and window[1] > cursor:
                begin = max(cursor, window[0])
                if remaining <= window[1] - begin:
                    return begin + remaining
                remaining -= window[1] - begin
                cursor = window[1]
            day += timedelta(days=1)

    def _window(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        # Arithmetic in UTC: aware arithmetic within one zone is wall-clock, wrong across DST.
        if day.weekday() not in self.days:
            return None
        opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        return opens, closes
