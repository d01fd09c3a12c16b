"""The two log records `verify` reads back: an expiry's cut-off and an access-log seal.

`records.expired` (in `_build`, beside every other kind of entry) states its cut-off in
its reason; `access_sealed` is written only by `AuditStore.seal_access`. Each format
and the parser that reads it back live together here, so they cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from audit._build import About, Origin, _entry
from audit._records import AuditRecord, Event

__all__ = ["access_seal", "access_sealed", "expiry_cutoff"]


_CUTOFF = re.compile(r" that occurred before (\S+) erased")


def expiry_cutoff(reason: str | None) -> datetime | None:
    """The cut-off an expiry record's reason states (a date alone, in older records, is
    that day's midnight UTC, as `s284 audit expire --before` always gave); else None."""
    match = _CUTOFF.search(reason or "")
    if match is None:
        return None
    text = match[1]
    try:
        if "T" in text:
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def access_sealed(record_id: str, origin: Origin, last_id: int, head: bytes) -> AuditRecord:
    """The API access log's rows 1..`last_id` chain to `head` (`access_seal` reads it back).

    One per head: the dedupe key makes a second seal of the same rows record nothing.
    """
    return _entry(
        record_id,
        origin,
        About(),
        dedupe_key=f"access_sealed:{last_id}",
        event=Event.ACCESS_SEALED,
        decision="none",
        reason_code="access.sealed",
        reason=f"access log rows 1..{last_id} chain to {head.hex()}",
    )


_SEAL = re.compile(r"^access log rows 1\.\.(\d+) chain to ([0-9a-f]{64})$")


def access_seal(reason: str | None) -> tuple[int, bytes] | None:
    """The (last row id, chain head) an `access_sealed` record's reason states."""
    match = _SEAL.match(reason or "")
    return None if match is None else (int(match[1]), bytes.fromhex(match[2]))
