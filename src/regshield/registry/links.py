"""Which registry serves which TLD, and the session pool regshield keeps with each.

A link is configured per registry in `regshield.toml`:

    [registries.example-registry]
    tlds = ["example", "test"]
    host = "epp.registry.example"
    port = 700
    client_id = "regshield-01"
    password_file = "/etc/regshield/epp-password"   # or REGSHIELD_REGISTRY_<NAME>_PASSWORD
    lock_password_file = "/etc/regshield/epp-lock"  # optional: the registry-lock credential
    ca_certificate = "/etc/regshield/registry-ca.pem"
    client_certificate = "/etc/regshield/epp-client.pem"
    client_key = "/etc/regshield/epp-client.key"
    contacts = true          # false for a minimum-data registry that takes no contacts
    pool_size = 2
    parent_servers = ["192.0.2.1:53", "[2001:db8::1]:53"]  # optional: see below

`pool_size` is how many sessions regshield holds with the registry at once; with `[http]
workers` above 1 they are divided among the processes serving HTTP (`PoolShare`).

`parent_servers` are the servers of the registry's TLD zones, asked directly whether they
serve a new DS before the old key of a domain is retired (dns/parent.py). Without them, the
TLD's servers are found through the resolver.

With no `[registries]` table, the embedded default applies: one link to the built-in sandbox
registry (`regshield serve` starts it and accredits regshield with it on first start), serving
the `test` and `example` TLDs; its parent servers are its own DNS listener
(`[sandbox] dns_listen`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

from regshield.config import Settings
from regshield.errors import ConfigurationError, FieldError, ValidationFailed
from regshield.registry.client import RegistryEndpoint
from regshield.registry.codec import (
    CONTACT_NS,
    DOMAIN_NS,
    EXTENSION_URIS,
    HOST_NS,
    RGP_NS,
    SECDNS_NS,
    Secret,
)
from regshield.registry.pool import EppPool
from regshield.rules.names import DomainName

SANDBOX_LINK = "sandbox"
SANDBOX_CLIENT_ID = "regshield"
SANDBOX_PASSWORD_FILE = "regshield-link.secret"  # noqa: S105 (a file name)
SANDBOX_LOCK_PASSWORD_FILE = "regshield-lock.secret"  # noqa: S105 (a file name)
SANDBOX_TLDS = ("test", "example")
DEFAULT_POOL_SIZE = 2


@dataclass(frozen=True)
class RegistryLink:
    """One registry as regshield reaches it. `contacts` is False for a registry that takes no
    contact objects (a minimum-data registry): domains are created there without any."""

    name: str
    tlds: frozenset[str]
    endpoint: RegistryEndpoint
    contacts: bool = True
    pool_size: int = DEFAULT_POOL_SIZE
    # The registry-lock channel: the same registrar logging in with its separate lock
    # credential, whose sessions may only set or lift server*Prohibited. None: the registry
    # offers no registry lock to this registrar.
    lock_endpoint: RegistryEndpoint | None = None
    # The servers of the registry's TLD zones as (address, port): where a new DS must be
    # seen before an old key goes. Empty: found through the resolver.
    parent_servers: tuple[tuple[str, int], ...] = ()

    @property
    def secdns(self) -> bool:
        return SECDNS_NS in self.endpoint.extension_uris

    @property
    def rgp(self) -> bool:
        return RGP_NS in self.endpoint.extension_uris


@dataclass(frozen=True)
class PoolShare:
    """Which share of each link's `pool_size` sessions this process opens.

    Registries cap the sessions one registrar holds, and with `[http] workers` above 1 every
    process that serves HTTP may talk EPP from a request (`processes` of them): the size is
    divided among them, at least one session each, and the main process (which also runs the
    outbox worker, where most EPP goes) takes what the division leaves over. So the processes
    hold `pool_size` sessions together, or one each when `pool_size` is smaller than their
    number. The registry-lock channel has one session per process."""

    processes: int = 1
    main: bool = True

    def size(self, pool_size: int) -> int:
        share = max(1, pool_size // self.processes)
        if self.main and pool_size > self.processes:
            share += pool_size % self.processes
        return share


class Registries:
    """The configured links and their pools. A pool starts on first use, so that regshield
    starts (and serves everything else) while a registry is down; it holds this process's
    `share` of the link's sessions."""

    def __init__(self, links: Iterable[RegistryLink], share: PoolShare | None = None) -> None:
        self.links = {link.name: link for link in links}
        self.share = share or PoolShare()
        self._by_tld: dict[str, RegistryLink] = {}
        for link in self.links.values():
            for tld in link.tlds:
                if tld in self._by_tld:
                    raise ConfigurationError(f"registries: .{tld} is served by both "
                                             f"{self._by_tld[tld].name} and {link.name}")
                self._by_tld[tld] = link
        self._pools: dict[str, EppPool] = {}
        self._lock = asyncio.Lock()

    @property
    def tlds(self) -> frozenset[str]:
        return frozenset(self._by_tld)

    def for_domain(self, name: DomainName, field: str = "name") -> RegistryLink:
        """The link of the registry that serves `name`; ValidationFailed when none does."""
        link = self._by_tld.get(name.tld)
        if link is None:
            offered = ", ".join(f".{tld}" for tld in sorted(self._by_tld)) or "none"
            raise ValidationFailed([FieldError(
                field, "tld_not_offered",
                f".{name.tld} is not offered by this registrar (offered: {offered})")])
        return link

    def link(self, name: str) -> RegistryLink:
        try:
            return self.links[name]
        except KeyError:
            raise ConfigurationError(f"no registry link named {name!r} is configured") from None

    async def pool(self, link: RegistryLink) -> EppPool:
        """The link's pool, opened on first use. A pool whose start failed is not kept: the
        next caller tries again. Raises as EppPool.start does."""
        async with self._lock:
            pool = self._pools.get(link.name)
            if pool is None:
                pool = EppPool(link.endpoint, size=self.share.size(link.pool_size))
                await pool.start()
                self._pools[link.name] = pool
            return pool

    async def lock_pool(self, link: RegistryLink) -> EppPool:
        """A one-session pool on the link's registry-lock channel, opened on first use."""
        if link.lock_endpoint is None:
            raise ConfigurationError(f"registry {link.name} has no registry-lock channel")
        async with self._lock:
            key = f"{link.name}#lock"
            pool = self._pools.get(key)
            if pool is None:
                pool = EppPool(link.lock_endpoint, size=1)
                await pool.start()
                self._pools[key] = pool
            return pool

    async def close(self) -> None:
        async with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()


def configured_links(settings: Settings, environ: dict[str, str] | None = None
                     ) -> list[RegistryLink]:
    """The links of `settings`: the `[registries.NAME]` tables, or the sandbox link."""
    env = dict(os.environ) if environ is None else environ
    if not settings.registries:
        return [sandbox_link(settings)]
    return [_link(name, table, env) for name, table in settings.registries.items()]


def sandbox_directory(settings: Settings) -> Path:
    return settings.home / "sandbox-registry"


def sandbox_password(settings: Settings, file_name: str = SANDBOX_PASSWORD_FILE) -> Secret:
    """regshield's password (or lock password) at the built-in sandbox, made on first use
    (file mode 0600)."""
    path = sandbox_directory(settings) / file_name
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(12) + "\n")  # 16 characters: RFC 5730 pwType
    return Secret(path.read_text().strip())


def sandbox_link(settings: Settings, port: int | None = None) -> RegistryLink:
    """The link to the sandbox registry run by `regshield serve` on this installation."""
    from regshield.registry.sandbox.certificates import CERTIFICATE_FILE

    listen = settings.sandbox_listen
    # A sandbox listening on every address is reached on loopback.
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "::", "") else listen.host  # noqa: S104
    endpoint = RegistryEndpoint(
        host=host, port=port or listen.port, client_id=SANDBOX_CLIENT_ID,
        password=sandbox_password(settings),
        ca_certificate=sandbox_directory(settings) / CERTIFICATE_FILE,
        server_hostname="localhost",
    )
    lock = replace(endpoint, password=sandbox_password(settings, SANDBOX_LOCK_PASSWORD_FILE))
    dns_listen = settings.sandbox_dns_listen
    parents = () if dns_listen is None else ((_reachable(dns_listen.host), dns_listen.port),)
    return RegistryLink(SANDBOX_LINK, frozenset(SANDBOX_TLDS), endpoint, lock_endpoint=lock,
                        parent_servers=parents)


def _reachable(host: str) -> str:
    """Where this machine reaches a listener on `host`: loopback for a wildcard address."""
    if host in ("0.0.0.0", ""):  # noqa: S104
        return "127.0.0.1"
    return "::1" if host == "::" else host


_KEYS = frozenset({"tlds", "host", "port", "client_id", "password_file", "lock_password_file",
                   "ca_certificate",
                   "client_certificate", "client_key", "server_hostname", "contacts",
                   "extensions", "pool_size", "parent_servers"})


def _link(name: str, table: dict[str, Any], env: dict[str, str]) -> RegistryLink:
    where = f"registries.{name}"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {', '.join(unknown)}")
    for required in ("tlds", "host", "client_id", "ca_certificate"):
        if required not in table:
            raise ConfigurationError(f"{where}.{required} is required")
    tlds = table["tlds"]
    if not isinstance(tlds, list) or not tlds or not all(isinstance(t, str) for t in tlds):
        raise ConfigurationError(f"{where}.tlds: expected a list of TLDs")
    contacts = bool(table.get("contacts", True))
    objects = (DOMAIN_NS, HOST_NS, *((CONTACT_NS,) if contacts else ()))
    extensions = _extensions(table.get("extensions"), where)
    certificate = table.get("client_certificate")
    key = table.get("client_key")
    try:
        endpoint = RegistryEndpoint(
            host=str(table["host"]), port=int(table.get("port", 700)),
            client_id=str(table["client_id"]), password=_password(name, table, env, where),
            ca_certificate=Path(str(table["ca_certificate"])),
            client_certificate=Path(str(certificate)) if certificate else None,
            client_key=Path(str(key)) if key else None,
            server_hostname=str(table["server_hostname"]) if "server_hostname" in table
            else None,
            object_uris=objects, extension_uris=extensions)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
    lock_endpoint = None
    lock_password = _password(name, table, env, where, lock=True)
    if lock_password is not None:
        lock_endpoint = replace(endpoint, password=lock_password)
    pool_size = int(table.get("pool_size", DEFAULT_POOL_SIZE))
    if not 1 <= pool_size <= 32:
        raise ConfigurationError(f"{where}.pool_size: expected 1 to 32")
    return RegistryLink(name, frozenset(t.lower().strip(".") for t in tlds), endpoint,
                        contacts=contacts, pool_size=pool_size, lock_endpoint=lock_endpoint,
                        parent_servers=_parent_servers(table.get("parent_servers", []), where))


def _parent_servers(value: Any, where: str) -> tuple[tuple[str, int], ...]:
    """`["192.0.2.1:53", "[2001:db8::1]:53"]` as (address, port) pairs; every bad entry named
    in one ConfigurationError."""
    expected = (f"{where}.parent_servers: expected a list of \"ADDRESS:PORT\" (an IP address, "
                "IPv6 in brackets, and a port from 1 to 65535)")
    if not isinstance(value, list):
        raise ConfigurationError(expected)
    servers: list[tuple[str, int]] = []
    bad: list[str] = []
    for entry in value:
        server = _server(entry) if isinstance(entry, str) else None
        if server is None:
            bad.append(repr(entry))
        else:
            servers.append(server)
    if bad:
        raise ConfigurationError(f"{expected}; not {', '.join(bad)}")
    return tuple(servers)


def _server(text: str) -> tuple[str, int] | None:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        address = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return None
    if address.version == 6 and not bracketed:
        return None
    return str(address), int(port)


def _extensions(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return EXTENSION_URIS
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}.extensions: expected a list of extension URIs")
    return tuple(value)


@overload
def _password(name: str, table: dict[str, Any], env: dict[str, str], where: str
              ) -> Secret: ...


@overload
def _password(name: str, table: dict[str, Any], env: dict[str, str], where: str, *,
              lock: bool) -> Secret | None: ...


def _password(name: str, table: dict[str, Any], env: dict[str, str], where: str, *,
              lock: bool = False) -> Secret | None:
    """The link's password (required), or its registry-lock password (optional)."""
    kind = "LOCK_PASSWORD" if lock else "PASSWORD"
    variable = "REGSHIELD_REGISTRY_" + "".join(c if c.isalnum() else "_" for c in name).upper() \
        + f"_{kind}"
    if env.get(variable):
        return Secret(env[variable])
    path = table.get("lock_password_file" if lock else "password_file")
    if not path:
        if lock:
            return None
        raise ConfigurationError(f"{where}: set {variable} or password_file (a password is "
                                 "never read from the config file itself)")
    try:
        return Secret(Path(str(path)).read_text().splitlines()[0].strip())
    except (OSError, IndexError) as exc:
        raise ConfigurationError(f"{where}.password_file: cannot read it ({exc})") from exc


def links_summary(links: Sequence[RegistryLink]) -> list[str]:
    """One line per link for `regshield serve` to print (no secrets)."""
    return [f"{link.name}: {link.endpoint.host}:{link.endpoint.port} as "
            f"{link.endpoint.client_id} for " + ", ".join(f".{t}" for t in sorted(link.tlds))
            for link in links]
