"""Test helpers for transfers: zone snapshots with a journal, a record of the transfers served,
and Knot DNS and NSD started as secondaries of a regshield primary on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.rrset
import dns.tsig
from dns_peers import (
    SIGNATURE_END,
    SIGNATURE_START,
    PeerProcess,
    free_port,
    require_binary,
    start_peer,
)

from regshield.config import DnsSettings
from regshield.dns.notify import query_serial
from regshield.dns.transfer import TransferKind, diff_zones
from regshield.dns.zonedata import ServedZone
from regshield.dnssec import SigningKey, sign_rrset

# The peers run on loopback: its network is allowed as an administrator would allow it.
LOOPBACK_ALLOWED = DnsSettings.load(
    {"REGSHIELD_DNS_ALLOWED_SECONDARY_NETWORKS": "127.0.0.0/8"}, {}).allowed_secondary_networks


def edited(previous: ServedZone, serial: int, replacement: dns.rrset.RRset,
           zsk: SigningKey) -> ServedZone:
    """The next snapshot after `previous`, as the publisher makes one: `replacement` takes the
    place of the RRset of its name and type, it and the new SOA are signed again with `zsk`,
    and the journal gains the difference."""
    origin = previous.origin
    soa = dns.rrset.from_rdata(origin, previous.soa.ttl, previous.soa[0].replace(serial=serial))
    changed = {(origin, dns.rdatatype.SOA): soa,
               (replacement.name, replacement.rdtype): replacement}
    rrsets = []
    for rrset in previous.rrsets:
        if rrset.rdtype == dns.rdatatype.RRSIG and (rrset.name, rrset.covers) in changed:
            new = changed[(rrset.name, rrset.covers)]
            signature = sign_rrset(new, zsk, SIGNATURE_START, SIGNATURE_END, origin)
            rrsets.append(dns.rrset.from_rdata(new.name, new.ttl, signature))
        else:
            rrsets.append(changed.get((rrset.name, rrset.rdtype), rrset))
    return next_serial(previous, ServedZone(origin, serial, tuple(rrsets)))


def next_serial(previous: ServedZone, following: ServedZone) -> ServedZone:
    """`following` with a journal: `previous`'s, then the difference from `previous`."""
    step = diff_zones(previous, following)
    return ServedZone(following.origin, following.serial, following.rrsets,
                      (*previous.journal, step))


@dataclass(frozen=True)
class Transfer:
    origin: dns.name.Name
    peer: tuple[str, int]
    key_name: dns.name.Name
    kind: TransferKind
    serial: int


@dataclass
class TransferLog:
    """Records what `TransferService.on_transfer` reports."""

    transfers: list[Transfer] = field(default_factory=list)

    def __call__(self, origin: dns.name.Name, peer: tuple[str, int], key_name: dns.name.Name,
                 kind: TransferKind, serial: int) -> None:
        self.transfers.append(Transfer(origin, peer, key_name, kind, serial))


@contextlib.contextmanager
def knot_secondary(directory: Path, origin: dns.name.Name, primary_port: int,
                   key: dns.tsig.Key, port: int | None = None) -> Iterator[PeerProcess]:
    """Knot DNS as a secondary of the primary for `origin`, with `key` for both directions."""
    binary = require_binary("knotd")
    port = port or free_port()
    config = directory / "knot.conf"
    config.write_text(f"""
server:
    rundir: "{directory}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{directory}"
key:
  - id: {key.name}
    algorithm: hmac-sha256
    secret: {_base64(key)}
remote:
  - id: primary
    address: 127.0.0.1@{primary_port}
    key: {key.name}
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    key: {key.name}
    action: notify
template:
  - id: default
    storage: "{directory}"
    zonefile-sync: -1
    zonefile-load: none
zone:
  - domain: {origin}
    master: primary
    acl: notify_from_primary
""")
    command = [binary, "-c", str(config), "-s", str(directory / "knot.sock")]
    peer = start_peer("knotd", command, port, directory)
    try:
        yield peer
    finally:
        peer.stop()


@contextlib.contextmanager
def nsd_secondary(directory: Path, origin: dns.name.Name, primary_port: int,
                  key: dns.tsig.Key, port: int | None = None) -> Iterator[PeerProcess]:
    """NSD as a secondary of the primary for `origin`, with `key` for both directions."""
    binary = require_binary("nsd")
    port = port or free_port()
    config = directory / "nsd.conf"
    config.write_text(f"""
server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    server-count: 1
    zonesdir: "{directory}"
    pidfile: "{directory}/nsd.pid"
    xfrdfile: "{directory}/xfrd.state"
    xfrdir: "{directory}"
    zonelistfile: "{directory}/zone.list"
    database: ""
    username: ""
    chroot: ""
    verbosity: 2
remote-control:
    control-enable: no
key:
    name: "{key.name}"
    algorithm: hmac-sha256
    secret: "{_base64(key)}"
zone:
    name: "{origin}"
    zonefile: "{origin}zone"
    request-xfr: 127.0.0.1@{primary_port} {key.name}
    allow-notify: 127.0.0.1 {key.name}
""")
    peer = start_peer("nsd", [binary, "-d", "-c", str(config)], port, directory)
    try:
        yield peer
    finally:
        peer.stop()


async def wait_for_serial(origin: dns.name.Name, secondary: PeerProcess, key: dns.tsig.Key,
                          serial: int, limit: float = 15.0) -> float:
    """Poll the secondary until it serves `serial`; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await query_serial(origin, "127.0.0.1", secondary.port, key,
                              allowed=LOOPBACK_ALLOWED) == serial:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{secondary.name} did not serve serial {serial} within {limit} s:\n"
                         f"{secondary.output()}")


def _base64(key: dns.tsig.Key) -> str:
    return base64.b64encode(key.secret).decode("ascii")
