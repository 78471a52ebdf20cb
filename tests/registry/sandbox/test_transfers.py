"""Renewals, inter-registrar transfers and the poll queue of the sandbox registry, over TLS,
with a clock the tests move."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from registry.sandbox.test_server import (
    AUTH_INFO,
    PASSWORD_B,
    START,
    Client,
    Sandbox,
    create,
    running_sandbox,
)
from regshield.clock import FakeClock
from regshield.registry.codec import Period, RawElement, ResultCode, Secret, Status
from regshield.registry.commands import (
    DomainChanges,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    Poll,
)
from regshield.registry.responses import (
    DomainInfoData,
    DomainRenewData,
    DomainTransferData,
    EppResponse,
)
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.transfers import OUTCOMES


async def registered(sandbox: Sandbox, name: str, **changes: object) -> Client:
    """registrar-a's session, with `name` registered by it for 2 years."""
    owner = await sandbox.session()
    assert (await owner.send(create(name, **changes))).code == ResultCode.COMPLETED
    return owner


async def gaining(sandbox: Sandbox) -> Client:
    return await sandbox.session("registrar-b", PASSWORD_B)


def request(name: str, code: str = AUTH_INFO, **changes: object) -> DomainTransfer:
    return DomainTransfer(name, "request", auth_info=Secret(code), **changes)  # type: ignore[arg-type]


def transfer_of(response: EppResponse) -> DomainTransferData:
    data = response.item(DomainTransferData)
    assert data is not None, response
    return data


async def info(client: Client, name: str, code: str | None = None) -> EppResponse:
    return await client.send(DomainInfo(name, auth_info=None if code is None else Secret(code)))


async def poll(client: Client) -> EppResponse:
    return await client.send(Poll.request())


async def drain(client: Client) -> list[EppResponse]:
    """Every message in the client's queue, acknowledged one by one."""
    seen: list[EppResponse] = []
    while (message := await poll(client)).code == ResultCode.COMPLETED_ACK_TO_DEQUEUE:
        seen.append(message)
        assert message.message_queue is not None
        acked = await client.send(Poll.acknowledge(message.message_queue.id))
        assert acked.code == ResultCode.COMPLETED
    return seen


# --- renew -----------------------------------------------------------------------------------

async def test_a_renewal_extends_the_expiry_by_the_period(sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "renew.test")
    expiry = START.replace(year=START.year + 2)

    renewed = await owner.send(DomainRenew("renew.test", expiry.date(), Period(3)))
    shown = (await info(owner, "renew.test")).item(DomainInfoData)

    assert renewed.code == ResultCode.COMPLETED
    assert renewed.item(DomainRenewData) == DomainRenewData("renew.test",
                                                            expiry.replace(year=expiry.year + 3))
    assert shown is not None and shown.expires == expiry.replace(year=expiry.year + 3)


async def test_a_retried_renewal_with_the_old_expiry_date_is_refused(sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "twice.test")
    expiry = START.replace(year=START.year + 2).date()

    first = await owner.send(DomainRenew("twice.test", expiry))
    again = await owner.send(DomainRenew("twice.test", expiry))

    assert first.code == ResultCode.COMPLETED
    assert again.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR


async def test_a_renewal_past_ten_years_or_outside_the_period_range_is_refused(
        sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "long.test")
    expiry = START.replace(year=START.year + 2).date()

    too_far = await owner.send(DomainRenew("long.test", expiry, Period(9)))
    zero = await owner.send(DomainRenew("long.test", expiry, Period(11)))
    eight = await owner.send(DomainRenew("long.test", expiry, Period(8)))

    assert too_far.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert zero.code == ResultCode.PARAMETER_VALUE_RANGE_ERROR
    assert eight.code == ResultCode.COMPLETED


async def test_only_the_sponsor_renews_and_a_missing_name_is_not_renewed(
        sandbox: Sandbox) -> None:
    await registered(sandbox, "mine.test")
    other = await gaining(sandbox)
    expiry = START.replace(year=START.year + 2).date()

    theirs = await other.send(DomainRenew("mine.test", expiry))
    missing = await other.send(DomainRenew("nobody.test", expiry))

    assert theirs.code == ResultCode.AUTHORIZATION_ERROR
    assert missing.code == ResultCode.OBJECT_DOES_NOT_EXIST


async def test_renew_prohibited_statuses_refuse_renewal(sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "locked.test")
    await owner.send(DomainUpdate("locked.test",
                                  add=DomainChanges(statuses=(Status("clientRenewProhibited"),))))
    server_locked = await registered(sandbox, "server.test")
    sandbox.sql("UPDATE domains SET statuses = ? WHERE name = ?",
                '["serverRenewProhibited"]', "server.test")
    expiry = START.replace(year=START.year + 2).date()

    client_lock = await owner.send(DomainRenew("locked.test", expiry))
    server_lock = await server_locked.send(DomainRenew("server.test", expiry))

    assert client_lock.code == server_lock.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert "clientRenewProhibited" in client_lock.message
    assert "serverRenewProhibited" in server_lock.message


# --- transfers -------------------------------------------------------------------------------

async def test_an_approved_transfer_moves_the_domain_and_burns_the_auth_info(
        sandbox: Sandbox, clock: FakeClock) -> None:
    loser = await registered(sandbox, "moving.test")
    gainer = await gaining(sandbox)
    expiry = START.replace(year=START.year + 2)

    requested = await gainer.send(request("moving.test"))
    pending = transfer_of(requested)
    shown_pending = (await info(loser, "moving.test")).item(DomainInfoData)
    told_loser = await poll(loser)
    clock.advance(timedelta(hours=1))
    approved = await loser.send(DomainTransfer("moving.test", "approve"))
    told_gainer = await poll(gainer)
    shown = (await info(gainer, "moving.test")).item(DomainInfoData)
    loser_view = await info(loser, "moving.test")
    old_code = await info(loser, "moving.test", AUTH_INFO)

    assert requested.code == ResultCode.COMPLETED_ACTION_PENDING
    assert pending == DomainTransferData("moving.test", "pending", "registrar-b", START,
                                         "registrar-a", START + timedelta(days=5),
                                         expiry.replace(year=expiry.year + 1))
    assert shown_pending is not None
    assert Status("pendingTransfer") in shown_pending.statuses
    assert told_loser.code == ResultCode.COMPLETED_ACK_TO_DEQUEUE
    assert told_loser.message_queue is not None and told_loser.message_queue.count == 1
    assert told_loser.message_queue.queued == START
    assert transfer_of(told_loser) == pending
    assert approved.code == ResultCode.COMPLETED
    assert transfer_of(approved).status == "clientApproved"
    assert transfer_of(told_gainer).status == "clientApproved"
    assert shown is not None and shown.sponsoring_client == "registrar-b"
    assert shown.expires == expiry.replace(year=expiry.year + 1)
    assert shown.transferred == START + timedelta(hours=1)
    assert shown.statuses == (Status("ok"),)
    assert loser_view.code == ResultCode.AUTHORIZATION_ERROR
    assert old_code.code == ResultCode.INVALID_AUTHORIZATION_INFORMATION
    assert (await poll(loser)).code == ResultCode.COMPLETED_ACK_TO_DEQUEUE  # not acked yet


async def test_a_rejected_transfer_leaves_the_domain_and_tells_the_gainer(
        sandbox: Sandbox) -> None:
    loser = await registered(sandbox, "stays.test")
    gainer = await gaining(sandbox)
    await gainer.send(request("stays.test"))

    rejected = await loser.send(DomainTransfer("stays.test", "reject"))
    told = await drain(gainer)
    shown = (await info(loser, "stays.test")).item(DomainInfoData)
    queried = await gainer.send(DomainTransfer("stays.test", "query"))

    assert rejected.code == ResultCode.COMPLETED
    assert [transfer_of(m).status for m in told] == ["clientRejected"]
    assert told[0].message_queue is not None
    assert told[0].message_queue.message == f"{OUTCOMES['clientRejected']}: stays.test"
    assert shown is not None and shown.sponsoring_client == "registrar-a"
    assert shown.statuses == (Status("ok"),)
    assert transfer_of(queried).status == "clientRejected"


async def test_the_gainer_cancels_and_the_loser_is_told(sandbox: Sandbox) -> None:
    loser = await registered(sandbox, "cancel.test")
    gainer = await gaining(sandbox)
    await gainer.send(request("cancel.test"))

    by_loser = await loser.send(DomainTransfer("cancel.test", "cancel"))
    by_gainer = await gainer.send(DomainTransfer("cancel.test", "cancel"))
    approve_after = await loser.send(DomainTransfer("cancel.test", "approve"))
    told = await drain(loser)

    assert by_loser.code == ResultCode.AUTHORIZATION_ERROR
    assert by_gainer.code == ResultCode.COMPLETED
    assert approve_after.code == ResultCode.OBJECT_NOT_PENDING_TRANSFER
    assert [transfer_of(m).status for m in told] == ["pending", "clientCancelled"]


async def test_the_gainer_cannot_approve_its_own_request(sandbox: Sandbox) -> None:
    await registered(sandbox, "self.test")
    gainer = await gaining(sandbox)
    await gainer.send(request("self.test"))

    assert (await gainer.send(DomainTransfer("self.test", "approve"))).code \
        == ResultCode.AUTHORIZATION_ERROR


async def test_the_registry_approves_a_transfer_left_pending_past_its_period(
        sandbox: Sandbox, clock: FakeClock) -> None:
    loser = await registered(sandbox, "quiet.test")
    gainer = await gaining(sandbox)
    await gainer.send(request("quiet.test"))

    clock.advance(timedelta(days=5) - timedelta(seconds=1))
    still = transfer_of(await gainer.send(DomainTransfer("quiet.test", "query")))
    clock.advance(timedelta(seconds=1))
    gainer_told = await drain(gainer)
    loser_told = await drain(loser)
    shown = (await info(gainer, "quiet.test")).item(DomainInfoData)

    assert still.status == "pending"
    assert [transfer_of(m).status for m in gainer_told] == ["serverApproved"]
    assert [transfer_of(m).status for m in loser_told] == ["pending", "serverApproved"]
    assert shown is not None and shown.sponsoring_client == "registrar-b"


async def test_the_auto_approval_period_is_configurable(tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, transfer_auto_approve=timedelta(hours=1)) as box:
        await registered(box, "fast.test")
        gainer = await gaining(box)
        act_by = transfer_of(await gainer.send(request("fast.test"))).act_by
        clock.advance(timedelta(hours=1))
        shown = (await info(gainer, "fast.test")).item(DomainInfoData)

    assert act_by == START + timedelta(hours=1)
    assert shown is not None and shown.sponsoring_client == "registrar-b"


async def test_client_transfer_prohibited_refuses_the_request(sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "locked.test")
    await owner.send(DomainUpdate(
        "locked.test", add=DomainChanges(statuses=(Status("clientTransferProhibited"),))))
    gainer = await gaining(sandbox)

    refused = await gainer.send(request("locked.test"))

    assert refused.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert (await poll(owner)).code == ResultCode.COMPLETED_NO_MESSAGES


async def test_a_wrong_or_missing_auth_info_is_refused(sandbox: Sandbox) -> None:
    await registered(sandbox, "guarded.test")
    gainer = await gaining(sandbox)

    wrong = await gainer.send(request("guarded.test", "Wrong-Code-2026!"))
    missing = await gainer.send(DomainTransfer("guarded.test", "request"))

    assert wrong.code == missing.code == ResultCode.INVALID_AUTHORIZATION_INFORMATION


async def test_an_unset_auth_info_allows_no_transfer(sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "unset.test")
    gainer = await gaining(sandbox)

    unset = await owner.send(DomainUpdate("unset.test", remove_auth_info=True))
    with_old_code = await gainer.send(request("unset.test"))
    with_empty_code = await gainer.send(request("unset.test", ""))
    # The sandbox validates against its packaged schemas only, so the `ext` element is one of
    # theirs; a registry's own authInfo scheme would have its namespace there too.
    ext = await owner.send(DomainUpdate("unset.test", auth_info_ext=RawElement.from_xml(
        b'<rgp:infData xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0">'
        b'<rgp:rgpStatus s="addPeriod"/></rgp:infData>')))
    foreign = await owner.send(DomainUpdate("unset.test", auth_info_ext=RawElement.from_xml(
        b'<ex:token xmlns:ex="urn:example:auth-1.0">opaque</ex:token>')))

    assert unset.code == ResultCode.COMPLETED
    assert with_old_code.code == with_empty_code.code \
        == ResultCode.INVALID_AUTHORIZATION_INFORMATION
    # The sandbox keeps password hashes; an `ext` authInfo is an option it does not serve.
    assert ext.code == ResultCode.UNIMPLEMENTED_OPTION
    assert foreign.code == ResultCode.COMMAND_SYNTAX_ERROR


async def test_the_sponsor_cannot_request_and_a_pending_transfer_is_not_requested_twice(
        sandbox: Sandbox) -> None:
    owner = await registered(sandbox, "busy.test")
    gainer = await gaining(sandbox)

    own = await owner.send(request("busy.test"))
    first = await gainer.send(request("busy.test"))
    second = await gainer.send(request("busy.test"))
    update = await owner.send(DomainUpdate(
        "busy.test", add=DomainChanges(statuses=(Status("clientHold"),))))

    assert own.code == ResultCode.NOT_ELIGIBLE_FOR_TRANSFER
    assert first.code == ResultCode.COMPLETED_ACTION_PENDING
    assert second.code == ResultCode.OBJECT_PENDING_TRANSFER
    assert update.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION


async def test_a_third_registrar_queries_only_with_the_auth_info(sandbox: Sandbox) -> None:
    await sandbox.server.state.add_registrar("registrar-c", "sandbox-pass-C3")
    await registered(sandbox, "watched.test")
    gainer = await gaining(sandbox)
    third = await sandbox.session("registrar-c", "sandbox-pass-C3")
    never = await gainer.send(DomainTransfer("watched.test", "query"))
    await gainer.send(request("watched.test"))

    blind = await third.send(DomainTransfer("watched.test", "query"))
    with_code = await third.send(DomainTransfer("watched.test", "query",
                                                auth_info=Secret(AUTH_INFO)))

    assert never.code == ResultCode.OBJECT_NOT_PENDING_TRANSFER
    assert blind.code == ResultCode.AUTHORIZATION_ERROR
    assert transfer_of(with_code).status == "pending"


# --- poll ------------------------------------------------------------------------------------

async def test_an_empty_queue_answers_1300(sandbox: Sandbox) -> None:
    client = await sandbox.session()

    empty = await poll(client)

    assert empty.code == ResultCode.COMPLETED_NO_MESSAGES
    assert empty.message_queue is None


async def test_ack_removes_the_message_and_an_unknown_id_is_refused(sandbox: Sandbox) -> None:
    loser = await registered(sandbox, "ack.test")
    gainer = await gaining(sandbox)
    await gainer.send(request("ack.test"))
    await gainer.send(DomainTransfer("ack.test", "cancel"))

    first = await poll(loser)
    assert first.message_queue is not None
    first_id = first.message_queue.id
    stranger = await gainer.send(Poll.acknowledge(first_id))
    acked = await loser.send(Poll.acknowledge(first_id))
    again = await loser.send(Poll.acknowledge(first_id))
    unknown = await loser.send(Poll.acknowledge("no-such-message"))
    second = await poll(loser)

    assert first.message_queue.count == 2
    assert stranger.code == ResultCode.OBJECT_DOES_NOT_EXIST  # queues are per registrar
    assert acked.code == ResultCode.COMPLETED
    assert acked.message_queue is not None
    assert (acked.message_queue.count, acked.message_queue.id) == (1, first_id)
    assert again.code == unknown.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert second.message_queue is not None and second.message_queue.id != first_id
    assert transfer_of(second).status == "clientCancelled"


async def test_messages_survive_a_server_restart(sandbox: Sandbox, clock: FakeClock) -> None:
    await registered(sandbox, "durable.test")
    gainer = await gaining(sandbox)
    await gainer.send(request("durable.test"))
    for client in sandbox.clients:
        await client.close()
    sandbox.clients.clear()
    await sandbox.server.close()

    sandbox.server = await SandboxServer.start(sandbox.config, clock)
    loser = await sandbox.session()
    message = await poll(loser)

    assert message.code == ResultCode.COMPLETED_ACK_TO_DEQUEUE
    assert transfer_of(message).name == "durable.test"
    assert transfer_of(message).requesting_client == "registrar-b"

