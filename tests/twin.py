"""The fast tier's deployment: a real home (keys, settings, SQLite) on the in-memory twin of
NATS instead of a nats-server; see the fixtures `twin_deployment` and `twin_gateway`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from broker.home import AGENCY_NAMES, Home
from broker.nats.config import ADMIN
from broker.nats.transport import StreamLimits
from broker.nats.twin import MemoryNats, TwinConnection
from broker.runtime import Running, gateway_running
from broker.sdk import AgencyClient
from broker.settings import Settings
from broker.wire.envelope import Sender
from broker.wire.keys import GATEWAY

TWIN_AGENCIES = list(AGENCY_NAMES)


@dataclass
class TwinDeployment:
    """Like conftest's `Deployment`, but NATS is a `MemoryNats` in this process."""

    home: Home
    settings: Settings
    nats: MemoryNats
    tmp: Path

    def connect(self, user: str) -> TwinConnection:
        return self.nats.connect(user)

    async def client(self, agency: str, sender: Sender | None = None) -> AgencyClient:
        return await AgencyClient.on_transport(
            self.connect(agency), self.home.identity(agency), self.home.directory(), sender
        )

    def gateway_transport(self) -> TwinConnection:
        return self.connect(GATEWAY)

    async def provision(self) -> None:
        """Streams and consumers, as `s284 up` makes them: with the admin identity."""
        admin = self.connect(ADMIN)
        s = self.settings
        await admin.ensure_streams(
            StreamLimits(s.max_frame_bytes, s.ack_wait_s, s.max_deliver), AGENCY_NAMES
        )
        await admin.close()

    @contextlib.asynccontextmanager
    async def gateway(
        self, stop: asyncio.Event | None = None, settings: Settings | None = None
    ) -> AsyncIterator[Running]:
        """The gateway, checkpointer and alert flow on the twin (a restart: enter again)."""
        stop = stop or asyncio.Event()
        await self.provision()
        async with gateway_running(settings or self.settings, stop, self.gateway_transport()) as r:
            yield r
            stop.set()
            self.nats.interrupt()  # its pending fetch returns now, not at its timeout
