"""Deleting domains at the sandbox registry, with the grace periods of RFC 3915: add grace,
redemption, restore, pendingDelete and purge, with a clock the tests move."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from registry.sandbox.test_server import (
    PASSWORD_A,
    PASSWORD_B,
    START,
    Client,
    Sandbox,
    create,
    running_sandbox,
)
from registry.sandbox.test_transfers import drain, request
from regshield.clock import FakeClock
from regshield.registry.codec import RGP_NS, ResultCode, Status
from regshield.registry.commands import (
    DomainChanges,
    DomainCheck,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainUpdate,
    RgpRestoreReport,
    RgpRestoreRequest,
)
from regshield.registry.responses import (
    DomainCheckData,
    DomainInfoData,
    EppResponse,
    RgpInfo,
    RgpUpdateData,
)

GRACE = timedelta(days=5)  # the add grace period
REDEMPTION = timedelta(days=30)
PENDING_DELETE = timedelta(days=5)


async def rgp_session(sandbox: Sandbox, client_id: str = "registrar-a") -> Client:
    password = {"registrar-a": PASSWORD_A, "registrar-b": PASSWORD_B}[client_id]
    return await sandbox.session(client_id, password, extension_uris=(RGP_NS,))


async def deleted(sandbox: Sandbox, clock: FakeClock, name: str) -> Client:
    """registrar-a's session, with `name` created, kept past its add grace period, and
    deleted into its redemption period."""
    owner = await rgp_session(sandbox)
    assert (await owner.send(create(name))).code == ResultCode.COMPLETED
    clock.advance(GRACE)
    assert (await owner.send(DomainDelete(name))).code == ResultCode.COMPLETED_ACTION_PENDING
    return owner


async def send_restore(client: Client, name: str) -> EppResponse:
    return await client.send(DomainUpdate(name), extensions=(RgpRestoreRequest(),))


async def grace_of(client: Client, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(EPP statuses, rgp statuses) an info shows."""
    response = await client.send(DomainInfo(name))
    info = response.item(DomainInfoData)
    assert info is not None, response.message
    rgp = response.item(RgpInfo)
    return (tuple(s.value for s in info.statuses),
            () if rgp is None else tuple(s.value for s in rgp.statuses))


async def availability(client: Client, name: str) -> tuple[bool, str | None]:
    data = (await client.send(DomainCheck((name,)))).item(DomainCheckData)
    assert data is not None
    return data.results[0].available, data.results[0].reason


async def test_a_new_domain_shows_its_add_period_and_is_purged_at_once_when_deleted(
        sandbox: Sandbox, clock: FakeClock) -> None:
    owner = await rgp_session(sandbox)
    await owner.send(create("brief.test"))

    shown = await grace_of(owner, "brief.test")
    clock.advance(GRACE - timedelta(seconds=1))
    deleted_now = await owner.send(DomainDelete("brief.test"))
    gone = await owner.send(DomainInfo("brief.test"))

    assert shown == (("ok",), ("addPeriod",))
    assert deleted_now.code == ResultCode.COMPLETED
    assert gone.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert await availability(owner, "brief.test") == (True, None)


async def test_a_deleted_domain_is_redeemable_then_pending_delete_then_purged(
        sandbox: Sandbox, clock: FakeClock) -> None:
    owner = await deleted(sandbox, clock, "gone.test")
    other = await sandbox.session("registrar-b", PASSWORD_B)

    in_redemption = await grace_of(owner, "gone.test")
    taken = await availability(owner, "gone.test")
    grabbed = await other.send(create("gone.test"))
    clock.advance(REDEMPTION)
    in_pending_delete = await grace_of(owner, "gone.test")
    too_late = await send_restore(owner, "gone.test")
    clock.advance(PENDING_DELETE - timedelta(seconds=1))
    still_there = await grace_of(owner, "gone.test")
    clock.advance(timedelta(seconds=1))
    gone = await owner.send(DomainInfo("gone.test"))
    free = await availability(other, "gone.test")
    registered_again = await other.send(create("gone.test"))
    told = await drain(owner)

    assert in_redemption == (("pendingDelete",), ("redemptionPeriod",))
    assert taken == (False, "Pending delete")
    assert grabbed.code == ResultCode.OBJECT_EXISTS
    assert in_pending_delete == (("pendingDelete",), ("pendingDelete",))
    assert too_late.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert still_there == in_pending_delete
    assert gone.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert free == (True, None)
    assert registered_again.code == ResultCode.COMPLETED
    assert [m.message_queue.message for m in told if m.message_queue] == [
        "Redemption period ended, deletion pending: gone.test", "Domain purged: gone.test"]


async def test_a_restore_in_the_redemption_period_gives_the_domain_back(
        sandbox: Sandbox, clock: FakeClock) -> None:
    owner = await deleted(sandbox, clock, "back.test")
    clock.advance(REDEMPTION - timedelta(seconds=1))

    restored = await send_restore(owner, "back.test")
    shown = await grace_of(owner, "back.test")
    ns_change = await owner.send(DomainUpdate(
        "back.test", add=DomainChanges(nameservers=("ns3.example.net",))))
    clock.advance(REDEMPTION + PENDING_DELETE)
    still_there = await grace_of(owner, "back.test")
    told = await drain(owner)

    assert restored.code == ResultCode.COMPLETED
    # RFC 3915 section 4.2.5: the answer reports the rgp status the request led to.
    assert restored.item(RgpUpdateData) == RgpUpdateData((Status("pendingRestore"),))
    assert shown == (("ok",), ())
    assert ns_change.code == ResultCode.COMPLETED
    assert still_there == (("ok",), ())
    assert [m.message_queue.message for m in told if m.message_queue] == [
        "Domain restored: back.test"]


async def test_a_configured_restore_wait_shows_pending_restore(
        tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, restore_wait=timedelta(hours=1)) as box:
        owner = await deleted(box, clock, "slow.test")
        await send_restore(owner, "slow.test")
        waiting = await grace_of(owner, "slow.test")
        again = await send_restore(owner, "slow.test")
        update = await owner.send(DomainUpdate("slow.test", registrant="holder-2"))
        clock.advance(timedelta(hours=1))
        back = await grace_of(owner, "slow.test")

    assert waiting == (("pendingDelete",), ("pendingRestore",))
    assert again.code == update.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert back == (("ok",), ())


def report(deleted: datetime, restored: datetime) -> RgpRestoreReport:
    return RgpRestoreReport(
        pre_data="registrant holder-1, nameservers ns1.example.net ns2.example.net",
        post_data="registrant holder-1, nameservers ns1.example.net ns2.example.net",
        deleted=deleted, restored=restored, reason="Registrant error.",
        statements=("This registrar has not restored the name to use or sell it.",
                    "The information in this report is true."))


async def test_a_restore_report_completes_a_pending_restore_at_once(
        tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, restore_wait=timedelta(days=7)) as box:
        owner = await deleted(box, clock, "report.test")
        deleted_at = clock.now()
        early = await owner.send(DomainUpdate("report.test"),
                                 extensions=(report(deleted_at, clock.now()),))
        await send_restore(owner, "report.test")
        waiting = await grace_of(owner, "report.test")
        backwards = await owner.send(DomainUpdate("report.test"), extensions=(
            report(deleted_at, deleted_at - timedelta(days=1)),))
        other = await owner.send(DomainUpdate("report.test", registrant="holder-2"),
                                 extensions=(report(deleted_at, clock.now()),))
        reported = await owner.send(DomainUpdate("report.test"),
                                    extensions=(report(deleted_at, clock.now()),))
        back = await grace_of(owner, "report.test")
        told = await drain(owner)

    assert early.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert waiting == (("pendingDelete",), ("pendingRestore",))
    assert backwards.code == other.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert reported.code == ResultCode.COMPLETED
    assert back == (("ok",), ())
    assert [m.message_queue.message for m in told if m.message_queue] == [
        "Domain restored: report.test"]


async def test_a_deleted_domain_takes_no_other_transform(
        sandbox: Sandbox, clock: FakeClock) -> None:
    owner = await deleted(sandbox, clock, "frozen.test")
    other = await rgp_session(sandbox, "registrar-b")
    expiry = START.replace(year=START.year + 2).date()

    attempts = [
        await owner.send(DomainUpdate("frozen.test", registrant="holder-2")),
        await owner.send(DomainUpdate("frozen.test", add=DomainChanges(
            statuses=(Status("clientHold"),)))),
        await owner.send(DomainDelete("frozen.test")),
        await owner.send(DomainRenew("frozen.test", expiry)),
        await other.send(request("frozen.test")),
    ]

    assert [a.code for a in attempts] == [ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION] * 5
    assert "pendingDelete" in attempts[0].message
    assert await grace_of(owner, "frozen.test") == (("pendingDelete",), ("redemptionPeriod",))


async def test_a_restore_request_is_the_sponsor_s_and_changes_nothing_else(
        sandbox: Sandbox, clock: FakeClock) -> None:
    owner = await deleted(sandbox, clock, "claim.test")
    other = await rgp_session(sandbox, "registrar-b")
    await owner.send(create("alive.test"))

    by_other = await send_restore(other, "claim.test")
    with_changes = await owner.send(DomainUpdate("claim.test", registrant="holder-2"),
                                    extensions=(RgpRestoreRequest(),))
    not_deleted = await send_restore(owner, "alive.test")
    missing = await send_restore(owner, "never.test")

    assert by_other.code == ResultCode.AUTHORIZATION_ERROR
    assert with_changes.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert not_deleted.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert missing.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert await grace_of(owner, "claim.test") == (("pendingDelete",), ("redemptionPeriod",))


async def test_rgp_not_selected_at_login_hides_the_extension_and_refuses_a_restore(
        sandbox: Sandbox, clock: FakeClock) -> None:
    await deleted(sandbox, clock, "quiet.test")
    plain = await sandbox.session()

    info = await plain.send(DomainInfo("quiet.test"))
    restored = await send_restore(plain, "quiet.test")

    shown = info.item(DomainInfoData)
    assert shown is not None and shown.statuses == (Status("pendingDelete"),)
    assert info.item(RgpInfo) is None and b"rgp:" not in plain.last_received
    assert restored.code == ResultCode.UNIMPLEMENTED_EXTENSION


async def test_the_grace_periods_are_configurable(tmp_path: Path, clock: FakeClock) -> None:
    settings = {"add_grace_period": timedelta(0), "redemption_period": timedelta(days=1),
                "pending_delete_period": timedelta(hours=1)}
    async with running_sandbox(tmp_path, clock, **settings) as box:
        owner = await rgp_session(box)
        await owner.send(create("quick.test"))
        deleted_now = await owner.send(DomainDelete("quick.test"))
        clock.advance(timedelta(days=1))
        pending = await grace_of(owner, "quick.test")
        clock.advance(timedelta(hours=1))
        gone = await owner.send(DomainInfo("quick.test"))

    assert deleted_now.code == ResultCode.COMPLETED_ACTION_PENDING
    assert pending == (("pendingDelete",), ("pendingDelete",))
    assert gone.code == ResultCode.OBJECT_DOES_NOT_EXIST
