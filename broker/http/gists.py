"""A gist source for the web inbox that opens a routed alert's stored, sealed frame with the
addressed agency's own identity, exactly as that agency's SDK would (gateway signature,
decryption, sender signature).

Only a process that legitimately holds the agency's keys may be given one. The embedded
deployment is that case: `s284 up` itself made the four demo agency homes beside its own
home on this one machine, so its inbox opens each alert with the addressed agency's keys
read from that agency's home (`from_agency_homes`). A broker whose agencies keep their homes
on their own machines finds none beside it and holds no agency key: its cards say where to
read the alert instead (see `broker.http.contacts.GistSource`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from broker.errors import CryptoError
from broker.home import AGENCY_NAMES, Home
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

    @classmethod
    def from_agency_homes(
        cls, store: RoutingStore, home: Home, directory: Callable[[], KeyDirectory]
    ) -> SealedAlertGists | None:
        """The agency homes beside `home` (the embedded deployment's), or None when there
        are none: then this process holds no agency key."""
        identities = {}
        for agency in AGENCY_NAMES:
            agency_home = home.agency_home(agency)
            if (agency_home.path / "agency.json").is_file():
                identities[agency] = agency_home.keyring().newest_first()
        return cls(store, identities, directory) if identities else None

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
