"""Wiring the processes together: the embedded deployment (`s284 up`) and a bare
gateway worker (`s284 gateway`), both stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import structlog
import uvicorn

from audit import AuditStore
from broker.alerts.flow import AlertContext, AlertFlow
from broker.auth import AuthConfig
from broker.errors import ConfigError
from broker.gateway.checkpoints import Checkpointer
from broker.gateway.confirmations import ConfirmationContext, Confirmations
from broker.gateway.directory import held_directory, keep_directory
from broker.gateway.outbox import Reconciler, ResendPolicy
from broker.gateway.pipeline import Gateway
from broker.gateway.routing import AlertRouting
from broker.gateway.tuning import tune_gc
from broker.home import AGENCY_NAMES, GATEWAY, Home
from broker.http.app import ApiDeps, create_app, create_inbox_app
from broker.http.gists import SealedAlertGists
from broker.http.metrics import Scrape
from broker.nats.client import Connection
from broker.nats.config import ServerOptions
from broker.nats.server import NatsServer
from broker.nats.transport import StreamLimits, Transport
from broker.observe import LagSource, Metrics, ObservedAlerts, Sources, refresh
from broker.sdk import stop_event_on_signals
from broker.settings import Settings
from broker.signer import signer_running
from broker.wire.keys import DirectoryHolder
from broker.witness import cosigned_ages, load_policy, policy_path, watch_quorum
from policies import BundleArchive, EngineHolder, PolicyBundleError
from routing import RoutingStore

log = structlog.get_logger("s284.runtime")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_tls(settings: Settings, host: str | None = None) -> dict[str, str]:
    """uvicorn's TLS options; the API (or a worker's metrics listener on `host`) is served
    in clear only on loopback."""
    host = host or settings.http_host
    if settings.tls_cert is not None and settings.tls_key is not None:
        return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    if not _is_loopback(host):
        raise ConfigError(
            f"refusing to serve HTTP on {host} without TLS; "
            "set S284_TLS_CERT and S284_TLS_KEY (PEM files), or bind 127.0.0.1"
        )
    return {}


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: our stop event owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Started:
    home: Home
    nats_url: str
    http_url: str | None
    database_url: str


def reload_on_sighup(engine: EngineHolder) -> None:
    """SIGHUP re-reads the policy bundle; one that fails its schema or test tables is
    rejected (logged with file and line) and the running bundle stays."""
    loop = asyncio.get_running_loop()

    def reload() -> None:
        task = loop.create_task(asyncio.to_thread(engine.reload))
        _RELOADS.add(task)
        task.add_done_callback(_RELOADS.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)


_RELOADS: set[asyncio.Task[bool]] = set()


@dataclass(frozen=True)
class Running:
    """A running gateway worker and the alert flow beside it (escalation timers)."""

    gateway: Gateway
    alerts: AlertFlow
    routing: RoutingStore
    directory: DirectoryHolder
    metrics: Metrics
    scrape: Scrape  # refresh the gauges, then render (what /metrics serves)


def scraper(metrics: Metrics, sources: Sources) -> Scrape:
    async def scrape() -> tuple[bytes, str]:
        await refresh(metrics, sources)
        return metrics.render()

    return scrape


GATEWAY_PATIENCE_S = 30.0


async def provision(settings: Settings) -> None:
    """Create or update every stream and consumer with the admin identity, then let it go:
    the running gateway never holds credentials that can change a stream."""
    home = Home(settings.home)
    conn = await Connection.connect(
        settings.nats_url or home.nats_url, home.admin_credentials(), name="s284-provision"
    )
    try:
        await conn.ensure_streams(
            StreamLimits(settings.max_frame_bytes, settings.ack_wait_s, settings.max_deliver),
            AGENCY_NAMES,
            tuple(sorted(home.providers())),
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def gateway_running(
    settings: Settings, stop: asyncio.Event, transport: Transport | None = None
) -> AsyncIterator[Running]:
    """The gateway, its checkpointer, the alert flow, the recorder of recipients'
    confirmations of receipt and the outbox reconciler, on `transport` if given (the
    in-memory twin in fast tests; closed on exit), else on a new connection to NATS."""
    home = Home(settings.home)
    signing = contextlib.AsyncExitStack()  # closed last: the final checkpoint needs it
    signer = await signing.enter_async_context(
        signer_running(
            home.signer_home().path,
            home.signer_socket(settings),
            embedded=settings.signer_socket is None,
            wait_s=settings.signer_wait_s,
        )
    )
    conn = transport or await Connection.connect(
        settings.nats_url or home.nats_url,
        home.credentials(GATEWAY),
        name="s284-gateway",
        patience=GATEWAY_PATIENCE_S,  # a worker may start before its NATS cluster is up
    )
    store = await asyncio.to_thread(AuditStore.open, settings.database_url)
    routing = await asyncio.to_thread(RoutingStore.open, settings.database_url)
    try:
        engine = EngineHolder.load(settings.policy_bundle, BundleArchive.in_home(settings.home))
    except PolicyBundleError as exc:
        raise ConfigError(f"policy bundle: {exc}") from None
    checkpointer = Checkpointer(
        store,
        signer,
        conn,
        settings.checkpoint_every_records,
        settings.checkpoint_every_s,
    )
    identity, directory = home.identity(GATEWAY), held_directory(home)
    gateway = Gateway(
        settings,
        conn,
        store,
        engine,
        identity,
        directory,
        checkpointer,
        AlertRouting(routing, identity),
    )
    metrics = Metrics()
    gateway.observer = metrics
    lag = conn if isinstance(conn, LagSource) else None  # the twin has no consumer info
    ages = _witness_ages(store, home)
    scrape = scraper(metrics, Sources(store, routing, lag, tuple(AGENCY_NAMES), ages))
    alerts = AlertFlow(
        AlertContext(
            routing,
            store,
            conn,
            identity,
            directory,
            engine,
            settings.node,
            settings.alert_check_every_s,
        )
    )
    tasks = [
        asyncio.create_task(gateway.run(stop)),
        asyncio.create_task(checkpointer.run(stop)),
        asyncio.create_task(alerts.run(stop)),
        asyncio.create_task(keep_directory(home, directory, conn, stop)),
        asyncio.create_task(watch_quorum(store, policy_path(home.path), stop)),
        asyncio.create_task(
            Confirmations(
                ConfirmationContext(conn, store, directory, settings.node, checkpointer)
            ).run(stop)
        ),
        asyncio.create_task(Reconciler(conn, store, _resend_policy(settings)).run(stop)),
    ]
    reload_on_sighup(engine)
    try:
        yield Running(gateway, alerts, routing, directory, metrics, scrape)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        stop.set()
        for task in tasks:
            await task
        await signing.aclose()
        await conn.close()
        routing.close()
        store.close()


def _resend_policy(settings: Settings) -> ResendPolicy:
    return ResendPolicy(settings.outbox_resend_after_s, settings.outbox_max_resends)


def _witness_ages(store: AuditStore, home: Home) -> Callable[[], dict[str, float | None]]:
    """The registered witnesses' cosignature ages, read per scrape (/metrics)."""
    return lambda: cosigned_ages(store, load_policy(policy_path(home.path)))


async def run_gateway(settings: Settings) -> None:
    """One worker; with `metrics_port` also its own listener for /healthz, /readyz and
    /metrics (a worker has no API, and a probe and a scrape need somewhere to go); with
    `inbox_port` the contacts' web inbox and alert API, served where the alert flow runs."""
    stop = stop_event_on_signals()
    # a listener that may not bind as asked (off loopback without TLS) says so before start
    metrics_host, inbox_host = settings.metrics_host, settings.inbox_host
    metrics_tls = None if settings.metrics_port is None else http_tls(settings, metrics_host)
    inbox_tls = None if settings.inbox_port is None else http_tls(settings, inbox_host)
    async with gateway_running(settings, stop) as running:
        tune_gc()
        gateway = running.gateway
        checks = {"gateway": lambda: gateway.state.ready, "audit": gateway.store_ok}
        listeners = []
        if settings.metrics_port is not None and metrics_tls is not None:
            app = create_app(checks, metrics=running.scrape)
            port = settings.metrics_port
            listeners.append(_serve_until(app, settings.metrics_host, port, metrics_tls, stop))
        if settings.inbox_port is not None and inbox_tls is not None:
            home = Home(settings.home)
            inbox = create_inbox_app(
                checks,
                running.routing,
                AuthConfig.from_env_and_home(home.path),
                ObservedAlerts(running.alerts, running.metrics),
                SealedAlertGists.from_agency_homes(
                    running.routing, home, lambda: running.directory
                ),
            )
            port = settings.inbox_port
            listeners.append(_serve_until(inbox, settings.inbox_host, port, inbox_tls, stop))
        if listeners:
            await asyncio.gather(*listeners)
        else:
            await stop.wait()


async def _serve_until(
    app: object, host: str, port: int, tls: dict[str, str], stop: asyncio.Event
) -> None:
    """Serve `app` until `stop`; a port already taken is a clear error, not uvicorn's exit."""
    if _port_in_use(port):
        raise ConfigError(f"port {port} on 127.0.0.1 is already in use")
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        **tls,  # type: ignore[arg-type]
    )
    http = _QuietServer(config)
    task = asyncio.create_task(http.serve())
    await stop.wait()
    http.should_exit = True
    await task


async def run_api(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The HTTP API alone (production: beside the gateway workers, on the same database):
    the disclosure log, the routing table, the directory the home holds, /metrics for the
    log and alerts. The contacts' alert actions need the alert flow, which runs with a
    gateway: serve the web inbox from `s284 up`, not from here (deploy/README.md)."""
    tls = http_tls(settings)
    stop = stop or stop_event_on_signals()
    home = Home(settings.home)
    store = await asyncio.to_thread(AuditStore.open, settings.database_url)
    routing = await asyncio.to_thread(RoutingStore.open, settings.database_url)
    directory = held_directory(home)
    metrics = Metrics()
    try:
        app = create_app(
            {"audit": store.ping},
            ApiDeps(
                store,
                AuthConfig.from_env_and_home(home.path),
                routing,
                node=settings.node,
                directory=lambda: directory.signed,
                witnesses=lambda: load_policy(policy_path(home.path)),
                bundles=BundleArchive.in_home(settings.home),
            ),
            metrics=scraper(
                metrics,
                Sources(store, routing, None, tuple(AGENCY_NAMES), _witness_ages(store, home)),
            ),
        )
        await _serve_until(app, settings.http_host, settings.http_port, tls, stop)
    finally:
        routing.close()
        store.close()


async def run_embedded(
    settings: Settings,
    on_started: Callable[[Started], None],
    stop: asyncio.Event | None = None,
) -> None:
    """nats-server child + gateway + HTTP API until `stop` (default: SIGINT/SIGTERM)."""
    tls = http_tls(settings)
    stop = stop or stop_event_on_signals()
    if _port_in_use(settings.http_port):
        raise ConfigError(f"HTTP port {settings.http_port} on 127.0.0.1 is already in use")
    home = Home(settings.home)
    home.init(
        settings.nats_port,
        mutual_tls=settings.nats_mutual_tls,
        server=ServerOptions(sync_always=settings.nats_sync_always),
    )
    port = int(home.nats_url.rsplit(":", 1)[1])
    server = NatsServer(home.nats_conf, port, home.path / "nats" / "nats-server.log")
    await server.start()
    try:
        await provision(settings)
        async with gateway_running(settings, stop) as running:
            gateway = running.gateway
            api_store = await asyncio.to_thread(AuditStore.open, settings.database_url)
            app = create_app(
                {"gateway": lambda: gateway.state.ready, "audit": gateway.store_ok},
                ApiDeps(
                    api_store,
                    AuthConfig.from_env_and_home(home.path),
                    running.routing,
                    ObservedAlerts(running.alerts, running.metrics),
                    settings.node,
                    lambda: running.directory.signed,
                    alert_gist=SealedAlertGists.from_agency_homes(
                        running.routing, home, lambda: running.directory
                    ),
                    witnesses=lambda: load_policy(policy_path(home.path)),
                    bundles=BundleArchive.in_home(settings.home),
                ),
                metrics=running.scrape,
            )
            config = uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                log_level="warning",
                lifespan="off",
                **tls,  # type: ignore[arg-type]
            )
            http = _QuietServer(config)
            http_task = asyncio.create_task(http.serve())
            on_started(
                Started(
                    home,
                    home.nats_url,
                    f"{'https' if tls else 'http'}://{settings.http_host}:{settings.http_port}",
                    settings.database_url,
                )
            )
            tune_gc()
            await stop.wait()
            http.should_exit = True
            await http_task
            api_store.close()
    finally:
        await server.stop()
