"""A database outage leaves the audit and routing stores as their own 'unavailable' errors,
so the gateway can stop consuming and retry without knowing that the stores speak SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from audit import AuditStore, SeenMessage, StoreUnavailableError
from routing import RoutingStore, RoutingUnavailableError, Topic
from tests.auditlog import record


def _unreachable(tmp_path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'broker.db'}")


def test_an_append_to_an_unreachable_log_raises_store_unavailable(tmp_path):
    """The gateway sees StoreUnavailableError (never a driver error) and nothing is written."""
    store = AuditStore(_unreachable(tmp_path))
    with pytest.raises(StoreUnavailableError, match="database refused"):
        store.append([record()], [SeenMessage("m-1", 1)])
    with pytest.raises(StoreUnavailableError):
        store.first_seen(["m-1"])
    with pytest.raises(StoreUnavailableError):
        store.add_checkpoint(1, b"\0" * 32, "note")


def test_the_gateways_routing_calls_raise_routing_unavailable(tmp_path):
    """Routing an alert while the routing database is down gives RoutingUnavailableError."""
    routing = RoutingStore(_unreachable(tmp_path))
    now = datetime.now(UTC)
    with pytest.raises(RoutingUnavailableError) as caught:
        routing.resolve("police", "S284-000123", Topic.RISK, now)
    assert caught.value.reason == "routing.unavailable"
    with pytest.raises(RoutingUnavailableError):
        routing.subscriptions.of(["S284-000123"])
    with pytest.raises(RoutingUnavailableError):
        routing.set_offender("S284-000123", "cco-0042", "corrections", None, "SO", now)
