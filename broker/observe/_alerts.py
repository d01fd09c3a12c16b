"""Acknowledgement times, taken where a contact acknowledges: a thin wrapper around the
alert flow's actions, so the alert code itself knows nothing of metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from broker.alerts.actions import AlertActions
from broker.auth import Principal
from broker.observe._metrics import Metrics
from routing import Alert


class ObservedAlerts:
    """`AlertActions` that also records how long each acknowledged alert waited."""

    def __init__(self, inner: AlertActions, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def acknowledge(self, alert_id: str, contact: Principal) -> Alert:
        alert = await self._inner.acknowledge(alert_id, contact)
        if alert.acknowledged_at is not None:
            waited = _utc(alert.acknowledged_at) - _utc(alert.created_at)
            self._metrics.alert_ack_seconds.observe(max(0.0, waited.total_seconds()))
        return alert

    async def reply(self, alert_id: str, contact: Principal, text: str) -> str:
        return await self._inner.reply(alert_id, contact, text)


def _utc(when: datetime) -> datetime:
    """The routing database may hand back naive UTC (SQLite)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
