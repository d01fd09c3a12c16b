"""A gist source for the web inbox that opens a routed alert's stored, sealed frame with the
addressed agency's own identity, exactly as that agency's SDK would (gateway signature,
decryption, sender signature).

Only a process that legitimately holds the agency's keys may be given one: the broker's
own process holds no agency key, so where it serves the inbox, cards say where to read the
alert instead (see `broker.http.contacts.GistSource`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from broker.errors import CryptoError
from broker.http.contacts import AlertGist
from broker.wire.keys import Identity, KeyDirectory
from broker.wire.sealing import open_delivery
from routing import Alert, RoutingStore


class SealedAlertGists:
    """`GistSource`: agency -> its identities (newest first, for rotation)."""

    def __init__(
        self,
        store: RoutingStore,
        identities: Mapping[str, list[Identity]],
        directory: Callable[[], KeyDirectory],
    ) -> None:
        self._store, self._identities, self._directory = store, identities, directory

    def __call__(self, alert: Alert) -> AlertGist | None:
        mine = self._identities.get(alert.agency, [])
        if not mine:
            return None
        frame, directory = self._store.alert_frame(alert.alert_id), self._directory()
        for me in mine:
            try:
                return AlertGist.of(open_delivery(frame, me, directory).payload)
            except CryptoError:
                continue  # sealed to an older or newer key of the same agency
        raise CryptoError(f"alert {alert.alert_id} opens with none of {alert.agency}'s keys")
