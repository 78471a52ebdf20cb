"""Registry lock at the sandbox registry: the server statuses a registrar can set or lift only
in a session opened with its separate, out-of-band registry-lock password."""

from __future__ import annotations

import pytest

from registry.sandbox.test_server import (
    AUTH_INFO,
    NS,
    PASSWORD_A,
    PASSWORD_B,
    Client,
    Sandbox,
    create,
)
from registry.sandbox.test_transfers import poll, request
from regshield.errors import ValidationFailed
from regshield.registry.codec import DOMAIN_NS, SECDNS_NS, ResultCode, Secret, Status
from regshield.registry.commands import (
    DomainChanges,
    DomainCheck,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    Login,
    SecDnsUpdate,
)
from regshield.registry.responses import DomainInfoData, EppResponse
from regshield.registry.sandbox.state import UnknownDomain, UnknownRegistrar

LOCK_A = "lock-pass-A1x"
LOCK_STATUSES = ("serverDeleteProhibited", "serverTransferProhibited", "serverUpdateProhibited")


@pytest.fixture
async def locked_sandbox(sandbox: Sandbox) -> Sandbox:
    """The sandbox with a registry-lock password for registrar-a."""
    await sandbox.server.state.set_lock_password("registrar-a", LOCK_A)
    return sandbox


def statuses(*values: str) -> DomainChanges:
    return DomainChanges(statuses=tuple(Status(value) for value in values))


async def lock(client: Client, name: str, *values: str) -> EppResponse:
    return await client.send(DomainUpdate(name, add=statuses(*values)))


async def unlock(client: Client, name: str, *values: str) -> EppResponse:
    return await client.send(DomainUpdate(name, remove=statuses(*values)))


async def statuses_of(client: Client, name: str) -> tuple[str, ...]:
    info = (await client.send(DomainInfo(name))).item(DomainInfoData)
    assert info is not None
    return tuple(status.value for status in info.statuses)


async def test_a_lock_session_sets_and_lifts_the_registry_lock(
        locked_sandbox: Sandbox) -> None:
    registrar = await locked_sandbox.session()
    await registrar.send(create("vault.test"))
    lock_session = await locked_sandbox.session(password=LOCK_A)
    gainer = await locked_sandbox.session("registrar-b", PASSWORD_B)

    locked = await lock(lock_session, "vault.test", *LOCK_STATUSES)
    shown = await statuses_of(registrar, "vault.test")
    refused = [
        await registrar.send(DomainUpdate("vault.test", add=DomainChanges(
            nameservers=("evil.example.org",)))),
        await registrar.send(DomainDelete("vault.test")),
        await gainer.send(request("vault.test")),
    ]
    lifted_by_registrar = await unlock(registrar, "vault.test", "serverUpdateProhibited")
    unlocked = await unlock(lock_session, "vault.test", *LOCK_STATUSES)
    changed = await registrar.send(DomainUpdate("vault.test", registrant="holder-2"))

    assert locked.code == ResultCode.COMPLETED
    assert shown == LOCK_STATUSES
    assert [r.code for r in refused] == [ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION] * 3
    assert lifted_by_registrar.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert unlocked.code == changed.code == ResultCode.COMPLETED
    assert await statuses_of(registrar, "vault.test") == ("ok",)


async def test_a_lock_session_changes_nothing_but_registry_lock_statuses(
        locked_sandbox: Sandbox) -> None:
    registrar = await locked_sandbox.session()
    await registrar.send(create("only.test"))
    lock_session = await locked_sandbox.session(password=LOCK_A, extension_uris=(SECDNS_NS,))

    updates = [
        await lock(lock_session, "only.test", "serverHold"),
        await lock(lock_session, "only.test", "clientHold"),
        await lock(lock_session, "only.test", "serverRenewProhibited"),
        await lock_session.send(DomainUpdate("only.test", add=DomainChanges(
            nameservers=("ns9.example.net",)), remove=statuses("serverUpdateProhibited"))),
        await lock_session.send(DomainUpdate("only.test", registrant="holder-2")),
        await lock_session.send(DomainUpdate("only.test", auth_info=Secret("New-Code-2026!"))),
        await lock_session.send(DomainUpdate("only.test", add=statuses(LOCK_STATUSES[0])),
                                extensions=(SecDnsUpdate(remove_all=True),)),
        await unlock(lock_session, "only.test", "serverUpdateProhibited"),  # not there
    ]
    info = await statuses_of(lock_session, "only.test")
    check = await lock_session.send(DomainCheck(("only.test",)))

    assert [u.code for u in updates] == [ResultCode.PARAMETER_VALUE_POLICY_ERROR] * 8
    assert info == ("ok",) and check.code == ResultCode.COMPLETED


async def test_a_lock_session_runs_no_other_command(locked_sandbox: Sandbox) -> None:
    registrar = await locked_sandbox.session()
    await registrar.send(create("busy.test"))
    lock_session = await locked_sandbox.session(password=LOCK_A)
    expiry = (await registrar.send(DomainInfo("busy.test"))).item(DomainInfoData)
    assert expiry is not None and expiry.expires is not None

    commands = [
        create("new.test"),
        DomainDelete("busy.test"),
        DomainRenew("busy.test", expiry.expires.date()),
        DomainTransfer("busy.test", "query"),
    ]
    codes = [(await lock_session.send(command)).code for command in commands]
    polled = await poll(lock_session)

    assert codes == [ResultCode.AUTHORIZATION_ERROR] * 4
    assert polled.code == ResultCode.AUTHORIZATION_ERROR


async def test_a_lock_session_locks_only_its_registrar_s_domains(
        locked_sandbox: Sandbox) -> None:
    other = await locked_sandbox.session("registrar-b", PASSWORD_B)
    await other.send(create("theirs.test"))
    lock_session = await locked_sandbox.session(password=LOCK_A)

    refused = await lock(lock_session, "theirs.test", "serverDeleteProhibited")
    missing = await lock(lock_session, "nobody.test", "serverDeleteProhibited")

    assert refused.code == ResultCode.AUTHORIZATION_ERROR
    assert missing.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert await statuses_of(other, "theirs.test") == ("ok",)


async def test_a_lock_cannot_be_set_against_what_is_pending(locked_sandbox: Sandbox) -> None:
    registrar = await locked_sandbox.session()
    await registrar.send(create("moving.test"))
    gainer = await locked_sandbox.session("registrar-b", PASSWORD_B)
    await gainer.send(request("moving.test"))
    lock_session = await locked_sandbox.session(password=LOCK_A)

    # RFC 5731 section 2.3: pendingTransfer excludes serverTransferProhibited.
    clash = await lock(lock_session, "moving.test", "serverTransferProhibited")
    fine = await lock(lock_session, "moving.test", "serverDeleteProhibited")

    assert clash.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert fine.code == ResultCode.COMPLETED


async def test_each_password_opens_only_its_own_kind_of_session(
        locked_sandbox: Sandbox) -> None:
    registrar = await locked_sandbox.session()
    await registrar.send(create("kinds.test"))
    elsewhere = await locked_sandbox.connect()

    by_epp_password = await lock(registrar, "kinds.test", "serverDeleteProhibited")
    other_registrar = await elsewhere.login("registrar-b", LOCK_A)

    assert by_epp_password.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert other_registrar.code == ResultCode.AUTHENTICATION_ERROR


async def test_failed_logins_of_either_kind_count_toward_one_limit(
        locked_sandbox: Sandbox) -> None:
    client = await locked_sandbox.connect()

    codes = [(await client.login("registrar-a", password)).code
             for password in ("wrong-epp-pass", LOCK_A[:-1] + "y", "wrong-again-1")]

    assert codes == [ResultCode.AUTHENTICATION_ERROR, ResultCode.AUTHENTICATION_ERROR,
                     ResultCode.AUTHENTICATION_ERROR_CLOSING]
    assert await client.closed()


async def test_passwords_are_not_changed_across_the_two_credentials(
        locked_sandbox: Sandbox) -> None:
    at_lock_login = await locked_sandbox.connect()
    at_epp_login = await locked_sandbox.connect()

    lock_change = await at_lock_login.send(Login(
        "registrar-a", Secret(LOCK_A), new_password=Secret("other-lock-1"),
        object_uris=(DOMAIN_NS,), extension_uris=()))
    epp_to_lock = await at_epp_login.send(Login(
        "registrar-a", Secret(PASSWORD_A), new_password=Secret(LOCK_A),
        object_uris=(DOMAIN_NS,), extension_uris=()))
    still_lock = await locked_sandbox.session(password=LOCK_A)

    assert lock_change.code == epp_to_lock.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert (await still_lock.send(DomainCheck(("x.test",)))).code == ResultCode.COMPLETED
    assert (await at_epp_login.login("registrar-a", PASSWORD_A)).code == ResultCode.COMPLETED


async def test_the_lock_password_is_kept_only_as_an_argon2_hash(
        locked_sandbox: Sandbox) -> None:
    [(stored,)] = locked_sandbox.sql(
        "SELECT lock_password_hash FROM registrars WHERE id = 'registrar-a'")
    files = [path for path in locked_sandbox.config.directory.iterdir()
             if path.name.startswith("registry.db")]

    assert str(stored).startswith("$argon2id$")
    assert LOCK_A.encode() not in b"".join(path.read_bytes() for path in files)


async def test_a_lock_password_is_refused_when_it_is_no_second_credential(
        sandbox: Sandbox) -> None:
    state = sandbox.server.state

    with pytest.raises(ValidationFailed) as same:
        await state.set_lock_password("registrar-a", PASSWORD_A)
    with pytest.raises(ValidationFailed) as short:
        await state.set_lock_password("registrar-a", "abc")
    with pytest.raises(UnknownRegistrar):
        await state.set_lock_password("nobody-here", LOCK_A)
    with pytest.raises(ValidationFailed) as at_creation:
        await state.add_registrar("registrar-c", "sandbox-pass-C3",
                                  lock_password="sandbox-pass-C3")

    assert [e.code for e in same.value.errors] == ["same_as_password"]
    assert [e.field for e in short.value.errors] == ["lock_password"]
    assert [e.code for e in at_creation.value.errors] == ["same_as_password"]
    assert await state.registrar("registrar-c") is None


async def test_the_registry_sets_server_statuses_in_its_own_database(
        sandbox: Sandbox) -> None:
    registrar = await sandbox.session()
    await registrar.send(DomainCreate("held.test", Secret(AUTH_INFO), nameservers=NS))
    state = sandbox.server.state

    held = await state.set_server_statuses("HELD.test", add={"serverHold"})
    shown = await statuses_of(registrar, "held.test")
    again = await state.set_server_statuses("held.test", add={"serverHold"},
                                            remove={"serverUpdateProhibited"})
    lifted = await state.set_server_statuses("held.test", remove={"serverHold"})
    with pytest.raises(ValidationFailed):
        await state.set_server_statuses("held.test", add={"clientHold"})
    with pytest.raises(UnknownDomain):
        await state.set_server_statuses("nobody.test", add={"serverHold"})

    assert held == again == ["serverHold"] and shown == ("serverHold",)
    assert lifted == []


async def test_a_server_status_clashing_with_a_pending_operation_is_refused(
        sandbox: Sandbox) -> None:
    owner = await sandbox.session()
    await owner.send(create("pending.test"))
    gainer = await sandbox.session("registrar-b", PASSWORD_B)
    await gainer.send(request("pending.test"))

    with pytest.raises(ValidationFailed) as clash:
        await sandbox.server.state.set_server_statuses(
            "pending.test", add={"serverTransferProhibited"})

    assert [e.code for e in clash.value.errors] == ["pending_prohibited"]
