"""Counted refusals: a flood of identical garbage costs the log one record, not one a frame.

Within a window per (agency, reason code), the first `kept` refusals are recorded one by
one as before. Further ones are *held*: not recorded, not acked and not yet answered. When
the window closes (or `max_held` are held, or the gateway stops) one `refusals_counted`
record with their exact count is committed, and only then are they acked and their
receipts sent. Nothing is silently dropped: a crash before that commit leaves them unacked,
JetStream redelivers them, and the next gateway counts them again from zero. The window is
at most a third of the ack wait, so a held frame is not redelivered while it is held; one
redelivered all the same (the gateway stalled longer than the ack wait) replaces its first
delivery in the window rather than counting twice.

Dead letters, and refusals that mark a message id as used (those of authenticated
messages, but replays), keep their own record: the id's record is what makes a resend
under it a replay. Garbage, bad headers, unknown keys and replays are counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from audit import AuditRecord, records
from broker.gateway.stages import Item, Refused
from broker.ids import new_id
from broker.settings import Settings

_Key = tuple[str, str]  # (agency, reason code)


@dataclass
class _Window:
    opened: float
    recorded: int = 0
    held: dict[int, Refused] = field(default_factory=dict)  # by ingress sequence


@dataclass(frozen=True)
class Counted:
    """A summary due: its record, and the refusals it counts (to ack and answer after)."""

    record: AuditRecord
    refused: list[Refused]

    def fields(self) -> dict[str, object]:
        """For the gateway's log line: ids and codes, as every log line."""
        record = self.record
        return {"ingress": record.ingress_agency, "reason": record.reason_code,
                "count": len(self.refused)}  # fmt: skip


class RefusalCounter:
    def __init__(
        self,
        kept: int,
        window_s: float,
        node: str,
        max_held: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kept, self._window_s, self._node = kept, window_s, node
        self._max_held, self._clock = max_held, clock
        self._windows: dict[_Key, _Window] = {}

    @classmethod
    def for_settings(cls, settings: Settings) -> RefusalCounter:
        """A held frame must be answered well within the ack wait, or it is redelivered."""
        window = min(settings.refusal_window_s, settings.ack_wait_s / 3)
        return cls(settings.refusals_kept, window, settings.node)

    def fold(self, items: list[Item]) -> list[Item]:
        """The batch without the refusals to be counted, which are held until `due`."""
        now, out = self._clock(), []
        for item in items:
            key = _key(item)
            if key is None or not isinstance(item, Refused):
                out.append(item)
                continue
            window = self._windows.get(key)
            if window is None or (now - window.opened >= self._window_s and not window.held):
                window = self._windows[key] = _Window(now)
            if window.recorded < self._kept:
                window.recorded += 1
                out.append(item)
            else:
                window.held[item.msg.stream_seq] = item  # a redelivery is not a second one
        return out

    def due(self, *, final: bool = False) -> list[Counted]:
        """Summaries to commit now: windows closed or full, or every one when stopping."""
        now, out = self._clock(), []
        for key, window in list(self._windows.items()):
            closed = final or now - window.opened >= self._window_s
            if window.held and (closed or len(window.held) >= self._max_held):
                out.append(self._summary(key, list(window.held.values())))
                window.held = {}
            if closed:
                del self._windows[key]
        return out

    def _summary(self, key: _Key, held: list[Refused]) -> Counted:
        agency, code = key
        last = held[-1].msg
        origin = records.Origin(last.stored_at, agency, self._node)
        seqs = (held[0].msg.stream_seq, last.stream_seq)
        record = records.refusals_counted(new_id(), origin, code, len(held), seqs)
        return Counted(record, held)


def _key(item: Item) -> _Key | None:
    if type(item) is not Refused or item.seen is not None or item.agency is None:
        return None  # dead letters, and refusals that know the message id, keep their record
    return item.agency.value, item.refusal.code.value
