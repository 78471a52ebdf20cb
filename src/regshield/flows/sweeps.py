"""Time-driven work: what becomes due without anyone asking. Registry-lock requests expire
and unlocked domains are locked again (flows/registry_lock.py); holds whose time has ended are
released (the change-of-registrant transfer lock, flows/domains.py); unverified registrants'
domains are suspended and reminders sent (flows/accuracy.py); WDRP and ERRP notices fall due
(flows/notices.py); relayed messages the outbox gave up on are shredded (flows/relay.py).
`regshield serve` runs `sweep_forever`; each pass runs the registry changes it started at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from regshield.flows.accuracy import AccuracySweep
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.domains import HoldsSweep
from regshield.flows.notices import NoticesSweep
from regshield.flows.operations import OperationBusy, execute_all
from regshield.flows.registry_lock import RegistryLockSweep
from regshield.flows.relay import RelayKeysShred
from regshield.flows.runner import run_flow
from regshield.services import Services

log = structlog.get_logger("regshield.sweeps")


async def sweep(services: Services) -> list[str]:
    """One pass; returns the registry operations it started (already run once)."""
    started: list[str] = []
    for flow in (RegistryLockSweep(), HoldsSweep(), AccuracySweep(), NoticesSweep()):
        started += await run_flow(services, system_actor("sweep"), RequestContext("system"),
                                  flow)
    # Not a registry change: what it returns are relay ids, not operations to run.
    await run_flow(services, system_actor("sweep"), RequestContext("system"), RelayKeysShred())
    for operation in started:
        with contextlib.suppress(OperationBusy):  # the outbox worker has it
            await execute_all(services, operation)
    return started


async def sweep_forever(services: Services, interval: float = 60.0) -> None:
    while True:
        try:
            await sweep(services)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken database or registry must not end the sweep for good
            log.exception("sweep.failed")
        await asyncio.sleep(interval)
