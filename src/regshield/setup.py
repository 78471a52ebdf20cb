"""First-run setup of a data directory and database; safe to run again."""

from __future__ import annotations

import os
from dataclasses import dataclass

from regshield.clock import Clock, SystemClock
from regshield.config import Settings
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import Tx, run_flow
from regshield.security.keyring import KeyRingDocument, write_private_file
from regshield.services import Services
from regshield.store.engine import Store
from regshield.store.models import Registrar
from regshield.store.queries.accounts import registrar


@dataclass(frozen=True)
class InitReport:
    created_home: bool
    created_keys: bool
    created_registrar: bool


async def initialize(settings: Settings, clock: Clock | None = None) -> InitReport:
    clock = clock or SystemClock()
    created_home = not settings.home.exists()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    created_keys = False
    if settings.master_key_env is None and not settings.key_file.exists():
        write_private_file(settings.key_file, KeyRingDocument.generate(clock.now()).dumps())
        created_keys = True
    store = Store(settings.database_url)
    try:
        await store.migrate()
    finally:
        await store.close()
    if settings.is_sqlite:
        for suffix in ("", "-wal", "-shm"):
            database_file = settings.home / f"regshield.db{suffix}"
            if database_file.exists():
                os.chmod(database_file, 0o600)
    services = Services.open(settings, clock)
    try:
        created = await run_flow(services, system_actor("init"), RequestContext("cli"),
                                 _RegistrarEnsure())
    finally:
        await services.close()
    return InitReport(created_home, created_keys, created)


class _RegistrarEnsure:
    async def run(self, tx: Tx) -> bool:
        if await registrar(tx.session) is not None:
            return False
        tx.session.add(Registrar(id=1, name="Unnamed registrar", updated_at=tx.now))
        tx.record("system:installation:initialized", account=None)
        return True
