"""The oversight figures of the request register (docs/oversight.md §2.4, `requests.*`):
the Authority's notices issued and answered (and how late), information requests issued,
answered and overdue. Counted from the register's structured columns, never a payload."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from routing._requests import RequestRegister, RequestRow

NOTICE = "psa.notice"
INFO_REQUEST = "info.request"


def request_statistics(
    register: RequestRegister, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    """Requests issued in `[start, end)`, each counted once per recipient; their answers
    and lateness as known at `now`."""
    rows = register.rows(issued_from=start, issued_to=end)
    return {
        "notices": _figures([r for r in rows if r.kind == NOTICE], now),
        "information_requests": _figures([r for r in rows if r.kind == INFO_REQUEST], now),
    }


def _figures(rows: list[RequestRow], now: datetime) -> dict[str, Any]:
    answered = [r for r in rows if r.answered_at is not None]
    late = sorted(r.late_by.total_seconds() for r in answered if r.late_by)
    return {
        "issued": len(rows),
        "answered": len(answered),
        "answered_on_time": len(answered) - len(late),
        "answered_late": len(late),
        "unanswered": len(rows) - len(answered),
        "overdue": sum(1 for r in rows if r.overdue(now)),
        "late_seconds": {
            "p50": _nearest_rank(late, 0.5),
            "p90": _nearest_rank(late, 0.9),
            "max": late[-1] if late else None,
        },
        "by_from_agency": _count(r.from_agency for r in rows),
        "by_recipient": _count(r.recipient for r in rows),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _nearest_rank(ordered: list[float], q: float) -> float | None:
    """A lateness some answer actually had (no interpolation); None when none was late."""
    if not ordered:
        return None
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]
