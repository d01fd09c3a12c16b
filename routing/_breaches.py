"""The breach register: each `order.breach` message, with the action taken on it.

The action is a member of the payload from a fixed vocabulary (docs/wire-format.md); the
gateway places it here after the message is disclosed and recorded, so the oversight
figures count breaches by action from this table, never by reading payloads. A breach
whose payload names no action counts under `not_stated`; one that names an action outside
the vocabulary under `unrecognised` (and the gateway logs `breach_bad_action`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from routing._db import upsert, writing
from routing._hours import aware_utc
from routing._schema import routing_breaches

# The actions a managing agency reports having taken on a breach (order.breach `action`).
BREACH_ACTIONS = (
    "instruction_given",  # a direction or instruction to the offender
    "warning_given",
    "supervision_increased",  # more contact, monitoring or conditions tightened
    "referred_to_police",  # for investigation of the offence of breaching the order
    "charged",
    "order_review_sought",  # an application to review or vary the order
    "no_further_action",
)
NOT_STATED = "not_stated"
UNRECOGNISED = "unrecognised"


def breach_action(value: object) -> str:
    """The register's action for a payload's `action` member (absent: `not_stated`)."""
    if value is None:
        return NOT_STATED
    return value if isinstance(value, str) and value in BREACH_ACTIONS else UNRECOGNISED


def record_breach(
    engine: Engine, message_id: str, offender: str, sender: str, action: str, at: datetime
) -> None:
    """One row per message; a redelivered message changes nothing."""
    row = {
        "message_id": message_id,
        "offender": offender,
        "sender_agency": sender,
        "action": action,
        "reported_at": aware_utc(at),
    }
    with writing(engine) as conn:
        conn.execute(upsert(engine, routing_breaches).on_conflict_do_nothing(), row)
