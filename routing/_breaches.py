"""The breach register: each `order.breach` message, with the action taken on it.

The action is a member of the payload from a fixed vocabulary (broker/wire/payloads.py,
docs/wire-format.md); the gateway places it here after the message is disclosed and
recorded, so the oversight figures count breaches by action from this table, never by
reading payloads. A breach whose payload names no action is stored as `not_stated`; one
that names an action outside the vocabulary as `unrecognised` (the gateway logs
`breach_bad_action`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from routing._db import upsert, writing
from routing._hours import aware_utc
from routing._schema import routing_breaches


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
