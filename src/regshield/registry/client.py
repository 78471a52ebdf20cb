"""The registrar's side of EPP: where a registry is (`RegistryEndpoint`), one TLS session with
it (`EppSession`), and the errors a registry link raises. The pool of sessions that the rest
of regshield uses is `registry/pool.py`.

A session connects over TLS (1.2 or later, the registry's certificate verified against the
configured CA), reads the greeting, logs in asking only for the object and extension services
that both we want and the greeting offers, then exchanges one command for one response at a
time. Every document sent and received is checked against the EPP schemas. Each command gets a
fresh clTRID, and a response that does not carry it back is a protocol error: the stream is out
of step and the session is not used again.

Logs name the session, the command, the clTRID, the svTRID and the result code; never a
document, a password or an authorization code.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from regshield.errors import RegshieldError
from regshield.registry.codec import (
    DOMAIN_NS,
    EXTENSION_URIS,
    OBJECT_URIS,
    CodecError,
    ResultCode,
    Secret,
    new_cl_trid,
)
from regshield.registry.commands import (
    Command,
    Extension,
    Login,
    Logout,
    build_command,
    build_hello,
)
from regshield.registry.framing import FramingError, read_frame, write_frame
from regshield.registry.responses import EppResponse, Greeting, parse_greeting, parse_response
from regshield.registry.schemas import validate_epp
from regshield.tasks import cancel_and_wait

log = structlog.get_logger("regshield.registry")

# What a broken link raises from the stream layer: EOF, reset, refused, TLS alerts, timeouts.
CONNECTION_ERRORS = (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError,
                     TimeoutError)


class RegistryError(RegshieldError):
    """Base of the registry link's errors: the registry could not be asked, or answered in a
    way that cannot be used (a result code >= 2000 is not an error here: it is a response)."""

    http_status = 502
    epp_code = 2400
    type_slug = "registry-error"
    title = "The registry link failed"


class RegistryUnavailable(RegistryError):
    """No session could be opened (or the pool is closed). The command was NOT sent: it is
    safe to try again later."""

    http_status = 503
    type_slug = "registry-unavailable"
    title = "The registry cannot be reached"


class RegistryConnectionLost(RegistryError):
    """The connection broke (EOF, reset, TLS error, no answer in time, the registry closing
    the session) after the command was sent and before its response was read.

    The command may or may not have been executed by the registry. It is not retried here: a
    create, renew or transfer sent twice is not the same as once. The outbox and the drift
    detection (an info on the object) decide what happened."""

    http_status = 504
    type_slug = "registry-connection-lost"
    title = "The registry connection was lost; the outcome is unknown"


class RegistryProtocolError(RegistryError):
    """The registry sent something that breaks the protocol: a broken frame, a document that
    does not parse or validate, a response carrying another clTRID, no common object service.
    The session is not used again; for a command, the outcome is unknown, as for
    RegistryConnectionLost."""

    type_slug = "registry-protocol-error"
    title = "The registry broke the EPP protocol"


class RegistryLoginRefused(RegistryError):
    """The registry refused our login (wrong client id, password or client certificate; an
    object service it does not offer). `code` is its result code."""

    type_slug = "registry-login-refused"
    title = "The registry refused the login"

    def __init__(self, code: ResultCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class RegistryEndpoint:
    """How to reach and log in to one registry.

    `password` is a `Secret`, so `repr` of the endpoint never shows it. `ca_certificate` is
    the trust anchor for the registry's server certificate (the sandbox's self-signed
    certificate in tests); `server_hostname` is the name checked in that certificate (by
    default `host`). `object_uris` and `extension_uris` are what we would like; a login asks
    for those the greeting offers too. Timeouts are in seconds."""

    host: str
    port: int
    client_id: str
    password: Secret
    ca_certificate: Path
    client_certificate: Path | None = None
    client_key: Path | None = None
    server_hostname: str | None = None
    object_uris: tuple[str, ...] = OBJECT_URIS
    extension_uris: tuple[str, ...] = EXTENSION_URIS
    minimum_tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    connect_timeout: float = 30.0
    command_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.password, Secret):
            raise TypeError("RegistryEndpoint.password must be a Secret")
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        if self.minimum_tls < ssl.TLSVersion.TLSv1_2:
            raise ValueError("TLS below 1.2 is not allowed (RFC 5734 as updated by RFC 8996)")
        if DOMAIN_NS not in self.object_uris:
            raise ValueError("the domain object service must be wanted")

    def tls_context(self) -> ssl.SSLContext:
        """A client context that verifies the registry against `ca_certificate` only."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cafile=str(self.ca_certificate))
        context.minimum_version = self.minimum_tls
        if self.client_certificate is not None and self.client_key is not None:
            context.load_cert_chain(self.client_certificate, self.client_key)
        return context


_session_numbers = itertools.count(1)


class EppSession:
    """One logged-in (or about to be) EPP session over TLS. One exchange at a time: EPP is
    strictly request then response, so concurrent callers wait for each other here.

    A frame reader runs in the background, so that a registry closing the session while it
    sits idle (EOF, or a last 2500 response) is noticed before the next command is sent:
    `usable` is then False and the command can go over another session unsent."""

    def __init__(self, endpoint: RegistryEndpoint, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, greeting: Greeting) -> None:
        self.endpoint = endpoint
        self.greeting = greeting
        self.label = f"{endpoint.client_id}#{next(_session_numbers)}"
        self.logged_in = False
        self._reader, self._writer = reader, writer
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the stream ended
        self._reading = asyncio.create_task(self._read_frames(), name=f"epp-{self.label}")
        self._lock = asyncio.Lock()
        self._closed = False
        # Monotonic time: an interval between exchanges, not a moment anyone records.
        self.last_exchange = time.monotonic()

    # --- opening and closing -----------------------------------------------------------------

    @classmethod
    async def connect(cls, endpoint: RegistryEndpoint) -> EppSession:
        """A TLS connection to the registry and its greeting (not yet logged in).

        Raises RegistryUnavailable (nothing was sent), RegistryProtocolError."""
        context = endpoint.tls_context()
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    endpoint.host, endpoint.port, ssl=context,
                    server_hostname=endpoint.server_hostname or endpoint.host)
        except CONNECTION_ERRORS as exc:
            raise RegistryUnavailable(f"cannot connect to {endpoint.host}:{endpoint.port}: "
                                      f"{type(exc).__name__}: {exc}") from exc
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                data = await read_frame(reader)
            greeting = parse_greeting(data, validate=validate_epp)
        except CONNECTION_ERRORS as exc:
            _abort(writer)
            raise RegistryUnavailable(f"no greeting from {endpoint.host}:{endpoint.port}: "
                                      f"{type(exc).__name__}") from exc
        except (FramingError, CodecError) as exc:
            _abort(writer)
            raise RegistryProtocolError(f"unreadable greeting: {exc}") from exc
        session = cls(endpoint, reader, writer, greeting)
        log.info("registry:session:connected", session=session.label,
                 server=greeting.server_id)
        return session

    @classmethod
    async def open(cls, endpoint: RegistryEndpoint) -> EppSession:
        """A connected, logged-in session.

        Raises RegistryUnavailable, RegistryLoginRefused, RegistryProtocolError,
        RegistryConnectionLost."""
        session = await cls.connect(endpoint)
        try:
            await session.login()
        except BaseException:
            await session.close()
            raise
        return session

    async def login(self) -> EppResponse:
        """Log in with the services both sides have. Raises RegistryLoginRefused (the session
        is then closed), RegistryProtocolError, RegistryConnectionLost."""
        offered_objects = set(self.greeting.object_uris)
        offered_extensions = set(self.greeting.extension_uris)
        objects = tuple(uri for uri in self.endpoint.object_uris if uri in offered_objects)
        extensions = tuple(uri for uri in self.endpoint.extension_uris
                           if uri in offered_extensions)
        if DOMAIN_NS not in objects:
            await self.close()
            raise RegistryProtocolError(f"{self.greeting.server_id} does not offer the domain "
                                        "object service")
        response = await self.execute(Login(self.endpoint.client_id, self.endpoint.password,
                                            object_uris=objects, extension_uris=extensions))
        if response.code != ResultCode.COMPLETED:
            log.warning("registry:login:refused", session=self.label,
                        client_id=self.endpoint.client_id, code=int(response.code))
            await self.close()
            raise RegistryLoginRefused(
                response.code, f"{self.greeting.server_id} refused the login of "
                f"{self.endpoint.client_id}: {int(response.code)} {response.message}")
        self.logged_in = True
        log.info("registry:login:succeeded", session=self.label,
                 client_id=self.endpoint.client_id, objects=list(objects),
                 extensions=list(extensions))
        return response

    async def logout(self) -> None:
        """Log out and close. A registry that is already gone is not an error here."""
        try:
            if self.usable and self.logged_in:
                await self.execute(Logout())
        except RegistryError as exc:
            log.info("registry:logout:failed", session=self.label,
                     error_type=type(exc).__name__)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the connection without logging out."""
        if self._closed:
            return
        self._closed = True
        self._reading.cancel()
        self._writer.close()
        try:
            async with asyncio.timeout(5):
                await self._writer.wait_closed()
        except CONNECTION_ERRORS:
            pass
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this task is being stopped, not only the stream
        await cancel_and_wait([self._reading])

    @property
    def usable(self) -> bool:
        """Whether a command may be sent: open, nothing unasked-for received, stream alive."""
        return not (self._closed or self._reading.done() or not self._frames.empty()
                    or self._writer.is_closing())

    def idle_for(self) -> float:
        return time.monotonic() - self.last_exchange

    # --- exchanges ---------------------------------------------------------------------------

    async def execute(self, command: Command, *, extensions: Sequence[Extension] = (),
                      cl_trid: str | None = None) -> EppResponse:
        """Send one command and return its response, whatever its result code (codes >= 2000
        are the caller's to map). After 1500, 2500, 2501 or 2502 the session is closed.

        Raises CodecError (the command itself is invalid; nothing was sent),
        RegistryUnavailable (the session was not usable; nothing was sent),
        RegistryConnectionLost and RegistryProtocolError (the outcome is unknown)."""
        cl_trid = cl_trid or new_cl_trid()
        data = build_command(command, extensions=extensions, cl_trid=cl_trid,
                             validate=validate_epp)
        verb = f"{command.object_type or 'epp'}:{command.verb}"
        async with self._lock:
            answer = await self._exchange(data, verb)
            try:
                response = parse_response(answer, validate=validate_epp)
            except CodecError as exc:
                await self.close()
                raise RegistryProtocolError(f"unreadable response to {verb}: {exc}") from exc
            if response.cl_trid != cl_trid:
                await self.close()
                if response.cl_trid is None and response.code.closes_session:
                    raise RegistryConnectionLost(
                        f"the registry closed the session during {verb}: "
                        f"{int(response.code)} {response.message}")
                raise RegistryProtocolError(f"the response to {verb} carries clTRID "
                                            f"{response.cl_trid!r}, not {cl_trid!r}")
        log.info("registry:command:answered", session=self.label, command=verb,
                 cl_trid=cl_trid, sv_trid=response.sv_trid, code=int(response.code))
        if response.code.closes_session:
            await self.close()
        return response

    async def hello(self) -> Greeting:
        """Ask for a greeting; keeps the session from being closed as idle. Raises as
        `execute` does."""
        async with self._lock:
            answer = await self._exchange(build_hello(validate=validate_epp), "epp:hello")
            try:
                self.greeting = parse_greeting(answer, validate=validate_epp)
            except CodecError as exc:
                await self.close()
                raise RegistryProtocolError(f"unreadable answer to hello: {exc}") from exc
        log.debug("registry:hello:answered", session=self.label)
        return self.greeting

    async def _exchange(self, data: bytes, verb: str) -> bytes:
        if not self.usable:
            await self.close()
            raise RegistryUnavailable(f"session {self.label} is closed; {verb} was not sent")
        self.last_exchange = time.monotonic()
        try:
            await write_frame(self._writer, data)
            async with asyncio.timeout(self.endpoint.command_timeout):
                answer = await self._frames.get()
        except CONNECTION_ERRORS as exc:
            await self.close()
            raise RegistryConnectionLost(f"{verb} on session {self.label}: "
                                         f"{type(exc).__name__}") from exc
        finally:
            self.last_exchange = time.monotonic()
        if answer is None:
            await self.close()
            raise RegistryConnectionLost(f"{verb} on session {self.label}: the registry "
                                         "closed the connection")
        return answer

    async def _read_frames(self) -> None:
        try:
            while True:
                self._frames.put_nowait(await read_frame(self._reader))
        except (*CONNECTION_ERRORS, FramingError) as exc:
            log.info("registry:session:ended", session=self.label,
                     reason=type(exc).__name__)
            self._frames.put_nowait(None)


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.close()
