"""What every adapter hands to flows and queries: the store, the key ring, the clock, the
registry links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regshield.clock import Clock, SystemClock
from regshield.config import Settings
from regshield.dnssec.hsm import HsmSession, HsmUnavailable, open_token
from regshield.registry.links import PoolShare, Registries, configured_links
from regshield.security.fields import Sealer
from regshield.security.keyring import KeyRing, load_keyring
from regshield.security.limits import Limits, RateLimiter
from regshield.store.engine import Store
from regshield.store.life import Life

if TYPE_CHECKING:
    from regshield.api.figures import OtherProcesses
    from regshield.dns.server import DnsServer
    from regshield.dns.workers import DnsWorkers


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    clock: Clock
    # The registry links (pools open on first use); empty for tools that never reach one.
    registries: Registries = field(default_factory=lambda: Registries(()))
    # The PKCS#11 session holding zone keys, opened on first use (one per process).
    _hsm: HsmSession | None = field(default=None, repr=False)
    # Rate limits of RDAP, WHOIS, the contact form and the API, in the store every process
    # shares; made on first use (security/limits.py).
    _limits: Limits | None = field(default=None, repr=False)
    # The embedded DNS servers this process runs (`regshield serve`), read by GET /metrics.
    dns_servers: list[DnsServer] = field(default_factory=list, repr=False)
    # And their worker processes, asked for their counters at each scrape.
    dns_workers: list[DnsWorkers] = field(default_factory=list, repr=False)
    # The other HTTP processes' limit counters, for GET /metrics (api/figures.py): the
    # children's in the main process, the others' as the main process sent them in a child.
    other_processes: OtherProcesses | None = field(default=None, repr=False)
    # The flows waiting to share a transaction, by kind (group commit, flows/runner.py).
    write_groups: dict[type, Any] = field(default_factory=dict, repr=False)
    # This process's life, held by long-running ones, for the leases it takes (store/life.py).
    life: Life = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.life = Life(self.store)

    @property
    def sealer(self) -> Sealer:
        return Sealer(self.keyring)

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None,
             share: PoolShare | None = None) -> Services:
        """Connect to an initialized installation (see `setup.initialize`); `share` is the
        part of each registry link's sessions this process opens (all by default)."""
        return cls(
            settings=settings,
            store=Store(settings.database_url),
            keyring=load_keyring(settings.key_file, settings.master_key_env),
            clock=clock or SystemClock(),
            registries=Registries(configured_links(settings), share),
        )

    def limiter(self, service: str) -> RateLimiter:
        """The rate limits of `service` ("rdap", "whois", "contact", "api"), in the store
        every process shares (`[limits] store`)."""
        return self.limits.limiter(service)

    @property
    def limits(self) -> Limits:
        if self._limits is None:
            self._limits = Limits(self.settings, self.store, self.keyring, self.clock)
        return self._limits

    def hsm(self) -> HsmSession:
        """The PKCS#11 token of `[dns] hsm_token`, logged in once for the process."""
        dns = self.settings.dns
        if dns.hsm_token is None or dns.hsm_pin is None:
            raise HsmUnavailable("no PKCS#11 token is configured ([dns] hsm_token)")
        if self._hsm is None:
            self._hsm = open_token(dns.hsm_token, dns.hsm_pin, dns.hsm_module)
        return self._hsm

    async def close(self) -> None:
        if self._hsm is not None:
            self._hsm.close()
            self._hsm = None
        await self.registries.close()
        if self._limits is not None:
            await self._limits.close()
            self._limits = None
        await self.life.release()
        await self.store.close()
