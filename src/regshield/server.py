"""`regshield serve`: every listener of one installation in one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable

import structlog
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from regshield.api.app import API_PREFIX
from regshield.api.workers import HttpServer, HttpWorkers, http_config, shared_socket
from regshield.config import Listen, Settings
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer, prepare_index
from regshield.dns.workers import DnsWorkers, WatchedTable
from regshield.errors import ConfigurationError
from regshield.eventlog.anchors import anchor_head
from regshield.flows.operations import OUTBOX_KIND as OPERATION_KIND
from regshield.flows.operations import run_queued
from regshield.flows.poll import poll_forever
from regshield.flows.relay import handlers as relay_handlers
from regshield.flows.sweeps import sweep_forever
from regshield.flows.zone_keys import PUBLISH_KIND, keys_forever
from regshield.notify.delivery import destination as mail_destination
from regshield.notify.handler import handlers as notify_handlers
from regshield.notify.verification import handlers as verification_handlers
from regshield.outbox.worker import OutboxWorker
from regshield.processes import check_port_free, settle
from regshield.rdds.documents import Materializer
from regshield.rdds.whois import WhoisServer
from regshield.registry.links import SANDBOX_LINK, PoolShare, links_summary
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import SandboxConfig
from regshield.services import Services
from regshield.setup import initialize
from regshield.store.queries.users import staff_count
from regshield.tasks import cancel_and_wait

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SWITCH_INTERVAL_SECONDS = 0.001
"""How long a thread holding the GIL runs before another may take it (Python's default: 5
ms). Signing, parsing and index building run in worker threads beside the event loop; each
time a request's handling waits on the GIL it waits up to this long, and a request waits
several times (every hand-off to and from the database's threads)."""
LARGE_PUBLICATION_SWITCH_SECONDS = 0.0002
"""The same while a large zone is published (`Publisher.switch_while_large`): its threads
hold the GIL for tens of seconds, and the API's p99 meanwhile was 143 ms at 1 ms, 79 ms at
0.2 ms and 65 ms at 0.1 ms (the publication 55-59 s, 60 s and 65 s long). Not always: a
restart's reading of every stored zone beside a flood of questions took 13.0 s at 1 ms and
18.8-21.7 s at 0.2 ms, the switching's own cost (docs/performance.md, `bench/lag.py`,
`bench/restart.py`)."""
ANCHOR_INTERVAL_SECONDS = 300
INSTANCE_LOCK = "serve"
POLL_INTERVAL_SECONDS = 60.0  # registries' poll queues: transfers asked for and completed
log = structlog.get_logger("regshield.server")


async def serve_forever(settings: Settings, announce: Callable[[str], None]) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    report = await initialize(settings)
    if report.created_home or report.created_keys:
        announce(f"initialized {settings.home}")
    services = Services.open(settings, share=PoolShare(settings.http_workers, main=True))
    instance = await _one_instance(services)
    server = HttpServer(http_config(services, settings.http))
    loop = asyncio.get_running_loop()
    for signal_number in STOP_SIGNALS:
        loop.add_signal_handler(signal_number, server.stop)
    sandbox = await _start_sandbox(services)
    publisher = Publisher(services, WatchedTable())
    dns_server: DnsServer | None = None
    dns_workers: DnsWorkers | None = None
    whois_server: WhoisServer | None = None
    http_workers: HttpWorkers | None = None
    handlers = {**notify_handlers(), **verification_handlers(), **relay_handlers(),
                OPERATION_KIND: run_queued,
                PUBLISH_KIND: publisher.handle}
    background: list[asyncio.Task[None]] = []
    try:
        await services.life.hold()  # the leases it takes are released at once if it dies
        whois_server = await _start_whois(services)
        bound = _bind_http(settings)
        http = asyncio.create_task(_serve_http(server, settings.http, bound))
        while not server.started:
            if http.done():
                await http  # raises why it stopped
                raise ConfigurationError(f"HTTP could not listen on {settings.http}")
            await asyncio.sleep(0.05)
        try:
            http_workers = await _start_http_workers(settings, bound, services)
            services.other_processes = http_workers
        except ConfigurationError:
            server.stop()
            await http
            raise
        # HTTP answers while the zones are read back from the store; DNS listens once every
        # zone published before is served again, as it was (no zone answers REFUSED).
        dns_server = await _start_dns(services, publisher)
        # Only once HTTP listens: a start that fails then has no worker to cancel mid-query.
        # Before the DNS workers have read every zone (seconds with many or large zones): the
        # edits made while stopped are published meanwhile, and reach the workers as changes.
        background += [
            asyncio.create_task(OutboxWorker(
                services, handlers=handlers,
                ahead={PUBLISH_KIND: publisher.handle_ahead}).run_forever()),
            asyncio.create_task(_anchor_periodically(services)),
            asyncio.create_task(sweep_forever(services)),
            asyncio.create_task(poll_forever(services, POLL_INTERVAL_SECONDS)),
            asyncio.create_task(_publish_forever(publisher)),
            asyncio.create_task(keys_forever(services)),
            asyncio.create_task(Materializer(services).run_forever()),
        ]
        if dns_server is not None:
            dns_workers = await _start_dns_workers(services, publisher, dns_server)
        base = f"http://{settings.http}"
        announce(f"regshield is running (data in {settings.home})")
        processes = f"; {settings.http_workers} processes" if http_workers else ""
        announce(f"  HTTP API   {base}{API_PREFIX}  (OpenAPI: {base}{API_PREFIX}/openapi.json"
                 f"{processes})")
        announce(f"  notices    {mail_destination(settings)}")
        if sandbox is not None:
            announce(f"  sandbox registry  EPP over TLS on {settings.sandbox_listen} "
                     "(.test, .example), linked as registrar "
                     f"{services.registries.link(SANDBOX_LINK).endpoint.client_id}")
            if sandbox.dns is not None:
                announce(f"  sandbox TLD DNS   {settings.sandbox_dns_listen} (signed; trust "
                         f"anchors: {'; '.join(sandbox.dns.trust_anchors())})")
        for line in links_summary(list(services.registries.links.values())):
            announce(f"  registry   {line}")
        if dns_server is not None:
            processes = f", {settings.dns.workers} processes" if dns_workers else ""
            announce(f"  DNS        {settings.dns.listen} UDP and TCP "
                     f"({len(publisher.table)} zones served; transfers need TSIG{processes})")
        if whois_server is not None:
            announce(f"  WHOIS      {whois_server.address} (anonymous, rate limited)")
        async with services.store.read() as session:
            if not await staff_count(session):
                announce("no staff user yet: regshield user create EMAIL --role admin "
                         "--password-stdin")
        settle()
        await http
    finally:
        for signal_number in STOP_SIGNALS:
            loop.remove_signal_handler(signal_number)
        for error in await cancel_and_wait(background):
            log.error("serve:task:failed", error_type=type(error).__name__, detail=str(error))
        if http_workers is not None:
            await http_workers.close()
        if dns_workers is not None:
            services.dns_workers.remove(dns_workers)
            await dns_workers.close()
        if dns_server is not None:
            services.dns_servers.remove(dns_server)
            await dns_server.close()
        if whois_server is not None:
            await whois_server.close()
        await publisher.close()
        await services.close()
        if sandbox is not None:
            await sandbox.close()
        await instance.aclose()


async def _one_instance(services: Services) -> contextlib.AsyncExitStack:
    """On SQLite, this `serve` as the only one on the database, until the stack is closed:
    two would each take the other's leases for a dead process's, and run the same outbox,
    publications and registry commands. Raises ConfigurationError (the store closed) when
    another runs. PostgreSQL takes any number of instances."""
    held = contextlib.AsyncExitStack()
    if not services.store.is_sqlite:
        return held
    if not await held.enter_async_context(services.store.exclusive(INSTANCE_LOCK)):
        await held.aclose()
        await services.close()
        raise ConfigurationError(
            "another `regshield serve` is running on this database (an SQLite database "
            "serves one instance; stop it first, or use PostgreSQL for several)")
    services.store.sweep_locks()  # of processes killed before they could remove them
    return held


async def _start_sandbox(services: Services) -> SandboxServer | None:
    """On the embedded defaults (no `[registries]` configured), run the built-in sandbox
    registry and accredit this installation with it on first start."""
    settings = services.settings
    if settings.registries:
        return None
    config = SandboxConfig.of(settings)
    try:
        sandbox = await SandboxServer.start(config,
                                            refused=services.limits.connections_refused)
    except OSError as exc:
        raise ConfigurationError(f"the sandbox registry could not listen on "
                                 f"{settings.sandbox_listen}: {exc.strerror}") from exc
    link = services.registries.link(SANDBOX_LINK)
    if await sandbox.state.registrar(link.endpoint.client_id) is None:
        assert link.lock_endpoint is not None
        await sandbox.state.add_registrar(
            link.endpoint.client_id, link.endpoint.password.reveal(),
            lock_password=link.lock_endpoint.password.reveal())
    return sandbox


async def _start_dns(services: Services, publisher: Publisher) -> DnsServer | None:
    """Serve every zone as last published (from the store; `_publish_forever` then brings
    them up to date), then answer DNS on `[dns] listen` (unless off) in this process."""
    listen = services.settings.dns.listen
    if listen is not None:
        publisher.prepare = prepare_index
    publisher.freeze_restored = True
    publisher.switch_while_large = LARGE_PUBLICATION_SWITCH_SECONDS
    await publisher.restore()
    if listen is None:
        return None
    count = services.settings.dns.workers
    server = DnsServer(
        publisher.table, keyring=publisher.keyring, transfers=publisher.transfers,
        rrl=publisher.rate_limiter,
        tcp_connections_per_source=services.settings.dns.tcp_connections_per_source)
    try:
        if count > 1 and listen.port:
            check_port_free(listen.host, listen.port)
        await server.start(listen.host, listen.port, reuse_port=count > 1)
    except OSError as exc:
        raise ConfigurationError(f"DNS could not listen on {listen}: {exc.strerror}") from exc
    services.dns_servers.append(server)  # its counters, for GET /metrics
    log.info("dns.listening", listen=str(listen), zones=len(publisher.table))
    return server


async def _start_dns_workers(services: Services, publisher: Publisher, server: DnsServer
                             ) -> DnsWorkers | None:
    """The other `[dns] workers` processes, answering beside this one once each has read
    every zone served (what changes meanwhile is sent after)."""
    # The zones served unread at start are read first: a worker is sent every zone read.
    await publisher.settled()
    listen = services.settings.dns.listen
    count = services.settings.dns.workers
    if listen is None or count == 1:
        return None
    assert isinstance(publisher.table, WatchedTable)
    workers = DnsWorkers(count, publisher.table, keyring=publisher.keyring,
                         allowed_keys=publisher.allowed_keys, rate_limiter=publisher.rate_limiter,
                         on_transfer=publisher.transfer_served,
                         log_level=services.settings.log_level,
                         tcp_connections_per_source=services.settings.dns
                         .tcp_connections_per_source)
    # A NOTIFY waits for the workers that answer; one still reading the zones binds only
    # once it has read them, and is then sent what changed meanwhile.
    publisher.before_notify = workers.caught_up
    try:
        await workers.start(listen.host, server.port)
    except OSError as exc:
        publisher.before_notify = None
        raise ConfigurationError(f"DNS workers could not start on {listen}: {exc}") from exc
    services.dns_workers.append(workers)  # their counters, for GET /metrics
    return workers


async def _publish_forever(publisher: Publisher) -> None:
    """Bring every zone up to date (the edits made while stopped, the signatures now due,
    zones never published), then refresh and watch them."""
    try:
        await publisher.load_all()
    except Exception:  # each zone is retried by its next edit and by the refresh
        log.exception("dns.load_failed")
    await publisher.run_forever()


async def _start_whois(services: Services) -> WhoisServer | None:
    """Answer WHOIS queries on `[rdds] whois_listen` (`serve --whois`), when set."""
    listen = services.settings.rdds.whois_listen
    if listen is None:
        return None
    server = WhoisServer(services)
    try:
        await server.start(listen.host, listen.port)
    except OSError as exc:
        raise ConfigurationError(f"WHOIS could not listen on {listen}: {exc.strerror}") from exc
    return server


async def _anchor_periodically(services: Services) -> None:
    """Copy the event chain head out of the database now and then (see eventlog/anchors.py)."""
    while True:
        try:
            async with services.store.read() as session:
                await anchor_head(session, services.settings.anchor_file, services.clock.now())
        except (OSError, SQLAlchemyError):
            log.exception("events.anchor_failed")
        await asyncio.sleep(ANCHOR_INTERVAL_SECONDS)


async def _serve_http(server: uvicorn.Server, listen: Listen,
                      bound: socket.socket | None) -> None:
    try:
        await server.serve(sockets=None if bound is None else [bound])
    except SystemExit:  # uvicorn exits the whole process when it cannot bind
        raise ConfigurationError(f"HTTP could not listen on {listen}") from None


def _bind_http(settings: Settings) -> socket.socket | None:
    """With `[http] workers` above 1, the main process's socket on the HTTP port, bound with
    SO_REUSEPORT as the children's are, once a plain bind has shown the port is free (None:
    uvicorn binds it as usual)."""
    listen = settings.http
    if settings.http_workers == 1:
        return None
    try:
        if listen.port:
            check_port_free(listen.host, listen.port, (socket.SOCK_STREAM,))
        return shared_socket(listen)
    except OSError as exc:
        raise ConfigurationError(f"HTTP could not listen on {listen}: {exc.strerror}") from exc


async def _start_http_workers(settings: Settings, bound: socket.socket | None,
                              services: Services) -> HttpWorkers | None:
    """The children serving HTTP beside this process (`[http] workers`), once it serves."""
    if bound is None:
        return None
    workers = HttpWorkers(settings, bound.getsockname()[1], services)
    try:
        await workers.start()
    except OSError as exc:
        raise ConfigurationError(f"HTTP workers could not start on {settings.http}: {exc}"
                                 ) from exc
    return workers
