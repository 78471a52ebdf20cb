"""The sandbox registry's DNS side: its TLD zones, signed, built from its tables and served on
loopback as a parent publishes them.

A TLD zone holds its SOA and its NS (`ns1.nic.<tld>.`, with an address record at the address
the DNS listener serves on), and for each delegated domain its NS RRset and the DS RRset of
its secDNS dsData (dnssec.py keeps them). Hosts of the TLD that delegated domains name, and
whose own domain is delegated, get their addresses from the host objects as glue. A domain is
not delegated when it names no nameserver, is on clientHold or serverHold (RFC 5731 section
2.3), or is deleted and waiting for purge (pendingDelete, RFC 3915 section 3.1); nor is
`nic.<tld>`, which names the registry's own servers.

Each TLD has its own ECDSAP256SHA256 KSK and ZSK, made on first start and kept in the
sandbox's directory (`dns-keys/<tld>.ksk.der`, PKCS#8, mode 0600); denial is NSEC. After every
committed write to the sandbox's store the zones are built again from the tables and only what
changed is signed again (dnssec/incremental.py), before the write returns: a registrar that has
the answer to its EPP command finds the change at the TLD server. Signatures are made by the
sandbox's clock, as the rest of the registry's time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import structlog
from sqlalchemy import select

from regshield.config import Listen
from regshield.dns.dnspython_dnssec import dnssec
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ZoneTable
from regshield.dns.zonefile import soa_record
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, SigningKey, generate_key, load_private_key_der
from regshield.dnssec.incremental import SignedZone
from regshield.dnssec.keys import private_key_der
from regshield.registry.sandbox.models import SandboxDomain, SandboxHost
from regshield.registry.sandbox.state import SandboxState
from regshield.rules.statuses import DomainStatus

KEY_DIRECTORY = "dns-keys"
REGISTRY_LABEL = "nic"  # nic.<tld>: the registry's own names, as ICANN reserves them
NEGATIVE_TTL = 300  # RFC 2308: how long a resolver may remember that a name does not exist
REFRESH_SECONDS = 3600.0  # how often signatures close to expiry are made again
_NOT_DELEGATED = frozenset({DomainStatus.CLIENT_HOLD, DomainStatus.SERVER_HOLD,
                            DomainStatus.PENDING_DELETE})
log = structlog.get_logger("regshield.sandbox")

RecordsKey = tuple[str, dns.rdatatype.RdataType]
"""An RRset's place: its owner (absolute, lower case) and type."""


@dataclass(frozen=True)
class Delegation:
    """What the registry publishes for one domain: its nameservers and its DS records, as
    presentation text."""

    name: str
    nameservers: tuple[str, ...]
    ds: tuple[str, ...]


def is_delegated(name: str, nameservers: Sequence[str], statuses: Iterable[str],
                 rgp_status: str | None) -> bool:
    """Whether a domain is in its TLD's zone (see the module's docstring)."""
    return (bool(nameservers) and rgp_status is None and not _NOT_DELEGATED & set(statuses)
            and name.split(".")[0] != REGISTRY_LABEL)


def server_name(tld: str) -> str:
    """The name of the TLD's own server."""
    return f"ns1.{REGISTRY_LABEL}.{tld}."


def tld_records(tld: str, delegations: Iterable[Delegation], glue: Mapping[str, Sequence[str]],
                server_address: str) -> dict[RecordsKey, tuple[str, ...]]:
    """The records of the `tld` zone but its SOA, as presentation text by owner and type.

    `glue` maps host names (A-labels, no final dot) to their addresses; only hosts inside the
    TLD are taken. Text is compared from one build to the next, so that only RRsets that
    changed are made again as dnspython objects (making them is most of a build's cost)."""
    records: dict[RecordsKey, tuple[str, ...]] = {
        (f"{tld}.", dns.rdatatype.NS): (server_name(tld),)}
    records.update(_addresses(server_name(tld), [server_address]))
    for delegation in delegations:
        owner = f"{delegation.name}."
        records[(owner, dns.rdatatype.NS)] = tuple(
            sorted(f"{host}." for host in delegation.nameservers))
        if delegation.ds:
            records[(owner, dns.rdatatype.DS)] = tuple(sorted(delegation.ds))
    for host, addresses in glue.items():
        if host.endswith(f".{tld}") and addresses:
            records.update(_addresses(f"{host}.", addresses))
    return records


def _addresses(owner: str, addresses: Iterable[str]) -> dict[RecordsKey, tuple[str, ...]]:
    parsed = [ipaddress.ip_address(address) for address in addresses]
    found: dict[RecordsKey, tuple[str, ...]] = {}
    for rdtype, version in ((dns.rdatatype.A, 4), (dns.rdatatype.AAAA, 6)):
        texts = tuple(str(address) for address in sorted(
            address for address in parsed if address.version == version))
        if texts:
            found[(owner, rdtype)] = texts
    return found


def _rrset(key: RecordsKey, records: tuple[str, ...], ttl: int) -> dns.rrset.RRset:
    owner, rdtype = key
    return dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN, rdtype, list(records))


def load_or_make_keys(directory: Path, tld: str) -> tuple[SigningKey, SigningKey]:
    """The TLD's (KSK, ZSK): read from the key directory, or made and written there on first
    use (PKCS#8 DER, mode 0600)."""
    keys_directory = directory / KEY_DIRECTORY
    keys_directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(keys_directory, 0o700)
    loaded: list[SigningKey] = []
    for role, flags in (("ksk", KSK_FLAGS), ("zsk", ZSK_FLAGS)):
        path = keys_directory / f"{tld}.{role}.der"
        if path.exists():
            loaded.append(load_private_key_der(path.read_bytes(), flags))
            continue
        key = generate_key(flags=flags)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_key_der(key))
        os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
        loaded.append(key)
    return loaded[0], loaded[1]


def served_address(listen: Listen) -> str:
    """The address resolvers reach the TLD server on: the listener's, loopback for a wildcard
    or a host name."""
    try:
        address = ipaddress.ip_address(listen.host)
    except ValueError:
        return "127.0.0.1"
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


class SandboxDns:
    """The sandbox's TLD zones, signed and served. `start` signs them and listens; `update`
    builds them again when the store has changed since the last build; `close` stops."""

    def __init__(self, state: SandboxState, listen: Listen) -> None:
        self.state = state
        self.table = ZoneTable()
        self.server = DnsServer(self.table)
        self.address = served_address(listen)
        self._keys = {tld: load_or_make_keys(state.config.directory, tld)
                      for tld in state.config.tlds}
        self._zones: dict[str, SignedZone] = {}
        self._records: dict[str, dict[RecordsKey, tuple[str, ...]]] = {}
        self._changes = 0  # committed writes seen
        self._built = -1  # the count of writes the served zones reflect
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, state: SandboxState, listen: Listen) -> SandboxDns:
        dns_side = cls(state, listen)
        await dns_side.update()
        await dns_side.server.start(listen.host, listen.port)
        state.store.after_commit(dns_side._store_changed)
        dns_side._timer = asyncio.create_task(dns_side._refresh_forever(),
                                              name="sandbox-dns-refresh")
        return dns_side

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def servers(self) -> tuple[tuple[str, int], ...]:
        """Where the TLD zones are served: (address, port)."""
        return ((self.address, self.port),)

    def serial(self, tld: str) -> int:
        return self._zones[tld].serial

    def trust_anchors(self) -> list[str]:
        """The DS of each TLD's KSK (SHA-256), one `<tld>. DS <tag> 13 2 <digest>` line each,
        for a validating resolver to start its chain of trust at the TLD."""
        lines = []
        for tld, (ksk, _) in self._keys.items():
            origin = dns.name.from_text(tld)
            ds = dnssec.make_ds(origin, ksk.dnskey, "SHA256")
            lines.append(f"{origin.to_text()} DS {ds.to_text()}")
        return lines

    async def update(self, *, force: bool = False) -> None:
        """Build the zones again from the tables if a write was committed since the last
        build (always with `force`), sign what changed and serve the result; then make again
        the signatures that near their expiry."""
        wanted = self._changes
        async with self._lock:
            if self._built >= wanted and not force:
                return
            started = self._changes
            delegations, glue = await self._read()
            now = self.state.clock.now()
            for tld in self.state.config.tlds:
                await self._sign(tld, tld_records(tld, delegations.get(tld, ()), glue,
                                                  self.address))
                self._zones[tld].refresh(now)
                self.table.put(self._zones[tld].served())
            self._built = started

    async def close(self) -> None:
        self.state.store.stop_watching(self._store_changed)
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        await self.server.close()

    async def _sign(self, tld: str, records: dict[RecordsKey, tuple[str, ...]]) -> None:
        now = self.state.clock.now()
        ttl = self.state.config.dns_ttl
        signed = self._zones.get(tld)
        if signed is None:
            origin = dns.name.from_text(tld)
            soa = dns.rrset.from_text(
                origin, ttl, dns.rdataclass.IN, dns.rdatatype.SOA,
                soa_record(server_name(tld), f"hostmaster.{REGISTRY_LABEL}.{tld}.",
                           int(now.timestamp()), min(ttl, NEGATIVE_TTL)))
            rrsets = [soa, *(_rrset(key, texts, ttl) for key, texts in records.items())]
            # The first signing of a large zone takes a while: off the event loop.
            self._zones[tld] = await asyncio.to_thread(
                SignedZone, rrsets, self._keys[tld], now, "nsec")
            self._records[tld] = records
            return
        before = self._records[tld]
        replace = [_rrset(key, texts, ttl) for key, texts in records.items()
                   if before.get(key) != texts]
        delete = [(dns.name.from_text(owner), rdtype) for owner, rdtype in before
                  if (owner, rdtype) not in records]
        self._records[tld] = records
        if replace or delete:
            signed.apply(now, replace=replace, delete=delete)
            log.info("sandbox:dns:zone_changed", tld=tld, serial=signed.serial,
                     replaced=len(replace), deleted=len(delete))

    async def _read(self) -> tuple[dict[str, list[Delegation]], dict[str, list[str]]]:
        """The delegations of each TLD, and the addresses of the hosts they need as glue."""
        # Plain rows, not ORM objects: this runs after every write, over every domain.
        async with self.state.store.read() as session:
            domains = (await session.execute(
                select(SandboxDomain.name, SandboxDomain.nameservers, SandboxDomain.statuses,
                       SandboxDomain.ds_records, SandboxDomain.rgp_status)
                .where(SandboxDomain.deleted_at.is_(None)).order_by(SandboxDomain.name))).all()
            hosts = (await session.execute(
                select(SandboxHost.name, SandboxHost.addresses)
                .where(SandboxHost.deleted_at.is_(None)))).all()
        delegated = [domain for domain in domains
                     if is_delegated(domain.name, domain.nameservers, domain.statuses,
                                     domain.rgp_status)]
        delegated_names = {domain.name for domain in delegated}
        named = {host for domain in delegated for host in domain.nameservers}
        by_tld: dict[str, list[Delegation]] = {}
        for domain in delegated:
            ds = tuple(f"{row['key_tag']} {row['algorithm']} {row['digest_type']} "
                       f"{row['digest']}" for row in domain.ds_records)
            by_tld.setdefault(domain.name.rsplit(".", 1)[-1], []).append(
                Delegation(domain.name, tuple(domain.nameservers), ds))
        # Glue only below a delegated domain: above none, the address would be the TLD's own
        # answer for a name it does not hold.
        glue = {host.name: list(host.addresses) for host in hosts
                if host.name in named and ".".join(host.name.split(".")[-2:]) in delegated_names}
        return by_tld, glue

    async def _store_changed(self) -> None:
        self._changes += 1
        try:
            await self.update()
        except Exception:
            log.exception("sandbox:dns:update_failed")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.update(force=True)
            except Exception:
                log.exception("sandbox:dns:refresh_failed")


__all__ = ["Delegation", "SandboxDns", "is_delegated", "load_or_make_keys", "served_address",
           "server_name", "tld_records"]
