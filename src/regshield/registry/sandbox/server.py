"""The sandbox registry's listener: EPP over TLS (RFC 5734) on one address.

Connections are accepted as plain sockets and handed to the TLS layer at once (TLS 1.2 or
later), nothing read before, so that each handshake uses the client certificates registered at
that moment: a registrar added with
`regshield sandbox-registry add-registrar` while the server runs can connect right away.
Client certificates are optional at the TLS layer; a registrar that was added with one must
present exactly that certificate (compared by SHA-256 fingerprint at login). The registrars'
certificates are the only trust anchors, so a self-signed certificate works as it does at most
registries' OT&E.

Each session gets the greeting on connection, then one response per data unit. A broken frame,
a frame longer than `max_frame_bytes` (refused from its length header, never allocated), a
session not logged in within `login_timeout` or idle for `idle_timeout` closes the
connection; nothing a client sends stops the server. Connections are capped in total and per
source address (`max_connections`, `connections_per_source`): one more is closed before its
TLS handshake costs anything. Each connection closed early is counted in `refused` by
(`"sandbox"`, reason): `no_slot`, `per_source`, `frame` (a broken or oversized frame),
`login_timeout`, `idle_timeout` (GET /metrics shows them, `regshield serve` passing its
listeners' counter). A timer
does the registry's own work as time passes (schedule.py) while the server runs.

With a DNS address configured, the server also serves its TLD zones there (zone.py), started
and stopped with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import Counter
from pathlib import Path

import structlog

from regshield.clock import Clock
from regshield.registry.codec import ResultCode
from regshield.registry.framing import FramingError, read_frame, write_frame
from regshield.registry.responses import build_response
from regshield.registry.sandbox.certificates import ensure_server_certificate, fingerprint
from regshield.registry.sandbox.schedule import run_schedule
from regshield.registry.sandbox.sessions import SandboxSession, new_sv_trid
from regshield.registry.sandbox.state import SandboxConfig, SandboxState
from regshield.registry.sandbox.zone import SandboxDns
from regshield.registry.schemas import validate_epp

HANDSHAKE_TIMEOUT = 30.0
log = structlog.get_logger("regshield.sandbox")


class SandboxServer:
    """A running sandbox registry. `start` opens its state, listens (EPP, and DNS when
    configured: `dns`) and starts the timer; `close` stops them all."""

    def __init__(self, state: SandboxState, certificate: Path, key: Path,
                 refused: Counter[tuple[str, str]] | None = None) -> None:
        self.state = state
        self.refused: Counter[tuple[str, str]] = refused if refused is not None else Counter()
        self.certificate = certificate
        self.key = key
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._per_source: Counter[str] = Counter()
        self._timer: asyncio.Task[None] | None = None
        self.dns: SandboxDns | None = None

    @classmethod
    async def start(cls, config: SandboxConfig, clock: Clock | None = None, *,
                    refused: Counter[tuple[str, str]] | None = None) -> SandboxServer:
        state = await SandboxState.open(config, clock)
        certificate, key = ensure_server_certificate(config.directory, state.clock.now())
        server = cls(state, certificate, key, refused)
        try:
            if config.dns_listen is not None:
                server.dns = await SandboxDns.start(state, config.dns_listen)
            server._listener = socket.create_server((config.listen.host, config.listen.port))
            server._listener.setblocking(False)
        except BaseException:
            if server.dns is not None:
                await server.dns.close()
            await state.close()
            raise
        server._accepting = asyncio.create_task(server._accept_forever(), name="sandbox-accept")
        server._timer = asyncio.create_task(run_schedule(state), name="sandbox-schedule")
        return server

    @property
    def port(self) -> int:
        """The port actually bound (the configured one, or the one the system chose for 0)."""
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    async def serve_forever(self) -> None:
        assert self._accepting is not None
        await self._accepting

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.dns is not None:
            await self.dns.close()
        await self.state.close()

    async def _tls_context(self) -> ssl.SSLContext:
        trusted = await self.state.client_certificates()
        context = self._contexts.get(trusted)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self.certificate, self.key)
            context.verify_mode = ssl.CERT_OPTIONAL
            if trusted:
                context.load_verify_locations(cadata="\n".join(trusted))
            self._contexts = {trusted: context}  # only the newest set is worth keeping
        return context

    async def _accept_forever(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, peer = await loop.sock_accept(self._listener)
            except OSError as exc:  # out of descriptors, a connection reset while queued
                log.warning("sandbox:accept:failed", error_type=type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            source = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            config = self.state.config
            reason = ("no_slot" if len(self._connections) >= config.max_connections
                      else "per_source" if self._per_source[source] >= config.connections_per_source
                      else None)
            if reason is not None:
                log.info("sandbox:connection:refused", reason=reason)
                self.refused["sandbox", reason] += 1
                connection.close()
                continue
            task = asyncio.create_task(self._connection(connection, source))
            self._connections.add(task)
            self._per_source[source] += 1

    async def _connection(self, connection: socket.socket, source: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        writer: asyncio.StreamWriter | None = None
        try:
            # The TLS layer reads the client's first bytes (its ClientHello): nothing before.
            reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, connection, ssl=await self._tls_context(),
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self._session(reader, writer)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError) as exc:
            log.info("sandbox:connection:dropped", error_type=type(exc).__name__)
        except asyncio.CancelledError:
            # The server is closing: the connection ends with it.
            log.info("sandbox:connection:closed_by_shutdown")
        except Exception:
            log.exception("sandbox:connection:crashed")
        finally:
            self._connections.discard(task)
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]
            if writer is None:
                connection.close()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        peer = tls.getpeercert(binary_form=True) if tls is not None else None
        session = SandboxSession(self.state, fingerprint(peer) if peer else None)
        await write_frame(writer, session.greeting())
        config = self.state.config
        login_deadline = time.monotonic() + config.login_timeout
        while True:
            # A whole frame must arrive within the wait, however slowly its bytes trickle.
            wait = config.idle_timeout
            if session.client_id is None:
                wait = min(wait, max(0.0, login_deadline - time.monotonic()))
            try:
                async with asyncio.timeout(wait):
                    data = await read_frame(reader, config.max_frame_bytes)
            except asyncio.IncompleteReadError:
                return  # the client hung up
            except TimeoutError:
                idle = session.client_id is not None
                self.refused["sandbox", "idle_timeout" if idle else "login_timeout"] += 1
                await self._last_word(writer, "session idle for too long" if idle
                                      else "no login within the allowed time")
                return
            except FramingError as exc:
                # The stream cannot be resynchronized after a bad length: say why, then close.
                self.refused["sandbox", "frame"] += 1
                await self._last_word(writer, str(exc))
                return
            reply = await session.handle(data)
            await write_frame(writer, reply.data)
            if reply.close:
                return

    async def _last_word(self, writer: asyncio.StreamWriter, reason: str) -> None:
        response = build_response(ResultCode.COMMAND_FAILED_CLOSING, reason, None,
                                  new_sv_trid(), validate=validate_epp)
        with contextlib.suppress(ConnectionError, OSError):
            await write_frame(writer, response)
