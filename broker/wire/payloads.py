"""Payload members the broker itself reads, with fixed vocabularies (docs/wire-format.md 4,
"Payloads the broker reads"): what the gateway places in its registers after a message is
disclosed. Pure data; the adapters and the SDK speak the same values."""

from __future__ import annotations

from enum import StrEnum


class BreachAction(StrEnum):
    """`order.breach` payload `action`: what the managing agency did about the breach."""

    INSTRUCTION_GIVEN = "instruction_given"  # a direction or instruction to the offender
    WARNING_GIVEN = "warning_given"
    SUPERVISION_INCREASED = "supervision_increased"  # more contact, monitoring, conditions
    REFERRED_TO_POLICE = "referred_to_police"  # to investigate the offence of the breach
    CHARGED = "charged"
    ORDER_REVIEW_SOUGHT = "order_review_sought"  # an application to review or vary the order
    NO_FURTHER_ACTION = "no_further_action"


NOT_STATED = "not_stated"  # the breach register's action when the payload names none
UNRECOGNISED = "unrecognised"  # ... and when it names one outside the vocabulary


def breach_action(value: object) -> str:
    """The breach register's action for a payload's `action` member."""
    if value is None:
        return NOT_STATED
    known = {a.value for a in BreachAction}
    return value if isinstance(value, str) and value in known else UNRECOGNISED
