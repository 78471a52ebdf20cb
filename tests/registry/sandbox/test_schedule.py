"""The sandbox registry's timer: what falls due is done while no registrar sends a command, and
closing the server stops it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from registry.sandbox.test_server import PASSWORD_B, Sandbox, create, running_sandbox
from registry.sandbox.test_transfers import request
from regshield.clock import FakeClock
from regshield.registry.codec import ResultCode
from regshield.registry.commands import DomainDelete, Logout

INTERVAL = 0.05  # seconds between rounds of the timer in these tests
ATTEMPTS = 200  # reads of the database before a test gives up waiting: 10 seconds


async def eventually(sandbox: Sandbox, statement: str,
                     expected: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """What `statement` reads once it reads `expected`, or after ATTEMPTS reads; the database
    is read directly, so that no command gives the registry a reason to do the work."""
    rows = sandbox.sql(statement)
    for _ in range(ATTEMPTS):
        if rows == expected:
            break
        await asyncio.sleep(INTERVAL)
        rows = sandbox.sql(statement)
    return rows


async def test_the_timer_approves_a_due_transfer_while_no_command_comes(
        tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, schedule_interval=INTERVAL) as box:
        owner = await box.session()
        await owner.send(create("idle.test"))
        gainer = await box.session("registrar-b", PASSWORD_B)
        await gainer.send(request("idle.test"))
        await owner.send(Logout())
        await gainer.send(Logout())

        clock.advance(timedelta(days=5))
        status = await eventually(box, "SELECT status FROM transfers", [("serverApproved",)])
        sponsor = box.sql("SELECT sponsor_id FROM domains WHERE name = 'idle.test'")
        told = box.sql("SELECT registrar_id, summary FROM messages "
                       "WHERE summary LIKE 'Transfer approved%' ORDER BY registrar_id")

    assert status == [("serverApproved",)]
    assert sponsor == [("registrar-b",)]
    assert told == [("registrar-a", "Transfer approved by the registry: idle.test"),
                    ("registrar-b", "Transfer approved by the registry: idle.test")]


async def test_the_timer_takes_a_deleted_domain_through_redemption_to_purge(
        tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, schedule_interval=INTERVAL) as box:
        owner = await box.session()
        await owner.send(create("fading.test"))
        clock.advance(timedelta(days=5))
        assert (await owner.send(DomainDelete("fading.test"))).code \
            == ResultCode.COMPLETED_ACTION_PENDING
        await owner.send(Logout())

        # Both periods at once: a sandbox that was not running catches up in one round.
        clock.advance(timedelta(days=35))
        purged = await eventually(
            box, "SELECT deleted_at IS NOT NULL, rgp_status FROM domains", [(1, None)])
        told = box.sql("SELECT summary FROM messages WHERE registrar_id = 'registrar-a' "
                       "ORDER BY id")

    assert purged == [(1, None)]
    assert told == [("Redemption period ended, deletion pending: fading.test",),
                    ("Domain purged: fading.test",)]


async def test_closing_the_server_stops_its_timer(tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, schedule_interval=INTERVAL):
        running = [task for task in asyncio.all_tasks() if task.get_name() == "sandbox-schedule"]

    assert len(running) == 1
    assert running[0].cancelled()
