"""The routing package's one error: a stable reason code a CLI or API can map, and detail."""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every error the routing package raises on purpose.

    `reason` is a stable code (``routing.bad_table``, ``routing.unknown_alert``, ...);
    `detail` says what to fix (for a table: which row) and never carries a person's name.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RoutingUnavailableError(RoutingError):
    """The routing database cannot be reached; nothing was changed. Retry later (API: 503)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("routing.unavailable", detail)
