"""The EPP client and its session pool, against the sandbox registry over TLS on loopback.

A small TCP relay stands between client and registry where a test needs the connection to
break at a chosen moment: it passes the TLS bytes through untouched, and can drop the
connection when the registry's answer comes back, after the registry has acted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from registry.sandbox.test_server import client_certificate
from regshield.config import Listen
from regshield.registry.client import (
    EppSession,
    RegistryConnectionLost,
    RegistryEndpoint,
    RegistryLoginRefused,
    RegistryProtocolError,
    RegistryUnavailable,
)
from regshield.registry.codec import (
    DOMAIN_NS,
    EXTENSION_URIS,
    HOST_NS,
    Period,
    ResultCode,
    Secret,
)
from regshield.registry.commands import (
    DomainCheck,
    DomainCreate,
    DomainInfo,
    parse_command,
)
from regshield.registry.framing import read_frame, write_frame
from regshield.registry.pool import Backoff, EppPool
from regshield.registry.responses import (
    DomainCheckData,
    DomainCreateData,
    DomainInfoData,
    Greeting,
    build_greeting,
    build_response,
)
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import SandboxConfig
from regshield.registry.schemas import validate_epp

PASSWORD_A = "sandbox-pass-A1"
PASSWORD_C = "sandbox-pass-C3"
AUTH_INFO = "Xy7!Transfer-Code-2026"
FAST = Backoff(initial=0.01, maximum=0.05, attempts=3)


class Registry:
    """A sandbox registry that a test can stop and start again on the same port."""

    def __init__(self, tmp: Path, idle_timeout: float) -> None:
        self.tmp = tmp
        self.idle_timeout = idle_timeout
        self.port = 0
        self.server: SandboxServer | None = None

    async def start(self) -> SandboxServer:
        config = SandboxConfig(directory=self.tmp / "sandbox-registry",
                               listen=Listen("127.0.0.1", self.port),
                               idle_timeout=self.idle_timeout)
        self.server = await SandboxServer.start(config)
        self.port = self.server.port
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    def endpoint(self, client_id: str = "registrar-a", password: str = PASSWORD_A, *,
                 port: int | None = None, certificate: tuple[Path, Path] | None = None,
                 ) -> RegistryEndpoint:
        return RegistryEndpoint(
            host="127.0.0.1", port=port or self.port, client_id=client_id,
            password=Secret(password),
            ca_certificate=self.tmp / "sandbox-registry" / "server-certificate.pem",
            client_certificate=certificate[0] if certificate else None,
            client_key=certificate[1] if certificate else None,
            server_hostname="localhost", connect_timeout=5, command_timeout=5,
            # Without contact-1.0, as a link with `contacts = false` logs in: the sandbox then
            # keeps the registrant as given. These tests are about the pool, not contacts.
            object_uris=(DOMAIN_NS, HOST_NS))


async def open_registry(tmp: Path, idle_timeout: float = 600.0) -> Registry:
    registry = Registry(tmp, idle_timeout)
    server = await registry.start()
    await server.state.add_registrar("registrar-a", PASSWORD_A)
    return registry


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    registry = await open_registry(tmp_path)
    yield registry
    await registry.stop()


class Relay:
    """Passes bytes between the client and the registry; with `cut` set, the next bytes from
    the registry are dropped and both connections closed."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1",
                                                                     self.upstream_port)
        writers = (client_writer, server_writer)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       from_registry: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if from_registry and self.cut:
                        break
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                for each in writers:
                    each.close()

        try:
            await asyncio.gather(pipe(client_reader, server_writer, False),
                                 pipe(server_reader, client_writer, True))
        finally:
            self._tasks.discard(task)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most five seconds) for something the event loop will make true."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not become true within five seconds")


def create(name: str) -> DomainCreate:
    return DomainCreate(name=name, auth_info=Secret(AUTH_INFO), period=Period(1),
                        nameservers=("ns1.example.net", "ns2.example.net"),
                        registrant="holder-1")


# --- the pool as its users see it -----------------------------------------------------------

async def test_a_pool_logs_in_and_checks_creates_and_reads_a_domain(registry: Registry) -> None:
    async with EppPool(registry.endpoint()) as pool:
        before = await pool.execute(DomainCheck(("first.test",)))
        created = await pool.execute(create("first.test"))
        info = await pool.execute(DomainInfo("first.test"))
        after = await pool.execute(DomainCheck(("first.test",)))

    assert before.code == created.code == info.code == after.code == ResultCode.COMPLETED
    checked_before, checked_after = before.item(DomainCheckData), after.item(DomainCheckData)
    assert checked_before is not None and checked_before.results[0].available
    assert checked_after is not None and not checked_after.results[0].available
    creation = created.item(DomainCreateData)
    assert creation is not None and creation.name == "first.test"
    details = info.item(DomainInfoData)
    assert details is not None and details.sponsoring_client == "registrar-a"


async def test_login_asks_only_for_the_services_the_greeting_offers(registry: Registry) -> None:
    # We also want change poll, which the sandbox does not offer and would refuse (2103) in a
    # login asking for it.
    change_poll = "urn:ietf:params:xml:ns:changePoll-1.0"
    endpoint = dataclasses.replace(registry.endpoint(),
                                   extension_uris=(*EXTENSION_URIS, change_poll))
    session = await EppSession.open(endpoint)
    try:
        assert change_poll not in session.greeting.extension_uris
        assert session.logged_in
    finally:
        await session.logout()
    assert not session.usable


async def test_an_error_result_is_returned_as_a_response(registry: Registry) -> None:
    async with EppPool(registry.endpoint()) as pool:
        missing = await pool.execute(DomainInfo("never-created.test"))
        twice = [await pool.execute(create("twice.test")) for _ in range(2)]
        still = await pool.execute(DomainCheck(("twice.test",)))

    assert missing.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert [r.code for r in twice] == [ResultCode.COMPLETED, ResultCode.OBJECT_EXISTS]
    assert still.code == ResultCode.COMPLETED


async def test_twenty_concurrent_checks_share_two_sessions_and_each_gets_its_answer(
        registry: Registry) -> None:
    names = [f"name-{n}.test" for n in range(20)]
    async with EppPool(registry.endpoint(), size=2) as pool:
        with structlog.testing.capture_logs() as entries:
            responses = await asyncio.gather(*(
                pool.execute(DomainCheck((name,)), cl_trid=f"CHK-{n:04d}")
                for n, name in enumerate(names)))
        assert pool.connected == 2

    assert [r.cl_trid for r in responses] == [f"CHK-{n:04d}" for n in range(20)]
    for name, response in zip(names, responses, strict=True):
        data = response.item(DomainCheckData)
        assert data is not None and data.results[0].name == name
    answered = [e for e in entries if e["event"] == "registry:command:answered"]
    assert len(answered) == 20
    assert len({e["session"] for e in answered}) == 2


async def test_a_session_is_used_by_one_caller_at_a_time(registry: Registry) -> None:
    async with EppPool(registry.endpoint(), size=1) as pool:
        async with pool.session() as session:
            waiting = asyncio.ensure_future(pool.execute(DomainCheck(("queued.test",))))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            first = await session.execute(create("held.test"))
        queued = await asyncio.wait_for(waiting, 5)

    assert first.code == queued.code == ResultCode.COMPLETED


# --- credentials -----------------------------------------------------------------------------

async def test_a_wrong_password_is_refused_clearly_and_not_tried_again(
        registry: Registry) -> None:
    pool = EppPool(registry.endpoint(password="not-the-pass"))

    with structlog.testing.capture_logs() as entries:
        with pytest.raises(RegistryLoginRefused) as refused:
            await pool.start()
        with pytest.raises(RegistryLoginRefused):
            await pool.execute(DomainCheck(("any.test",)))

    assert refused.value.code == ResultCode.AUTHENTICATION_ERROR
    assert "refused the login of registrar-a: 2200 Authentication error" in str(refused.value)
    assert len([e for e in entries if e["event"] == "registry:login:refused"]) == 1


async def test_the_client_certificate_the_registrar_registered_is_presented(
        registry: Registry) -> None:
    certificate = client_certificate(registry.tmp, "registrar-c")
    assert registry.server is not None
    await registry.server.state.add_registrar("registrar-c", PASSWORD_C,
                                              certificate[0].read_bytes())

    async with EppPool(registry.endpoint("registrar-c", PASSWORD_C,
                                         certificate=certificate)) as pool:
        answered = await pool.execute(DomainCheck(("with-certificate.test",)))
    with pytest.raises(RegistryLoginRefused) as without:
        await EppPool(registry.endpoint("registrar-c", PASSWORD_C)).start()

    assert answered.code == ResultCode.COMPLETED
    assert without.value.code == ResultCode.AUTHENTICATION_ERROR


async def test_a_registry_certificate_from_another_authority_is_refused(
        registry: Registry) -> None:
    other_authority, _ = client_certificate(registry.tmp, "someone-else")
    endpoint = dataclasses.replace(registry.endpoint(), ca_certificate=other_authority)

    with pytest.raises(RegistryUnavailable, match="SSLCertVerificationError"):
        await EppSession.connect(endpoint)


async def test_the_password_never_appears_in_repr_or_logs(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = registry.endpoint()
    wrong = registry.endpoint(password="wrong-pass-9")

    with structlog.testing.capture_logs() as entries:
        async with EppPool(endpoint) as pool:
            await pool.execute(create("private.test"))
        with pytest.raises(RegistryLoginRefused) as refused:
            await EppPool(wrong).start()

    shown = "\n".join([repr(endpoint), str(endpoint), repr(wrong), str(refused.value),
                       repr(entries), caplog.text])
    assert "Secret('********')" in repr(endpoint)
    for secret in (PASSWORD_A, "wrong-pass-9", AUTH_INFO):
        assert secret not in shown


def test_tls_older_than_1_2_cannot_be_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TLS below 1\.2"):
        RegistryEndpoint(host="127.0.0.1", port=700, client_id="registrar-a",
                         password=Secret(PASSWORD_A), ca_certificate=tmp_path / "ca.pem",
                         minimum_tls=ssl.TLSVersion.TLSv1_1)


# --- broken connections ----------------------------------------------------------------------

async def test_a_connection_lost_in_flight_is_reported_and_not_retried(
        registry: Registry) -> None:
    relay = Relay(registry.port)
    await relay.start()
    try:
        async with EppPool(registry.endpoint(port=relay.port), size=1,
                           backoff=FAST) as pool:
            relay.cut = True
            with pytest.raises(RegistryConnectionLost, match="domain:create"):
                await pool.execute(create("in-flight.test"))
            relay.cut = False
            # The registry did act: an info, as drift detection would send, shows it.
            info = await pool.execute(DomainInfo("in-flight.test"))
    finally:
        await relay.close()

    assert info.code == ResultCode.COMPLETED


async def test_the_pool_recovers_when_the_registry_restarts(registry: Registry) -> None:
    async with EppPool(registry.endpoint(), size=2, backoff=FAST) as pool:
        assert (await pool.execute(DomainCheck(("before.test",)))).succeeded
        await registry.stop()
        await registry.start()

        # The registry's close may or may not have reached us before the next command: it
        # is then sent over a new session, or reported lost, never silently resent.
        with contextlib.suppress(RegistryConnectionLost):
            await pool.execute(DomainCheck(("during.test",)))
        after = await pool.execute(DomainCheck(("after.test",)))

    assert after.code == ResultCode.COMPLETED


async def test_an_unreachable_registry_is_unavailable_after_bounded_attempts(
        registry: Registry) -> None:
    async with EppPool(registry.endpoint(), size=1, backoff=FAST) as pool:
        await registry.stop()
        await until(lambda: pool.connected == 0)  # the registry's close has reached us

        with structlog.testing.capture_logs() as entries, \
                pytest.raises(RegistryUnavailable, match="after 3 attempts"):
            await pool.execute(DomainCheck(("down.test",)))
        await registry.start()
        back = await pool.execute(DomainCheck(("back.test",)))

    retries = [e for e in entries if e["event"] == "registry:session:reconnecting"]
    assert [e["failures"] for e in retries] == [1, 2]
    assert all(e["delay"] <= FAST.maximum for e in retries)
    assert back.code == ResultCode.COMPLETED


def test_backoff_doubles_with_jitter_up_to_its_bound() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, attempts=10)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        delays = [backoff.delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


# --- keepalive -------------------------------------------------------------------------------

async def test_an_idle_session_is_kept_alive_with_hello(tmp_path: Path) -> None:
    registry = await open_registry(tmp_path, idle_timeout=0.4)
    try:
        with structlog.testing.capture_logs() as entries:
            async with EppPool(registry.endpoint(), size=1, idle_interval=0.1) as pool:
                async with pool.session() as session:
                    first = session
                await asyncio.sleep(1.0)  # more than twice the registry's idle timeout
                async with pool.session() as session:
                    assert session is first
                    answered = await session.execute(DomainCheck(("awake.test",)))
    finally:
        await registry.stop()

    assert answered.code == ResultCode.COMPLETED
    assert len([e for e in entries if e["event"] == "registry:hello:answered"]) >= 3


# --- a registry that breaks the protocol -----------------------------------------------------

@contextlib.asynccontextmanager
async def fake_registry_session(
        registry: Registry, on_command: Callable[[asyncio.StreamWriter], Awaitable[None]]
) -> AsyncIterator[EppSession]:
    """A session with a fake registry (the sandbox's certificate) that greets, accepts the
    login, reads one command and then runs `on_command` instead of answering it properly."""
    assert registry.server is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(registry.server.certificate, registry.server.key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greeting = Greeting("fake-registry", datetime.now(UTC), object_uris=(DOMAIN_NS,),
                            extension_uris=())
        await write_frame(writer, build_greeting(greeting, validate=validate_epp))
        login = parse_command(await read_frame(reader))
        await write_frame(writer, build_response(1000, None, login.cl_trid, "FAKE-0001"))
        await read_frame(reader)
        await on_command(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await read_frame(reader)
        writer.close()

    fake = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield await EppSession.open(registry.endpoint(
            port=int(fake.sockets[0].getsockname()[1])))
    finally:
        fake.close()
        await fake.wait_closed()


async def test_a_response_with_another_cltrid_is_a_protocol_error(registry: Registry) -> None:
    """A registry that answers the login properly, then answers a command with someone
    else's clTRID."""
    async def mixed_up(writer: asyncio.StreamWriter) -> None:
        await write_frame(writer, build_response(1000, None, "SOMEONE-ELSE", "FAKE-0002"))

    async with fake_registry_session(registry, mixed_up) as session:
        with pytest.raises(RegistryProtocolError, match="SOMEONE-ELSE"):
            await session.execute(DomainCheck(("mixed-up.test",)), cl_trid="MINE-0001")
        assert not session.usable


async def test_a_command_cancelled_as_its_answer_arrives_is_cancelled(
        registry: Registry) -> None:
    """A poller stopped by the server at the moment the registry's answer comes in: the
    stop must win, or the poller runs on and the server never finishes stopping. The answer
    is handed to the session in the same turn of the loop as the cancellation."""
    asked = asyncio.Event()

    async def no_answer(_writer: asyncio.StreamWriter) -> None:
        asked.set()

    async with fake_registry_session(registry, no_answer) as session:
        command = asyncio.create_task(
            session.execute(DomainCheck(("stopped.test",)), cl_trid="MINE-0001"))
        await asyncio.wait_for(asyncio.shield(asked.wait()), timeout=10)
        await asyncio.sleep(0.05)  # the command now waits for its answer
        session._frames.put_nowait(build_response(1000, None, "MINE-0001", "FAKE-0002"))
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await command
        assert not session.usable  # the answer nobody read is still queued
        await session.close()


async def test_free_sessions_go_to_callers_first_come_first_served() -> None:
    # Four slots, sixteen callers that give a slot back and ask again at once: each caller
    # must get its turn, not the four that happened to hold slots first.
    from regshield.registry.pool import FairQueue

    slots: FairQueue[int] = FairQueue()
    for number in range(4):
        slots.put_nowait(number)
    grants: list[int] = []

    async def caller(index: int) -> None:
        for _ in range(25):
            slot = await slots.get()
            grants.append(index)
            await asyncio.sleep(0)
            slots.put_nowait(slot)

    await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(16))), timeout=10)
    # In any 64 grants in a row, each of the sixteen callers had exactly four.
    for start in range(0, len(grants) - 64, 16):
        window = grants[start:start + 64]
        assert sorted(window.count(i) for i in range(16)) == [4] * 16, start
    assert sorted(slots.get_nowait() for _ in range(4)) == [0, 1, 2, 3]


async def test_a_caller_cancelled_while_waiting_does_not_swallow_a_slot() -> None:
    from regshield.registry.pool import FairQueue

    slots: FairQueue[str] = FairQueue()
    waiting = asyncio.create_task(slots.get())
    await asyncio.sleep(0)
    slots.put_nowait("only")
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert await asyncio.wait_for(slots.get(), timeout=1) == "only"
