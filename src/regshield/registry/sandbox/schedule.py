"""The work the registry does as time passes: approving transfers whose losing registrar let
the time run out, and moving deleted domains through redemption to purge.

It runs before every command, so that no registrar ever sees a state whose time is up, and on
the server's timer, so that poll messages arrive while nobody sends commands.
"""

from __future__ import annotations

import asyncio

import structlog

from regshield.registry.sandbox.deletions import advance_deletions, has_due_deletions
from regshield.registry.sandbox.state import SandboxState
from regshield.registry.sandbox.transfers import approve_due_transfers, has_due_transfers

log = structlog.get_logger("regshield.sandbox")


async def run_due_work(state: SandboxState) -> None:
    """Do whatever has fallen due by the state's clock."""
    now = state.clock.now()
    async with state.store.read() as session:
        due = await has_due_transfers(session, now) or await has_due_deletions(session, now)
    if due:  # the read first: most rounds find nothing due and need no write lock
        async with state.store.write() as session:
            await approve_due_transfers(session, now)
            await advance_deletions(session, now, state.config)


async def run_schedule(state: SandboxState) -> None:
    """Every `schedule_interval` seconds, the due work, until cancelled. A failed round is
    logged and the next one comes as usual."""
    while True:
        await asyncio.sleep(state.config.schedule_interval)
        try:
            await run_due_work(state)
        except Exception:
            log.exception("sandbox:schedule:failed")


__all__ = ["run_due_work", "run_schedule"]
