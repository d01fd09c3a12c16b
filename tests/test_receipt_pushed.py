"""A receipt says which deliveries were pushed (step 5b: a copy for an agency already
informed about the offender, which the sender did not name), and only those."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from broker.wire.envelope import Agency, DeliveryRef, Receipt


def _receipt(*refs: DeliveryRef) -> Receipt:
    return Receipt(
        message_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
        status="accepted",
        deliveries=list(refs),
        decided_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_a_pushed_delivery_says_so_on_the_wire_and_in_send_output():
    """The sender (and `s284 send`, which prints the receipt) sees `"pushed": true` on
    the copy for the agency it did not name, and no `pushed` member on the others."""
    receipt = _receipt(
        DeliveryRef(delivery_id="d1", recipient=Agency.HEALTH),
        DeliveryRef(delivery_id="d2", recipient=Agency.POLICE, pushed=True),
    )
    wire = json.loads(receipt.model_dump_json())
    assert [d.get("pushed") for d in wire["deliveries"]] == [None, True]
    assert "pushed" not in wire["deliveries"][0]
    printed = json.loads(receipt.model_dump_json(indent=2, exclude_none=True))
    assert printed["deliveries"][1]["pushed"] is True
    assert Receipt.model_validate_json(receipt.model_dump_json()) == receipt


def test_a_receipt_without_pushed_copies_is_unchanged_for_older_readers():
    """A receipt naming only the sender's recipients carries no new member, so a reader
    that forbids unknown members (as ours did before) still accepts it."""
    wire = json.loads(
        _receipt(DeliveryRef(delivery_id="d1", recipient=Agency.HEALTH)).model_dump_json()
    )
    assert set(wire["deliveries"][0]) == {"delivery_id", "recipient", "contact", "route_reason"}
