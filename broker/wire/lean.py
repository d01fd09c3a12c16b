"""The gateway's delivery JSON written without building pydantic models (issue 14).

Per message the gateway re-seals one `DeliveredContent` and one `DeliveryClaims` per
recipient. Building each as a model (`model_construct`) and dumping it cost more than the
JSON itself; here the envelope is serialised once per message and each recipient's
document is joined from parts, every part written by the same serialiser the models use
(`pydantic_core.to_json`) or, for the claims' plain strings and UTC timestamp, by orjson.
The bytes are those `model_dump_json()` gives for the same content: tests/test_lean_wire.py
holds the two side by side, so a reader validating with the models sees no difference.

Only the gateway's own, already validated values come here; nothing here parses input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic_core import to_json

from broker.wire.envelope import SCHEMA_VERSION, Agency, DisclosureDecision, Envelope


def envelope_json(envelope: Envelope) -> bytes:
    """The envelope as every recipient's content carries it: serialised once per message."""
    return envelope.model_dump_json().encode()


def delivered_content_json(
    envelope: bytes,
    payload: dict[str, Any],
    withheld: Sequence[str],
    decision: DisclosureDecision,
    origin: str,
) -> bytes:
    """What `DeliveredContent(...).model_dump_json()` gives, `envelope` already serialised."""
    return b"".join(
        (
            b'{"envelope":',
            envelope,
            b',"payload":',
            to_json(payload),
            b',"withheld":',
            to_json(list(withheld)),
            b',"decision":',
            decision.model_dump_json().encode(),
            b',"origin":',
            to_json(origin),
            b"}",
        )
    )


def delivery_claims_json(
    delivery_id: str, message_id: str, created_at: datetime, to: Agency, sealed: str
) -> bytes:
    """What `DeliveryClaims(...).model_dump_json()` gives without a `route_reason`
    (`created_at` in UTC)."""
    return orjson.dumps(
        {
            "s284": SCHEMA_VERSION,
            "delivery_id": delivery_id,
            "message_id": message_id,
            "created_at": created_at,
            "to": to.value,
            "sealed": sealed,
        },
        option=orjson.OPT_UTC_Z,
    )
