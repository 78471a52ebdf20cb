"""What every adapter hands to flows and queries: the store, the key ring, the clock."""

from __future__ import annotations

from dataclasses import dataclass

from regshield.clock import Clock, SystemClock
from regshield.config import Settings
from regshield.security.fields import Sealer
from regshield.security.keyring import KeyRing, load_keyring
from regshield.store.engine import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    clock: Clock

    @property
    def sealer(self) -> Sealer:
        return Sealer(self.keyring)

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Services:
        """Connect to an initialized installation (see `setup.initialize`)."""
        return cls(
            settings=settings,
            store=Store(settings.database_url),
            keyring=load_keyring(settings.key_file, settings.master_key_env),
            clock=clock or SystemClock(),
        )

    async def close(self) -> None:
        await self.store.close()
