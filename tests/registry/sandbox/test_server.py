"""The sandbox registry as a registrar meets it: a real EPP server over TLS on loopback, talked
to by a small client made of asyncio streams, the framing and the codec."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
import stat
import struct
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regshield.clock import Clock
from regshield.config import Listen
from regshield.registry.codec import (
    CONTACT_NS,
    DOMAIN_NS,
    HOST_NS,
    RGP_NS,
    SECDNS_NS,
    Period,
    ResultCode,
    Secret,
    Status,
)
from regshield.registry.commands import (
    Command,
    DomainChanges,
    DomainCheck,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainUpdate,
    Extension,
    HostInfo,
    Login,
    Logout,
    build_command,
    build_hello,
)
from regshield.registry.framing import read_frame, write_frame
from regshield.registry.responses import (
    DomainCheckData,
    DomainCreateData,
    DomainInfoData,
    EppResponse,
    parse_greeting,
    parse_response,
)
from regshield.registry.sandbox.certificates import KEY_FILE, CertificateRefused
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import OutdatedSandbox, SandboxConfig, SandboxState
from regshield.registry.schemas import validate_epp

PASSWORD_A = "sandbox-pass-A1"
PASSWORD_B = "sandbox-pass-B2"
PASSWORD_C = "sandbox-pass-C3"
AUTH_INFO = "Xy7!Transfer-Code-2026"
NS = ("ns1.example.net", "ns2.example.net")
START = datetime.now(UTC).replace(microsecond=0)  # the server certificate is dated by the clock


def client_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A registrar's self-signed client certificate and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256()))
    certificate_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate_file, key_file


class Client:
    """One EPP session: every document received is checked against the schemas here too."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sv_trids: list[str] = []
        self.last_received = b""

    async def receive(self) -> bytes:
        data = await asyncio.wait_for(read_frame(self.reader), 10)
        validate_epp(data)
        self.last_received = data
        return data

    async def send_raw(self, data: bytes) -> EppResponse:
        await write_frame(self.writer, data)
        response = parse_response(await self.receive())
        self.sv_trids.append(response.sv_trid)
        return response

    async def send(self, body: Command, cl_trid: str = "TEST-0001",
                   extensions: Sequence[Extension] = ()) -> EppResponse:
        response = await self.send_raw(build_command(body, extensions=extensions,
                                                     cl_trid=cl_trid))
        assert response.cl_trid == cl_trid
        return response

    async def login(self, client_id: str, password: str,
                    extension_uris: tuple[str, ...] = (),
                    object_uris: tuple[str, ...] = (DOMAIN_NS,)) -> EppResponse:
        """A login; with the domain object service only by default, a minimum-data session
        that takes registrant and contact identifiers as given."""
        return await self.send(Login(client_id, Secret(password), object_uris=object_uris,
                                     extension_uris=extension_uris))

    async def closed(self) -> bool:
        """Whether the server has closed the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(1), 10) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


class Sandbox:
    def __init__(self, server: SandboxServer, config: SandboxConfig, tmp: Path) -> None:
        self.server, self.config, self.tmp = server, config, tmp
        self.clients: list[Client] = []

    async def connect(self, certificate: tuple[Path, Path] | None = None) -> Client:
        context = ssl.create_default_context(cafile=str(self.server.certificate))
        if certificate is not None:
            context.load_cert_chain(*certificate)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.server.port, ssl=context, server_hostname="localhost")
        client = Client(reader, writer)
        self.clients.append(client)
        parse_greeting(await client.receive())
        return client

    async def session(self, client_id: str = "registrar-a", password: str = PASSWORD_A,
                      certificate: tuple[Path, Path] | None = None,
                      extension_uris: tuple[str, ...] = (),
                      object_uris: tuple[str, ...] = (DOMAIN_NS,)) -> Client:
        client = await self.connect(certificate)
        login = await client.login(client_id, password, extension_uris, object_uris)
        assert login.code == ResultCode.COMPLETED, login.message
        return client

    def sql(self, statement: str, *parameters: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.config.database_file) as connection:
            return connection.execute(statement, parameters).fetchall()


@contextlib.asynccontextmanager
async def running_sandbox(tmp_path: Path, clock: Clock | None = None,
                          **settings: Any) -> AsyncIterator[Sandbox]:
    """A sandbox on a free loopback port with registrar-a and registrar-b accredited;
    `settings` are SandboxConfig fields."""
    config = SandboxConfig(directory=tmp_path / "sandbox-registry",
                           listen=Listen("127.0.0.1", 0), **settings)
    server = await SandboxServer.start(config, clock)
    await server.state.add_registrar("registrar-a", PASSWORD_A)
    await server.state.add_registrar("registrar-b", PASSWORD_B)
    box = Sandbox(server, config, tmp_path)
    try:
        yield box
    finally:
        for client in box.clients:
            await client.close()
        await box.server.close()


def create(name: str, **changes: object) -> DomainCreate:
    values: dict[str, object] = {"name": name, "auth_info": Secret(AUTH_INFO),
                                 "period": Period(2), "nameservers": NS,
                                 "registrant": "holder-1"}
    values.update(changes)
    return DomainCreate(**values)  # type: ignore[arg-type]


# --- session ---------------------------------------------------------------------------------

async def test_a_greeting_comes_on_connect_and_in_answer_to_hello(sandbox: Sandbox) -> None:
    client = await sandbox.connect()
    await write_frame(client.writer, build_hello())
    greeting = parse_greeting(await client.receive())

    # Offered like a real registry's, so that clients logging in with every standard service
    # connect; what is not carried out yet is refused command by command.
    assert greeting.object_uris == (DOMAIN_NS, HOST_NS, CONTACT_NS)
    assert greeting.extension_uris == (SECDNS_NS, RGP_NS)
    assert greeting.server_id == "regshield-sandbox"


async def test_the_server_key_is_for_its_owner_only(sandbox: Sandbox) -> None:
    mode = stat.S_IMODE((sandbox.config.directory / KEY_FILE).stat().st_mode)
    assert mode == 0o600


async def test_a_wrong_password_is_refused_and_the_right_one_accepted(sandbox: Sandbox) -> None:
    client = await sandbox.connect()

    wrong = await client.login("registrar-a", "not-the-pass")
    unknown = await client.login("nobody-here", PASSWORD_A)
    right = await client.login("registrar-a", PASSWORD_A)

    assert wrong.code == unknown.code == ResultCode.AUTHENTICATION_ERROR
    assert right.code == ResultCode.COMPLETED


async def test_the_third_failed_login_closes_the_connection(sandbox: Sandbox) -> None:
    client = await sandbox.connect()
    codes = [(await client.login("registrar-a", f"wrong-{n}-pass")).code for n in range(3)]

    assert codes == [ResultCode.AUTHENTICATION_ERROR, ResultCode.AUTHENTICATION_ERROR,
                     ResultCode.AUTHENTICATION_ERROR_CLOSING]
    assert await client.closed()


async def test_commands_before_login_are_refused(sandbox: Sandbox) -> None:
    client = await sandbox.connect()

    check = await client.send(DomainCheck(("free.test",)))
    logout = await client.send(Logout())

    assert check.code == logout.code == ResultCode.COMMAND_USE_ERROR


async def test_logout_ends_the_session(sandbox: Sandbox) -> None:
    client = await sandbox.session()

    assert (await client.send(Logout())).code == ResultCode.COMPLETED_ENDING_SESSION
    assert await client.closed()


async def test_unserved_and_unknown_commands_get_the_codec_s_codes(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    unknown = (b'<?xml version="1.0" encoding="UTF-8"?><epp xmlns="urn:ietf:params:xml:ns:'
               b'epp-1.0"><command><frobnicate/><clTRID>TEST-0009</clTRID></command></epp>')

    # The session selected the domain objects only: hosts are not its to manage.
    host = await client.send(HostInfo("ns1.some.test"))
    frobnicate = await client.send_raw(unknown)

    assert host.code == ResultCode.UNIMPLEMENTED_OBJECT_SERVICE
    assert frobnicate.code in (ResultCode.UNKNOWN_COMMAND, ResultCode.COMMAND_SYNTAX_ERROR)
    assert frobnicate.cl_trid == "TEST-0009"


async def test_every_response_carries_a_unique_server_transaction_id(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    for n in range(5):
        await client.send(DomainCheck((f"name{n}.test",)), cl_trid=f"TEST-{n:04}")

    assert len(set(client.sv_trids)) == len(client.sv_trids) == 6


# --- domains ---------------------------------------------------------------------------------

async def test_create_check_info_update_delete_round_trip(sandbox: Sandbox) -> None:
    client = await sandbox.session()

    before = (await client.send(DomainCheck(("round.test", "other.example")))).item(
        DomainCheckData)
    created = await client.send(create("Round.TEST"))
    after = (await client.send(DomainCheck(("round.test",)))).item(DomainCheckData)
    info = (await client.send(DomainInfo("round.test"))).item(DomainInfoData)
    info_bytes = client.last_received
    updated = await client.send(DomainUpdate(
        "round.test", add=DomainChanges(nameservers=("ns3.example.net",)),
        remove=DomainChanges(nameservers=("ns1.example.net",)), registrant="holder-2"))
    info_after = (await client.send(DomainInfo("round.test"))).item(DomainInfoData)
    deleted = await client.send(DomainDelete("round.test"))
    gone = await client.send(DomainInfo("round.test"))

    assert before is not None and [r.available for r in before.results] == [True, True]
    assert created.code == ResultCode.COMPLETED
    data = created.item(DomainCreateData)
    assert data is not None and data.name == "round.test"
    assert data.expires is not None and data.expires.year == data.created.year + 2
    assert after is not None and after.results[0].available is False
    assert after.results[0].reason == "In use"
    assert info is not None
    assert info.sponsoring_client == "registrar-a" and info.nameservers == NS
    assert [s.value for s in info.statuses] == ["ok"]
    assert info.registrant == "holder-1" and info.auth_info is None
    assert b"authInfo" not in info_bytes and AUTH_INFO.encode() not in info_bytes
    assert updated.code == ResultCode.COMPLETED
    assert info_after is not None and info_after.registrant == "holder-2"
    assert info_after.nameservers == ("ns2.example.net", "ns3.example.net")
    assert info_after.updated_by == "registrar-a" and info_after.updated is not None
    assert deleted.code == ResultCode.COMPLETED
    assert gone.code == ResultCode.OBJECT_DOES_NOT_EXIST


async def test_a_registered_name_cannot_be_created_again(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    other = await sandbox.session("registrar-b", PASSWORD_B)
    await client.send(create("taken.test"))

    again = await client.send(create("taken.test"))
    by_other = await other.send(create("TAKEN.test"))

    assert again.code == by_other.code == ResultCode.OBJECT_EXISTS


async def test_names_outside_the_served_tlds_are_refused(sandbox: Sandbox) -> None:
    client = await sandbox.session()

    other_tld = await client.send(create("elsewhere.com"))
    third_level = await client.send(create("www.deep.test"))
    check = (await client.send(DomainCheck(("elsewhere.com",)))).item(DomainCheckData)

    assert other_tld.code == third_level.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert check is not None and check.results[0].available is False
    assert check.results[0].reason == "Not served by this registry"


async def test_the_period_is_one_to_ten_years(sandbox: Sandbox) -> None:
    client = await sandbox.session()

    too_long = await client.send(create("long.test", period=Period(11)))
    months = await client.send(create("months.test", period=Period(18, "m")))
    ten = await client.send(create("ten.test", period=Period(10)))
    in_months = await client.send(create("two.test", period=Period(24, "m")))

    assert too_long.code == months.code == ResultCode.PARAMETER_VALUE_RANGE_ERROR
    assert ten.code == in_months.code == ResultCode.COMPLETED
    two = in_months.item(DomainCreateData)
    assert two is not None and two.expires is not None
    assert two.expires.year == two.created.year + 2


async def test_a_non_sponsor_sees_nothing_without_the_auth_info(sandbox: Sandbox) -> None:
    owner = await sandbox.session()
    other = await sandbox.session("registrar-b", PASSWORD_B)
    await owner.send(create("private.test"))

    bare = await other.send(DomainInfo("private.test"))
    wrong = await other.send(DomainInfo("private.test", auth_info=Secret("Wrong-code-123!")))
    right = await other.send(DomainInfo("private.test", auth_info=Secret(AUTH_INFO)))

    assert bare.code == ResultCode.AUTHORIZATION_ERROR
    assert wrong.code == ResultCode.INVALID_AUTHORIZATION_INFORMATION
    info = right.item(DomainInfoData)
    assert right.code == ResultCode.COMPLETED and info is not None
    assert info.auth_info is None and AUTH_INFO.encode() not in other.last_received


async def test_a_non_sponsor_cannot_update_or_delete(sandbox: Sandbox) -> None:
    owner = await sandbox.session()
    other = await sandbox.session("registrar-b", PASSWORD_B)
    await owner.send(create("mine.test"))

    update = await other.send(DomainUpdate("mine.test", registrant="thief-1"))
    delete = await other.send(DomainDelete("mine.test"))
    info = (await owner.send(DomainInfo("mine.test"))).item(DomainInfoData)

    assert update.code == delete.code == ResultCode.AUTHORIZATION_ERROR
    assert info is not None and info.registrant == "holder-1"


async def test_client_update_prohibited_allows_only_its_own_removal(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    await client.send(create("locked.test"))
    lock = Status("clientUpdateProhibited")

    locked = await client.send(DomainUpdate("locked.test", add=DomainChanges(statuses=(lock,))))
    ns_change = await client.send(DomainUpdate(
        "locked.test", add=DomainChanges(nameservers=("ns9.example.net",))))
    unlock_and_change = await client.send(DomainUpdate(
        "locked.test", add=DomainChanges(nameservers=("ns9.example.net",)),
        remove=DomainChanges(statuses=(lock,))))
    unlocked = await client.send(DomainUpdate("locked.test",
                                              remove=DomainChanges(statuses=(lock,))))
    ns_after = await client.send(DomainUpdate(
        "locked.test", add=DomainChanges(nameservers=("ns9.example.net",))))

    assert locked.code == ResultCode.COMPLETED
    assert ns_change.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert unlock_and_change.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert unlocked.code == ResultCode.COMPLETED
    assert ns_after.code == ResultCode.COMPLETED


async def test_a_registrar_cannot_set_server_statuses(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    await client.send(create("server.test"))

    refused = await client.send(DomainUpdate(
        "server.test", add=DomainChanges(statuses=(Status("serverUpdateProhibited"),))))

    assert refused.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR


async def test_registry_lock_holds_even_when_the_registrar_side_is_tampered_with(
        sandbox: Sandbox) -> None:
    client = await sandbox.session()
    await client.send(create("vault.test"))
    # The registry operator sets the lock in the registry's own database.
    sandbox.sql("UPDATE domains SET statuses = ? WHERE name = ?",
                '["serverUpdateProhibited", "serverDeleteProhibited"]', "vault.test")
    lock = Status("serverUpdateProhibited")

    attempts = [
        DomainUpdate("vault.test", add=DomainChanges(nameservers=("evil.example.org",))),
        DomainUpdate("vault.test", registrant="attacker"),
        DomainUpdate("vault.test", auth_info=Secret("New-code-123!")),
        DomainUpdate("vault.test", add=DomainChanges(statuses=(Status("clientHold"),))),
        DomainUpdate("vault.test", remove=DomainChanges(statuses=(lock,))),
    ]
    codes = [(await client.send(attempt)).code for attempt in attempts]
    delete = await client.send(DomainDelete("vault.test"))
    info = (await client.send(DomainInfo("vault.test"))).item(DomainInfoData)

    assert codes[:4] == [ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION] * 4
    assert codes[4] == ResultCode.PARAMETER_VALUE_POLICY_ERROR  # not the registrar's to remove
    assert delete.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert info is not None and info.nameservers == NS and info.registrant == "holder-1"


async def test_client_delete_prohibited_blocks_delete(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    await client.send(create("keep.test"))
    await client.send(DomainUpdate("keep.test", add=DomainChanges(
        statuses=(Status("clientDeleteProhibited"),))))

    delete = await client.send(DomainDelete("keep.test"))

    assert delete.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION


async def test_the_auth_info_is_never_stored_in_plaintext(sandbox: Sandbox) -> None:
    client = await sandbox.session()
    await client.send(create("secret.test"))
    await client.send(DomainUpdate("secret.test", auth_info=Secret("Second-Code-456!")))
    await client.send(Logout())

    files = [path for path in sandbox.config.directory.iterdir()
             if path.name.startswith("registry.db")]
    stored = b"".join(path.read_bytes() for path in files)

    assert stored and b"secret.test" in stored
    assert AUTH_INFO.encode() not in stored and b"Second-Code-456!" not in stored
    [(hashed,)] = sandbox.sql("SELECT auth_info_hash FROM domains WHERE name = 'secret.test'")
    assert str(hashed).startswith("sha256$")


# --- TLS and robustness ----------------------------------------------------------------------

def legacy_client(cafile: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers `version` and nothing newer. OpenSSL 3 will not offer TLS 1.0 or
    1.1 at its default security level, so this client's level is lowered to 0."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def legacy_server(certificate: Path, key: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A listener that takes `version`: the control that shows the client really offers it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(certificate, key)
    return context


async def negotiated(port: int, context: ssl.SSLContext) -> str | None:
    """The TLS version a handshake with 127.0.0.1:`port` settles on, or None if it fails."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"), 10)
    except (ssl.SSLError, ConnectionError):
        return None
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
    return str(version)


# Python deprecates naming these versions; naming them is the point of this test.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize(("version", "name"), [(ssl.TLSVersion.TLSv1, "TLSv1"),
                                               (ssl.TLSVersion.TLSv1_1, "TLSv1.1")])
async def test_tls_older_than_1_2_is_refused(sandbox: Sandbox, version: ssl.TLSVersion,
                                             name: str) -> None:
    certificate = sandbox.server.certificate
    client = legacy_client(certificate, version)
    control = await asyncio.start_server(
        lambda _reader, writer: writer.close(), "127.0.0.1", 0,
        ssl=legacy_server(certificate, sandbox.config.directory / KEY_FILE, version))
    try:
        offered = await negotiated(int(control.sockets[0].getsockname()[1]), client)
    finally:
        control.close()
        await control.wait_closed()
    if offered is None:
        pytest.skip(f"{ssl.OPENSSL_VERSION} cannot negotiate {name} here, even at SECLEVEL=0")

    refused = await negotiated(sandbox.server.port, client)
    still_serving = await sandbox.session()

    assert offered == name
    assert refused is None
    assert (await still_serving.send(DomainCheck(("alive.test",)))).code == ResultCode.COMPLETED


async def test_a_registrar_with_a_certificate_must_present_it(sandbox: Sandbox) -> None:
    certificate = client_certificate(sandbox.tmp, "registrar-c")
    await sandbox.server.state.add_registrar("registrar-c", PASSWORD_C,
                                             certificate[0].read_bytes())
    without = await sandbox.connect()

    refused = await without.login("registrar-c", PASSWORD_C)
    with_certificate = await sandbox.connect(certificate)
    accepted = await with_certificate.login("registrar-c", PASSWORD_C)

    assert refused.code == ResultCode.AUTHENTICATION_ERROR
    assert accepted.code == ResultCode.COMPLETED


async def test_a_certificate_of_another_registrar_does_not_log_in(sandbox: Sandbox) -> None:
    certificate_c = client_certificate(sandbox.tmp, "registrar-c")
    certificate_d = client_certificate(sandbox.tmp, "registrar-d")
    await sandbox.server.state.add_registrar("registrar-c", PASSWORD_C,
                                             certificate_c[0].read_bytes())
    await sandbox.server.state.add_registrar("registrar-d", "sandbox-pass-D4",
                                             certificate_d[0].read_bytes())
    client = await sandbox.connect(certificate_d)

    assert (await client.login("registrar-c", PASSWORD_C)).code \
        == ResultCode.AUTHENTICATION_ERROR


async def test_a_certificate_whose_subject_another_registrar_has_is_refused(
        sandbox: Sandbox) -> None:
    first = client_certificate(sandbox.tmp, "same-subject")
    (sandbox.tmp / "second").mkdir()
    second = client_certificate(sandbox.tmp / "second", "same-subject")
    await sandbox.server.state.add_registrar("registrar-c", PASSWORD_C, first[0].read_bytes())

    with pytest.raises(CertificateRefused, match="same subject"):
        await sandbox.server.state.add_registrar("registrar-d", "sandbox-pass-D4",
                                                 second[0].read_bytes())


async def test_malformed_xml_gets_a_syntax_error_and_the_session_goes_on(
        sandbox: Sandbox) -> None:
    client = await sandbox.session()

    garbage = await client.send_raw(b"<epp><not-closed>")
    entity = await client.send_raw(
        b'<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x "y">]><epp>&x;</epp>')
    invalid = await client.send_raw(
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><command><check/>'
        b"<clTRID>TEST-0042</clTRID></command></epp>")
    still = await client.send(DomainCheck(("alive.test",)))

    assert garbage.code == entity.code == invalid.code == ResultCode.COMMAND_SYNTAX_ERROR
    assert invalid.cl_trid == "TEST-0042"
    assert still.code == ResultCode.COMPLETED


async def test_a_broken_frame_closes_that_connection_only(sandbox: Sandbox) -> None:
    client = await sandbox.connect()
    client.writer.write(struct.pack(">I", 2))  # shorter than its own header
    await client.writer.drain()

    last = parse_response(await client.receive())
    assert last.code == ResultCode.COMMAND_FAILED_CLOSING
    assert await client.closed()
    again = await sandbox.session()
    assert (await again.send(DomainCheck(("alive.test",)))).code == ResultCode.COMPLETED


async def test_a_client_that_speaks_no_tls_does_not_stop_the_server(sandbox: Sandbox) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.server.port)
    writer.write(b"\x00\x00\x00\x10<epp>plain</epp>")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) is not None
    writer.close()

    again = await sandbox.session()
    assert (await again.send(DomainCheck(("alive.test",)))).code == ResultCode.COMPLETED


async def test_a_client_that_hangs_up_mid_frame_does_not_stop_the_server(
        sandbox: Sandbox) -> None:
    client = await sandbox.connect()
    client.writer.write(struct.pack(">I", 1000) + b"<epp")
    await client.close()

    again = await sandbox.session()
    assert (await again.send(DomainCheck(("alive.test",)))).code == ResultCode.COMPLETED


async def test_an_idle_session_is_closed_with_a_last_word(tmp_path: Path) -> None:
    config = SandboxConfig(directory=tmp_path / "sandbox-registry",
                           listen=Listen("127.0.0.1", 0), idle_timeout=0.3)
    server = await SandboxServer.start(config)
    box = Sandbox(server, config, tmp_path)
    try:
        client = await box.connect()
        last = parse_response(await client.receive())
        assert last.code == ResultCode.COMMAND_FAILED_CLOSING
        assert await client.closed()
    finally:
        for client in box.clients:
            await client.close()
        await server.close()


async def test_a_sandbox_directory_of_an_older_version_is_refused_with_a_message(
        tmp_path: Path) -> None:
    config = SandboxConfig(directory=tmp_path / "sandbox-registry",
                           listen=Listen("127.0.0.1", 0))
    await (await SandboxState.open(config)).close()
    with sqlite3.connect(config.database_file) as connection:
        connection.execute("DROP INDEX ix_domains_rgp_due")
        connection.execute("ALTER TABLE domains DROP COLUMN rgp_ends_at")

    with pytest.raises(OutdatedSandbox, match=r"domains\.rgp_ends_at.*delete that directory"):
        await SandboxServer.start(config)


async def test_a_sandbox_directory_from_before_host_and_contact_objects_is_refused(
        tmp_path: Path) -> None:
    config = SandboxConfig(directory=tmp_path / "sandbox-registry",
                           listen=Listen("127.0.0.1", 0))
    await (await SandboxState.open(config)).close()
    with sqlite3.connect(config.database_file) as connection:
        connection.execute("DROP TABLE hosts")
        connection.execute("DROP TABLE contacts")

    with pytest.raises(OutdatedSandbox, match="delete that directory") as refused:
        await SandboxServer.start(config)
    assert "table hosts" in str(refused.value) and "table contacts" in str(refused.value)
    # Refused before anything was written: the old file still lacks both tables.
    with sqlite3.connect(config.database_file) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"domains", "registrars"} <= tables and not {"hosts", "contacts"} & tables
