"""`s284 bench alerts`: routed alert latency, from send to the designated contact's subject.

Longer than the ~400-line norm on purpose: one benchmark, read top to bottom (set-up,
load, figures, report), outside the library's import graph.

Not a test: it prints figures and says plainly whether p99 <= 1 s held; it asserts nothing.
All data is synthetic (offenders S284-9xxxxx, the example table's invented contacts).

1. set-up      a fresh embedded deployment (`s284 up` in its own process, started as
               `s284 bench` starts it); the example routing table
               (docs/examples/routing-table.yaml) imported as a new version; N offenders
               placed in its two areas by Corrections' order.status, every receipt awaited.
2. alerts      Corrections pre-seals risk.alert messages, each to one agency with one of
               the topics the scheme needs of that agency, for offenders drawn at random
               (seeded), and publishes them open-loop at the offered rate (one every 1/rate
               s by the monotonic clock, never waiting for a receipt). Police, DFFH and
               Health subscribers (`AgencyClient.alerts(follow=True)`) in the same process
               note when each envelope id arrives at the agency it was addressed to,
               verified and decrypted, and for whom (a named contact or `duty`).
               Latency = arrival - the start of the publish, both `time.perf_counter()`.
               Copies the gateway pushes to agencies subscribed to the offender are
               counted apart; they load the gateway but are not the alert's route.
3. raw NATS    the yardstick, in the same run once the deployment has stopped: a plain
               nats-server given the broker's own streams and consumers; frames of the
               sealed alerts' size published at the same rate straight to the contacts'
               alert subjects and pulled by the same transport code, same batch. No
               gateway, no signatures or encryption, no policy, no database.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import SecretStr

from audit import AuditStore
from bench.deployment import embedded
from bench.pipeline import (
    Sealed,
    _client,
    _logs_to,
    _offer,
    _percentile,
    _rate,
    plain_nats_server,
)
from bench.progress import say
from broker.alerts.admin import import_table
from broker.errors import BrokerError
from broker.nats.client import Connection, StreamLimits
from broker.nats.config import STREAM_DELIVER, Credentials, alert_consumer, alert_subject
from broker.sdk import AgencyClient
from broker.wire.envelope import Agency
from routing import RoutingStore

TABLE = files("broker.demo") / "routing-table.yaml"
TARGET_P99_MS = 1000.0
AREAS = ("north-west-metro", "barwon-south-west")
# (recipient, topic): every need the example table's scheme names, so some alerts meet the
# table's deliberate gaps (an inactive contact, an uncovered topic) and go to a duty inbox
PLAN = (
    (Agency.POLICE, "risk"),
    (Agency.POLICE, "family_violence"),
    (Agency.DFFH, "child_safety"),
    (Agency.DFFH, "housing"),
    (Agency.DFFH, "income_support"),
    (Agency.HEALTH, "mental_health"),
    (Agency.HEALTH, "alcohol_drugs"),
    (Agency.HEALTH, "counselling"),
)
SUBSCRIBERS = (Agency.POLICE, Agency.DFFH, Agency.HEALTH)
RAW_CONTACT = {Agency.POLICE: "pol-nwm-017", Agency.DFFH: "cp-nwm-101", Agency.HEALTH: "mh-nwm-401"}
DRAIN_SECONDS = 30.0  # after the last send, how long stragglers may take to arrive
FETCH_IDLE = 1.0  # the SDK's default idle timeout of a fetch


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Latencies in ms."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        ms = sorted(s * 1000 for s in seconds)
        top = ms[-1] if ms else 0.0
        return cls(len(ms), _percentile(ms, 0.5), _percentile(ms, 0.95), _percentile(ms, 0.99), top)


@dataclass(frozen=True)
class Run:
    """One open-loop run: offered, really sent, arrived, and how long each took."""

    offered_rate: int
    sent: int
    send_rate: float
    arrived: int
    achieved_rate: float
    latency: Spread


@dataclass(frozen=True)
class AlertReport:
    offenders: int
    frame_bytes: int
    batch: int
    accepted: int
    named: int
    duty: int
    pushed: int
    pushed_duty: int
    receipts: Spread
    alerts: Run
    raw: Run

    @property
    def held(self) -> bool:
        """p99 <= 1 s, counting an alert that never arrived as a miss."""
        a = self.alerts
        return a.sent > 0 and a.arrived == a.sent and a.latency.p99_ms <= TARGET_P99_MS

    @property
    def ok(self) -> bool:
        return self.accepted == self.alerts.sent == self.alerts.arrived

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **asdict(self),
            "target": {"p99_ms": TARGET_P99_MS, "held": self.held},
            "ok": self.ok,
        }


@dataclass
class Arrivals:
    """When each message reached the agency it was addressed to, and for which contact.

    Copies the gateway pushed to other agencies (subscribers to the offender) are counted
    apart, by contact: they are not the alert's designated route."""

    addressed: dict[str, Agency]
    seen: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    pushed: Counter[str] = field(default_factory=Counter)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, message_id: str, agency: Agency, contact: str | None) -> None:
        if self.addressed.get(message_id) is not agency:
            self.pushed[contact or "-"] += 1
            return
        self.seen.setdefault(message_id, (time.perf_counter(), contact))
        if len(self.seen) >= len(self.addressed):
            self.complete.set()

    def run(self, rate: int, sends: dict[str, float]) -> Run:
        got = [(sent, self.seen[mid][0]) for mid, sent in sends.items() if mid in self.seen]
        first = min(sends.values(), default=0.0)
        last_arrival = max((arrived for _, arrived in got), default=first)
        return Run(
            offered_rate=rate,
            sent=len(sends),
            send_rate=_rate(len(sends) - 1, max(sends.values(), default=0.0) - first),
            arrived=len(got),
            achieved_rate=_rate(len(got), last_arrival - first),
            latency=Spread.of([arrived - sent for sent, arrived in got]),
        )


async def _collect(arrivals: Arrivals, watchers: Sequence[Awaitable[None]]) -> None:
    """Wait for every arrival (at most DRAIN_SECONDS more); a failed watcher fails the run."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(w) for w in watchers]
    complete = asyncio.ensure_future(arrivals.complete.wait())
    try:
        await asyncio.wait([complete, *tasks], timeout=DRAIN_SECONDS, return_when="FIRST_COMPLETED")
        for task in tasks:
            if task.done():
                task.result()
    finally:
        tasks.append(complete)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- set-up: the table and the offenders -----------------------------------------------------


def import_example_table(database_url: str) -> None:
    if not TABLE.is_file():
        raise BrokerError(f"the example routing table is missing: {TABLE}")
    doc = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    routing, audit = RoutingStore.open(database_url), AuditStore.open(database_url)
    try:
        import_table(routing, audit, doc, "bench", "bench")
    finally:
        routing.close()
        audit.close()


def offender(index: int) -> str:
    return f"S284-9{index:05d}"


async def place_offenders(officer: AgencyClient, count: int) -> None:
    """Corrections' order.status puts each offender in an area (the two alternate)."""

    async def place(index: int) -> bool:
        receipt = await officer.send(
            kind="order.status",
            purpose="offender_management",
            offender=offender(index),
            to=[Agency.POLICE],
            payload={
                "order_status": "supervision_order",
                "area": AREAS[index % len(AREAS)],
                "managing_officer": "cm-bench",
            },
            order_status="supervision_order",
            timeout=60.0,
        )
        return receipt.accepted

    placed = await asyncio.gather(*(place(i) for i in range(count)))
    if not all(placed):
        raise BrokerError(f"order.status refused for {placed.count(False)} of {count} offenders")


def seal_alerts(
    officer: AgencyClient, count: int, offenders: int
) -> tuple[Sealed, dict[str, Agency]]:
    """The frames, and the agency each is addressed to."""
    rng = random.Random(284)
    sealed: Sealed = []
    addressed: dict[str, Agency] = {}
    for index in range(count):
        agency, topic = rng.choice(PLAN)
        env = officer.envelope(
            kind="risk.alert",
            purpose="offender_management",
            offender=offender(rng.randrange(offenders)),
            to=[agency],
            topic=topic,
        )
        payload = {"alert_level": "high", "summary": f"synthetic bench alert {index}"}
        sealed.append((env.id, officer.seal(env, payload)))
        addressed[env.id] = agency
    return sealed, addressed


# -- phase 2: routed alerts ------------------------------------------------------------------


async def _watch_alerts(client: AgencyClient, batch: int, arrivals: Arrivals) -> None:
    async for item in client.alerts(follow=True, batch=batch, idle_timeout=FETCH_IDLE):
        arrivals.note(item.envelope.id, client.agency, item.contact)


@dataclass(frozen=True)
class AlertFigures:
    frame_bytes: int
    accepted: int
    named: int
    duty: int
    pushed: int
    pushed_duty: int
    receipts: Spread
    run: Run


async def routed_alerts(
    home: Path, offenders: int, rate: int, count: int, batch: int
) -> AlertFigures:
    officer = await _client(home, Agency.CORRECTIONS)
    contacts = [await _client(home, agency) for agency in SUBSCRIBERS]
    try:
        await place_offenders(officer, offenders)
        sealed, addressed = seal_alerts(officer, count, offenders)
        arrivals = Arrivals(addressed)
        watchers = [asyncio.ensure_future(_watch_alerts(c, batch, arrivals)) for c in contacts]
        results = await asyncio.gather(*await _offer(officer, sealed, rate), return_exceptions=True)
        await _collect(arrivals, watchers)
    finally:
        for client in (officer, *contacts):
            await client.close()
    done = [(mid, r) for (mid, _), r in zip(sealed, results, strict=True) if isinstance(r, tuple)]
    seen = [contact for _, contact in arrivals.seen.values()]
    pushed = arrivals.pushed
    return AlertFigures(
        frame_bytes=round(sum(len(frame) for _, frame in sealed) / len(sealed)),
        accepted=sum(1 for _, (_, _, accepted) in done if accepted),
        named=sum(1 for contact in seen if contact not in {None, "duty"}),
        duty=seen.count("duty"),
        pushed=pushed.total(),
        pushed_duty=pushed["duty"],
        receipts=Spread.of([receipt for _, (_, receipt, _) in done]),
        run=arrivals.run(rate, {mid: sent for mid, (sent, _, _) in done}),
    )


# -- phase 3: raw JetStream at the same rate ---------------------------------------------------


async def _watch_raw(conn: Connection, agency: Agency, batch: int, arrivals: Arrivals) -> None:
    consumer = conn.pull(STREAM_DELIVER, alert_consumer(agency.value))
    while True:
        for msg in await consumer.fetch(batch, timeout=FETCH_IDLE):
            arrivals.note(msg.data[:16].decode(), agency, None)
            await msg.ack()


async def _paced(rate: int, count: int, start: Callable[[int], Awaitable[None]]) -> None:
    """Start job i at i/rate s by the monotonic clock; never wait for one to finish first."""
    loop = asyncio.get_running_loop()
    t0, tasks = loop.time(), []
    for index in range(count):
        delay = t0 + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(start(index)))
    await asyncio.gather(*tasks)


async def raw_jetstream(url: str, rate: int, count: int, frame_bytes: int, batch: int) -> Run:
    creds = Credentials("bench", SecretStr("unused: the plain server has no auth"))
    conn = await Connection.connect(url, creds, name="s284-bench-raw")
    try:
        limits = StreamLimits(max_frame_bytes=1024 * 1024, ack_wait_s=30.0, max_deliver=5)
        await conn.ensure_streams(limits, [agency.value for agency in SUBSCRIBERS])
        mids = [f"raw-{index:012d}" for index in range(count)]
        agencies = [SUBSCRIBERS[index % len(SUBSCRIBERS)] for index in range(count)]
        arrivals, sends = Arrivals(dict(zip(mids, agencies, strict=True))), dict[str, float]()

        async def publish(index: int) -> None:
            agency, mid = agencies[index], mids[index]
            data = mid.encode().ljust(frame_bytes, b"x")
            sends[mid] = time.perf_counter()
            await conn.publish(alert_subject(agency.value, RAW_CONTACT[agency]), data, mid)

        watchers = [
            asyncio.ensure_future(_watch_raw(conn, a, batch, arrivals)) for a in SUBSCRIBERS
        ]
        await _paced(rate, count, publish)
        await _collect(arrivals, watchers)
    finally:
        await conn.close()
    return arrivals.run(rate, sends)


# -- the whole run -----------------------------------------------------------------------------


async def measure(rate: int, seconds: float, offenders: int, batch: int) -> AlertReport:
    count = max(1, round(rate * seconds))
    with tempfile.TemporaryDirectory(prefix="s284-bench-alerts-") as tmp:
        root = Path(tmp)
        with _logs_to(root / "bench.log"):
            say("1/3 starting a temporary embedded broker")
            async with embedded(root) as started:
                await asyncio.to_thread(import_example_table, started.database_url)
                say(f"2/3 placing {offenders} offenders, then {count:,} alerts at {rate}/s")
                figures = await routed_alerts(started.home.path, offenders, rate, count, batch)
        (root / "raw").mkdir()
        say("3/3 raw JetStream at the same rate")
        async with plain_nats_server(root / "raw") as url:
            raw = await raw_jetstream(url, rate, count, figures.frame_bytes, batch)
    return AlertReport(
        offenders=offenders,
        frame_bytes=figures.frame_bytes,
        batch=batch,
        accepted=figures.accepted,
        named=figures.named,
        duty=figures.duty,
        pushed=figures.pushed,
        pushed_duty=figures.pushed_duty,
        receipts=figures.receipts,
        alerts=figures.run,
        raw=raw,
    )


def _spread(s: Spread) -> str:
    return (
        f"p50 {s.p50_ms:.1f} ms, p95 {s.p95_ms:.1f} ms, p99 {s.p99_ms:.1f} ms, "
        f"max {s.max_ms:.1f} ms"
    )


def _line(name: str, run: Run) -> str:
    return (
        f"{name}: offered {run.offered_rate}/s, sent at {run.send_rate:.1f}/s, "
        f"achieved {run.achieved_rate:.1f}/s, arrived {run.arrived}/{run.sent}\n"
        f"  {_spread(run.latency)}"
    )


def render_table(report: AlertReport) -> str:
    a = report.alerts
    header = (
        f"s284 bench alerts: {a.sent} risk.alert messages over {report.offenders} offenders "
        f"in {len(AREAS)} areas, {len(PLAN)} (agency, topic) needs; sealed frame "
        f"{report.frame_bytes} B; fetch batch {report.batch}; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    routed = (
        f"  to a named contact {report.named}, to a duty inbox {report.duty}; "
        f"accepted {report.accepted}/{a.sent}; copies pushed to subscribing agencies "
        f"{report.pushed} ({report.pushed_duty} of them to a duty inbox)"
    )
    verdict = (
        f"p99 <= 1 s at {a.offered_rate} alerts/s: {'HELD' if report.held else 'NOT HELD'} "
        f"(p99 {a.latency.p99_ms:.1f} ms, {a.arrived}/{a.sent} arrived)"
    )
    lines = [
        header,
        "",
        _line("routed alert, publish -> the contact's subject (verified, decrypted)", a),
        routed,
        f"  receipt to the sender: {_spread(report.receipts)}",
        _line("raw JetStream, publish -> pull (no gateway), same rate and batch", report.raw),
        "",
        verdict,
    ]
    return "\n".join(lines)


async def run_bench_alerts(
    rate: int, seconds: float, offenders: int, batch: int, as_json: bool
) -> int:
    """Entry point of `s284 bench alerts`: 0 when every alert was accepted and arrived
    (whether or not the latency target held; the output says which)."""
    if rate < 1 or seconds <= 0 or offenders < 1 or batch < 1:
        raise click.UsageError("--rate, --seconds, --offenders and --batch must be positive")
    report = await measure(rate, seconds, offenders, batch)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else render_table(report))
    return 0 if report.ok else 1
