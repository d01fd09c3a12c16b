"""Fast unit tests: ids, envelope validation, key handling."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.ids import is_id, new_id
from broker.wire.envelope import Agency, Envelope, Sender
from broker.wire.keys import Identity

SENDER = Sender(agency=Agency.CORRECTIONS, unit="north", person_id="staff-1", role="case_manager")


def _env(**kw):
    base = {
        "sender": SENDER,
        "kind": "risk.update",
        "purpose": "offender_management",
        "offender": "S284-000123",
        "recipients": ["police"],
    }
    return Envelope(**{**base, **kw})


def test_ids_are_unique_and_time_ordered():
    """Message ids sort by creation time and never collide."""
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(is_id(i) for i in ids)
    assert ids[0][:10] <= ids[-1][:10]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "gossip"),
        ("purpose", "general_interest"),
        ("offender", "lower-case"),
        ("recipients", []),
        ("recipients", ["police", "police"]),
        ("recipients", ["nobody"]),
        ("created_at", "2026-01-01T00:00:00"),
    ],
)
def test_envelope_refuses_bad_fields(field, value):
    """Unknown kinds, purposes, recipients and naive timestamps are errors, not defaults."""
    with pytest.raises(ValidationError):
        _env(**{field: value})


def test_envelope_refuses_unknown_fields():
    with pytest.raises(ValidationError):
        Envelope.model_validate({**_env().model_dump(), "nickname": "x"})


def test_identity_repr_and_saved_file_keep_private_keys_private(tmp_path):
    """Private key material never appears in a repr; the key file is owner-only."""
    ident = Identity.generate("police")
    path = tmp_path / "police.jwks.json"
    ident.save(path)
    d = ident.private_jwks()["keys"][0]["d"]
    assert d not in repr(ident)
    assert path.stat().st_mode & 0o077 == 0
    assert Identity.load(path).sig_kid == ident.sig_kid


def test_wire_topics_are_routing_topics():
    """A topic the wire accepts is one the routing table can route, and the reverse."""
    from broker.wire.envelope import Topic as WireTopic
    from routing import Topic as RoutingTopic

    assert [t.value for t in WireTopic] == [t.value for t in RoutingTopic]
