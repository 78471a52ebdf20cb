"""What every adapter hands to flows and queries: the store, the key ring, the clock, the
registry links."""

from __future__ import annotations

from dataclasses import dataclass, field

from regshield.clock import Clock, SystemClock
from regshield.config import Settings
from regshield.registry.links import Registries, configured_links
from regshield.security.fields import Sealer
from regshield.security.keyring import KeyRing, load_keyring
from regshield.store.engine import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    clock: Clock
    # The registry links (pools open on first use); empty for tools that never reach one.
    registries: Registries = field(default_factory=lambda: Registries(()))

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
            registries=Registries(configured_links(settings)),
        )

    async def close(self) -> None:
        await self.registries.close()
        await self.store.close()
