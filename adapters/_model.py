"""What an agency module gives the common core, and what it gets back.

A module reads its source files into `SourceRecord`s, maps each to an `Outgoing` message
(or raises `Unmappable` with a reason code, or returns None for a record it keeps local),
and renders each `Outbound` delivery in the agency's own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from broker import Agency, BrokerError, Kind, OrderStatus, Purpose


class AdapterError(BrokerError):
    """An adapter cannot run: its config, source or destination is unusable."""


class Unmappable(Exception):  # noqa: N818 - an outcome for one record, not a crash
    """This source record (or file) cannot become a message; it goes to quarantine.

    `reason` is a stable code (`record.missing_field`, `offender.unmapped`, ...); `detail`
    says what to fix, naming fields and ids, never values from the record's content.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SourceRecord:
    """One record of a source file; `key` identifies it across restarts (idempotency)."""

    key: str
    record_type: str
    data: Any


@dataclass(frozen=True)
class Outgoing:
    """The message a record maps to, with the offender still in the agency's own id."""

    kind: Kind
    purpose: Purpose
    local_offender_id: str
    to: tuple[Agency, ...]
    payload: dict[str, Any]
    order_status: OrderStatus = OrderStatus.NONE


@dataclass(frozen=True)
class Outbound:
    """A verified delivery, with the offender mapped back to the agency's id if known."""

    delivery_id: str
    message_id: str
    sender: Agency
    kind: Kind
    purpose: Purpose
    offender_ref: str
    local_id: str | None
    created_at: datetime
    payload: dict[str, Any]
    withheld: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The envelope facts every agency format carries (JSON-ready)."""
        return {
            "delivery_id": self.delivery_id,
            "message_id": self.message_id,
            "from": self.sender.value,
            "kind": self.kind.value,
            "purpose": self.purpose.value,
            "offender_ref": self.offender_ref,
            "local_id": self.local_id,
            "created_at": self.created_at.isoformat(),
            "withheld": self.withheld,
        }


class AgencyModule(Protocol):
    """One agency system's formats. Implementations are stateless."""

    @property
    def agency(self) -> Agency: ...

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Source file name endings this module reads (e.g. ".json", ".csv")."""
        ...

    def records(self, path: Path) -> list[SourceRecord]:
        """Parse one source file; raise `Unmappable` if the file as a whole is unreadable."""
        ...

    def map_in(self, record: SourceRecord) -> Outgoing | None:
        """Map a record to a message; None keeps it local (nothing to disclose)."""
        ...

    def render(self, delivery: Outbound) -> tuple[str, bytes]:
        """The delivery in the agency's format: (file suffix, file content)."""
        ...


def require(data: dict[str, Any], *names: str) -> None:
    """Raise `Unmappable` naming every missing or empty field."""
    missing = [n for n in names if data.get(n) in (None, "")]
    if missing:
        raise Unmappable("record.missing_field", f"missing field(s): {', '.join(missing)}")
