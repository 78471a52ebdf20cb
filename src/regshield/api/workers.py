"""HTTP workers: more processes serving the HTTP application on the same port.

With `[http] workers = N` (N above 1 needs PostgreSQL), `regshield serve` serves HTTP in N
processes: the main one and N - 1 children started here (processes.py: fresh interpreters,
watched, replaced when one dies, gone when the main process is). Each binds the HTTP port with
SO_REUSEPORT, and the kernel spreads connections over them by a hash of the source address
and port. A child runs the ASGI application only, `create_app(Services.open(settings))`, under
uvicorn with the same connection guard and limits as the main process (`http_config`); the
outbox worker, sweeps, polls, key plans, the DNS publisher, the RDAP materializer, the sandbox
registry and WHOIS run in the main process alone. A child runs no migration and initializes
nothing: it starts once the main process serves.

The main process sends a child its settings down the pipe (pickled: they hold the database
URL and other secrets, which must not appear on a command line), then, each second, the
other processes' counters (JSON); the child reports that it listens, or why it could not,
then its own counters each second. It stops when the pipe closes (the main process
stopped or died) or on SIGTERM, giving requests in flight `STOP_GRACE_SECONDS` to finish.

What each process keeps apart: its connection guard (`[limits] http_connections_per_source`
is counted per process, so one source may hold up to N times as many connections), its
counters for GET /metrics (shared each second over the pipes, so that a scrape reports every
process's, api/figures.py), its RDAP document
cache (rdds/documents.py, loaded at the child's start and checked for changes by any process
every half second), its
share of each registry link's sessions (`PoolShare`, registry/links.py) and its database pools
(PostgreSQL must allow N times their connections). Rate limits of RDAP, WHOIS, the contact
form, the API and logins live in the store every process shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import multiprocessing.connection
import os
import pickle
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn

from regshield.api.app import API_PREFIX, create_app
from regshield.api.figures import SHARE_SECONDS, Heard, LimitFigures
from regshield.api.listener import guarded_protocol, listener_answers
from regshield.config import Listen, Settings
from regshield.dns.server import DnsFigures
from regshield.processes import Child, Workers, run_serving, send_report, settle
from regshield.rdds.documents import load_memory
from regshield.registry.links import PoolShare
from regshield.services import Services

log = structlog.get_logger("regshield.http")

STOP_GRACE_SECONDS = 3  # within processes.STOP_TIMEOUT_SECONDS, after which a child is killed


def http_config(services: Services, listen: Listen) -> uvicorn.Config:
    """uvicorn's settings for the HTTP listener: the application, and a connection guard with
    the deadlines and per-source cap of `[limits]` (api/listener.py) that answers anonymous
    RDAP domain lookups from memory itself (api/rdap_memory.py)."""
    limits = services.settings.limits
    return uvicorn.Config(
        create_app(services), host=listen.host, port=listen.port,
        http=guarded_protocol(limits, services.limits.connections_refused,
                              listener_answers(services, API_PREFIX),
                              services.settings.http_trusted_proxies),
        timeout_keep_alive=limits.http_keep_alive_timeout,
        log_config=None, access_log=False, proxy_headers=False, server_header=False,
        lifespan="off",
    )


class HttpServer(uvicorn.Server):
    """uvicorn's server, but stopping is ours: uvicorn re-raises the signal after its own
    shutdown, which would kill the process before the worker and the database close."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True


def shared_socket(listen: Listen) -> socket.socket:
    """A TCP socket bound to `listen` with SO_REUSEPORT, for uvicorn to listen on: every
    process serving HTTP binds one (see `processes.check_port_free` for the first)."""
    family, kind, protocol, _, address = socket.getaddrinfo(listen.host, listen.port,
                                                            type=socket.SOCK_STREAM)[0]
    # With the protocol named (IPPROTO_TCP, not 0), asyncio sets TCP_NODELAY on each accepted
    # connection, as on the sockets it makes itself: without it, Nagle's algorithm and the
    # client's delayed ACK hold every keep-alive answer for some 40 ms.
    bound = socket.socket(family, kind, protocol)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # as asyncio binds: IPv6 only, IPv4 apart
            bound.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        bound.bind(address)
    except OSError:
        bound.close()
        raise
    return bound


class HttpWorkers(Workers):
    """The `settings.http_workers - 1` children serving HTTP beside the main process, which
    listens on `port` (the port bound, when `[http] listen` asks for any) with SO_REUSEPORT."""

    module = __name__
    topic = "http:workers"
    label = "an HTTP worker"

    def __init__(self, settings: Settings, port: int, services: Services | None = None
                 ) -> None:
        super().__init__(settings.http_workers, log_level=settings.log_level)
        self.settings = settings
        self.port = port
        # For GET /metrics (api/figures.py): the main process's services, each child's counts
        # as it last reported them, and the last counts of children that have exited.
        self.services = services
        self._heard: dict[int, LimitFigures] = {}  # by pid
        self._retired = LimitFigures()

    async def start(self) -> None:
        """Start the children; returns once every one listens (OSError when one cannot)."""
        await self.start_children()
        if self.services is not None:
            self.background(self._share_figures(self.services))

    def dns_figures(self) -> DnsFigures | None:
        return None  # this process's scrapes ask the DNS servers and workers themselves

    def limit_figures(self) -> LimitFigures:
        """The children's counts, as last reported, and those of children that exited."""
        total = LimitFigures()
        total.add(self._retired)
        for figures in self._heard.values():
            total.add(figures)
        return total

    def handle_report(self, child: Child, report: dict[str, Any]) -> None:
        figures = report.get("figures")
        if report.get("kind") == "figures" and isinstance(figures, dict):
            self._heard[child.process.pid] = LimitFigures.of_report(figures)

    def child_exited(self, child: Child) -> None:
        figures = self._heard.pop(child.process.pid, None)
        if figures is not None:
            self._retired.add(figures)  # so that no total falls when a child is replaced

    async def _share_figures(self, services: Services) -> None:
        """Each second, tell every child the sum of the other processes' counts, and the DNS
        figures of this process's servers and workers."""
        while True:
            await asyncio.sleep(SHARE_SECONDS)
            try:
                own = LimitFigures.of(services)
                dns = None
                if services.dns_servers:
                    dns = DnsFigures()
                    for server in services.dns_servers:
                        dns.add(server.figures())
                    for dns_workers in list(services.dns_workers):
                        for counted in await dns_workers.counters():
                            dns.add(counted.figures)
            except Exception as error:  # a figure missed must not end the sharing for good
                log.warning("http:workers:figures_failed", error_type=type(error).__name__)
                continue
            for child in self.started_children():
                others = LimitFigures()
                others.add(own)
                others.add(self._retired)
                for pid, figures in self._heard.items():
                    if pid != child.process.pid:
                        others.add(figures)
                self.deliver(child, json.dumps({
                    "kind": "figures", "figures": others.as_report(),
                    "dns": dataclasses.asdict(dns) if dns is not None else None}).encode())

    def arguments(self) -> dict[str, Any]:
        return {"host": self.settings.http.host, "port": self.port,
                "log_level": self.log_level}

    async def introduce(self, child: Child) -> None:
        self.deliver(child, pickle.dumps(self.settings))


# --- the child process -----------------------------------------------------------------------


def child_main(descriptor: int, host: str, port: int, log_level: str) -> None:
    """A worker process: serve the HTTP application on `host`:`port` with the settings the
    main process sends down the socket `descriptor`, until it closes."""
    from regshield import logs

    logs.configure(log_level)
    # As in the main process (cli/main.py sets standard logging up at "warning" first):
    # uvicorn's own plain-text lines only from warnings up.
    logging.getLogger("uvicorn").setLevel(max(logging.WARNING, logging.getLogger().level))
    connection = multiprocessing.connection.Connection(descriptor)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        # Only the main process writes to this pipe (it started this one).
        settings = pickle.loads(connection.recv_bytes())  # noqa: S301
    except (EOFError, OSError):
        return
    run_serving(_serve(connection, settings, Listen(host, port)))


async def _serve(connection: multiprocessing.connection.Connection, settings: Settings,
                 listen: Listen) -> None:
    services = Services.open(settings, share=PoolShare(settings.http_workers, main=False))
    heard = services.other_processes = Heard()
    try:
        await services.life.hold()  # for the registry operations its requests run
        server = HttpServer(http_config(services, listen))
        server.config.timeout_graceful_shutdown = STOP_GRACE_SECONDS
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.stop)
        threading.Thread(target=_read_pipe, args=(connection, loop, server, heard),
                         name="http-worker-pipe", daemon=True).start()
        try:
            bound = shared_socket(listen)
        except OSError as error:
            send_report(connection, {"kind": "failed", "reason":
                                     f"HTTP could not listen on {listen}: {error.strerror}"})
            return
        serving = asyncio.ensure_future(server.serve(sockets=[bound]))
        while not server.started:
            if serving.done():
                send_report(connection, {"kind": "failed",
                                         "reason": f"HTTP could not serve on {listen}"})
                await serving
                return
            await asyncio.sleep(0.05)
        send_report(connection, {"kind": "started", "pid": os.getpid()})
        settle()
        log.info("http:worker:started", pid=os.getpid(), listen=str(listen))
        loading = asyncio.ensure_future(load_memory(services))  # RDAP answers from memory
        reporting = asyncio.ensure_future(_report_figures(connection, services))
        try:
            await serving
        finally:
            for task in (loading, reporting):
                task.cancel()
            await asyncio.gather(loading, reporting, return_exceptions=True)
    finally:
        await services.close()


async def _report_figures(connection: multiprocessing.connection.Connection,
                          services: Services) -> None:
    """Tell the main process this process's counters each second (api/figures.py)."""
    while True:
        await asyncio.sleep(SHARE_SECONDS)
        send_report(connection, {"kind": "figures",
                                 "figures": LimitFigures.of(services).as_report()})


def _read_pipe(connection: multiprocessing.connection.Connection,
               loop: asyncio.AbstractEventLoop, server: HttpServer, heard: Heard) -> None:
    """In a thread: keep the other processes' counters the main process sends, until the
    pipe closes; then stop the server."""
    with contextlib.suppress(EOFError, OSError):
        while True:
            wire = connection.recv_bytes()
            with contextlib.suppress(ValueError):
                message = json.loads(wire)
                if isinstance(message, dict) and message.get("kind") == "figures" \
                        and isinstance(message.get("figures"), dict):
                    heard.figures = LimitFigures.of_report(message["figures"])
                    dns = message.get("dns")
                    heard.dns = DnsFigures.of_report(dns) if isinstance(dns, dict) else None
    with contextlib.suppress(RuntimeError):  # the loop has closed: the child is stopping
        loop.call_soon_threadsafe(server.stop)
