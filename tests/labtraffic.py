"""Traffic for the lab topology's tests: many messages in flight from Corrections, each to
two recipients, then counted where a user would count them: in the recipients' inboxes
and in the disclosure log (never from the gateways' own counters)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from broker.lab import Lab
from broker.nats.client import Connection
from broker.sdk import AgencyClient
from broker.wire.envelope import Agency

SENDER = "corrections"
RECIPIENTS = ("police", "health")
WINDOW = 50  # frames published concurrently


def _payload(index: int) -> dict[str, object]:
    """An invented risk update; no real person."""
    return {"synthetic": True, "sequence": index, "risk_level": ("low", "high")[index % 2]}


async def client(lab: Lab, agency: str) -> AgencyClient:
    """The agency's own system: from its own home, connected to every node."""
    return await AgencyClient.from_agency_home(lab.home.agency_home(agency).path)


async def sealed(sender: AgencyClient, count: int) -> list[tuple[str, bytes]]:
    frames = []
    for i in range(count):
        env = sender.envelope(
            kind="risk.update",
            purpose="offender_management",
            offender=f"S284-7{i:05d}",
            to=[Agency(r) for r in RECIPIENTS],
        )
        frames.append((env.id, sender.seal(env, _payload(i))))
    return frames


async def publish(sender: AgencyClient, frames: list[tuple[str, bytes]]) -> None:
    """Every frame published (the client retries under the same message id)."""
    for first in range(0, len(frames), WINDOW):
        window = frames[first : first + WINDOW]
        await asyncio.gather(*(sender.publish_frame(frame, mid) for mid, frame in window))


async def read_inbox(lab: Lab, agency: str, expected: set[str], timeout: float) -> list[str]:
    """Every message id the agency's system reads, repeats included, until it has all of
    `expected` or `timeout` passes; then a last idle read that would catch late copies."""
    reader = await client(lab, agency)
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not expected <= set(seen) and loop.time() < deadline:
            seen += [item.envelope.id async for item in reader.inbox(idle_timeout=1.0)]
        seen += [item.envelope.id async for item in reader.inbox(idle_timeout=2.0)]
    finally:
        await reader.close()
    return seen


def disclosed(db_url: str, ids: set[str]) -> Counter[tuple[str, str]]:
    """Committed disclosure records per (message id, recipient) in the log."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT message_id, recipient_agency FROM audit_log WHERE event = 'disclosed'"
                )
            ).all()
    finally:
        engine.dispose()
    return Counter((m, r) for m, r in rows if m in ids)


@dataclass(frozen=True)
class Counts:
    lost: int
    duplicated: int
    unaudited: int
    logged_twice: int


async def count(lab: Lab, ids: set[str], timeout: float = 120.0) -> Counts:
    """Lost: a (message, recipient) never read. Duplicated: read more than once.
    Unaudited: read without a committed disclosure record for that recipient."""
    reads = {r: await read_inbox(lab, r, ids, timeout) for r in RECIPIENTS}
    log = await asyncio.to_thread(disclosed, lab.db_url, ids)
    lost = sum(len(ids - set(seen)) for seen in reads.values())
    duplicated = sum(len(seen) - len(set(seen)) for seen in reads.values())
    unaudited = sum(1 for r, seen in reads.items() for m in set(seen) if log[(m, r)] == 0)
    return Counts(lost, duplicated, unaudited, sum(1 for n in log.values() if n > 1))


async def verify_log(lab: Lab) -> str:
    """`s284 audit verify` as an auditor runs it; its output, asserting it passed. In a
    thread: this event loop may be running a proxy the gateways' database traffic needs."""
    return await asyncio.to_thread(_verify_log, lab)


def _verify_log(lab: Lab) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "audit", "verify", "--home", str(lab.home.path),
         "--db", lab.db_url],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def leader_of(lab: Lab, stream: str) -> int:
    """The index of the node leading `stream` now (as the admin sees it)."""
    conn = await Connection.connect(lab.nats_url, lab.home.admin_credentials(), "s284-test")
    try:
        info = await conn.js.stream_info(stream)
    finally:
        await conn.close()
    assert info.cluster is not None
    return [node.name for node in lab.nodes].index(info.cluster.leader)
