"""Why an alert went to a duty inbox, in words a reader of the inbox can act on.

The codes are routing's (docs/reason-codes.md, "Routing"); the gateway signs the code into
the alert frame (`route_reason`, wire format section 3.3) and `s284 inbox --alerts` shows it
with this sentence.
"""

from __future__ import annotations

ROUTE_REASONS = {
    "routing.no_area": "the offender has no known area (no order.status with an area yet)",
    "routing.no_contact": "the routing table names no contact for the offender's area and topic",
    "routing.contact_inactive": "the designated contact for the area and topic is deactivated",
}


def because(code: str) -> str:
    """`code` as a sentence, and the code itself so that it can be looked up."""
    text = ROUTE_REASONS.get(code)
    return f"{text} ({code})" if text else code
