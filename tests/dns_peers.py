"""Helpers for DNS interop tests: free loopback ports, real peer processes, signed test zones.

Peers (unbound, Knot DNS, NSD, ...) run as subprocesses on 127.0.0.1 with ports picked at run
time, their files in the test's `tmp_path`; `PeerProcess.stop` ends them. A missing binary
fails the test with a message naming the package (CI installs them with scripts/test-services).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, SigningKey, generate_key, sign_zone

LOOPBACK = "127.0.0.1"
PACKAGES = {
    "unbound": "unbound", "knotd": "knot", "knotc": "knot", "kdig": "knot-dnsutils",
    "nsd": "nsd", "dig": "bind9-dnsutils", "dnsperf": "dnsperf",
}


def require_binary(name: str) -> str:
    """The path of `name`, or a failed test saying which package provides it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        package = PACKAGES.get(name, name)
        pytest.fail(f"{name} is not installed (Debian package {package}; "
                    "scripts/test-services installs it)")
    return path


def free_port() -> int:
    """A loopback port free for both UDP and TCP at the time of the call."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port for both UDP and TCP")


def answers_on(port: int, qname: str, *, host: str = LOOPBACK, timeout: float = 0.3) -> bool:
    """True when something answers a SOA query for `qname` over UDP on `port`."""
    query = dns.message.make_query(qname, dns.rdatatype.SOA)
    try:
        dns.query.udp(query, host, port=port, timeout=timeout)
    except (OSError, dns.exception.Timeout):
        return False
    return True


@dataclass
class PeerProcess:
    """A DNS peer running as a subprocess, its output in `log`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_peer(name: str, arguments: Sequence[str], port: int, workdir: Path, *,
               ready_name: str = ".", timeout: float = 10.0) -> PeerProcess:
    """Start `arguments` and wait until it answers DNS on `port` (fail with its log if not)."""
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(arguments), stdout=output, stderr=subprocess.STDOUT, cwd=workdir
        )
    peer = PeerProcess(name, process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{peer.output()}")
        if answers_on(port, ready_name):
            return peer
        time.sleep(0.05)
    peer.stop()
    pytest.fail(f"{name} did not answer on port {port} within {timeout} s:\n{peer.output()}")


def start_unbound(workdir: Path, zone: dns.name.Name, trust_anchor: str,
                  authorities: Sequence[tuple[str, int]]) -> PeerProcess:
    """A validating unbound on a free loopback port whose only way to `zone` is `authorities`.

    `trust_anchor` is a DS or DNSKEY record in presentation form, owner included.
    """
    return start_validating_resolver(workdir, trust_anchor, {str(zone): authorities})


def start_validating_resolver(workdir: Path, trust_anchor: str,
                              stubs: Mapping[str, Sequence[tuple[str, int]]], *,
                              at: datetime | None = None) -> PeerProcess:
    """A validating unbound on a free loopback port that reaches each zone of `stubs` only at
    its servers, validating from `trust_anchor`. With `at`, signatures are checked as at that
    moment (unbound's `val-override-date`), for zones signed on a test's fake clock."""
    binary = require_binary("unbound")
    port = free_port()
    stub_zones = "".join(
        f'stub-zone:\n    name: "{zone}"\n'
        + "".join(f"    stub-addr: {host}@{peer_port}\n" for host, peer_port in servers)
        for zone, servers in stubs.items())
    override = f'    val-override-date: "{at.astimezone(UTC):%Y%m%d%H%M%S}"\n' if at else ""
    config = workdir / "unbound.conf"
    config.write_text(f"""server:
    interface: {LOOPBACK}@{port}
    port: {port}
    do-ip6: no
    chroot: ""
    username: ""
    directory: "{workdir}"
    pidfile: "{workdir / 'unbound.pid'}"
    logfile: ""
    use-syslog: no
    verbosity: 1
    val-log-level: 2
    do-not-query-localhost: no
    module-config: "validator iterator"
    qname-minimisation: no
    harden-referral-path: no
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    trust-anchor: "{trust_anchor}"
    domain-insecure: "."
    # unbound answers the RFC 6761 special-use names itself unless told not to.
    local-zone: "test." nodefault
{override}{stub_zones}remote-control:
    control-enable: no
""")
    return start_peer("unbound", [binary, "-d", "-c", str(config)], port, workdir,
                      ready_name=next(iter(stubs)))


@contextlib.contextmanager
def running_server(server: DnsServer, host: str = LOOPBACK) -> Iterator[DnsServer]:
    """Run `server` on a free port in a thread of its own (its own event loop) until exit.

    A thread of its own lets tests use blocking clients and peers that query the server while
    the test waits for them.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(host, 0))
        except BaseException as error:
            failure.append(error)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=run, name="dns-server", daemon=True)
    thread.start()
    started.wait(10)
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# -- signed test zones -----------------------------------------------------------------------

SIGNATURE_START = datetime.now(UTC) - timedelta(hours=1)
SIGNATURE_END = SIGNATURE_START + timedelta(days=14)

TEST_ZONE_TEXT = """\
@ 3600 SOA ns1 hostmaster {serial} 7200 900 1209600 300
@ 3600 NS ns1
ns1 3600 A 192.0.2.1
www 3600 A 192.0.2.10
www 3600 AAAA 2001:db8::10
alias 3600 CNAME www
outside 3600 CNAME www.example.org.
*.wild 3600 A 192.0.2.20
*.wild 3600 TXT "wildcard"
deep.ent.a 3600 A 192.0.2.30
sub 3600 NS ns.sub
sub 3600 DS 12345 13 2 {digest}
ns.sub 3600 A 192.0.2.53
insecure 3600 NS ns.insecure
ns.insecure 3600 A 192.0.2.54
{big}
"""


@dataclass(frozen=True)
class SignedZone:
    """A test zone signed by regshield's signer, as the server serves it."""

    served: ServedZone
    keys: tuple[SigningKey, ...]

    @property
    def origin(self) -> dns.name.Name:
        return self.served.origin

    def dnskey(self) -> dns.rrset.RRset:
        rrset = self.served.find(self.origin, dns.rdatatype.DNSKEY)
        assert rrset is not None
        return rrset

    def ds_text(self) -> str:
        ksk = next(key for key in self.keys if key.is_ksk)
        ds = dns.dnssec.make_ds(self.origin, ksk.dnskey, "SHA256")
        return f"{self.origin} DS {ds.to_text()}"


def zone_rrsets(zone: dns.zone.Zone) -> list[dns.rrset.RRset]:
    """Every RRset of a zone dnspython read, with absolute names."""
    rrsets = []
    for name, rdataset in zone.iterate_rdatasets():
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
        rrset.update(rdataset)  # type: ignore[no-untyped-call]
        rrsets.append(rrset)
    return rrsets


def build_signed_zone(origin: str = "regshield.test.", *, serial: int = 1,
                      nsec: Literal["nsec", "nsec3"] = "nsec",
                      keys: Sequence[SigningKey] | None = None,
                      extra: str = "") -> SignedZone:
    """The test zone (delegations, glue, a wildcard, an empty non-terminal, a CNAME, a TXT set
    too big for 512 bytes) signed with a fresh KSK and ZSK unless `keys` are given."""
    big = "\n".join(f'big 3600 TXT "{"x" * 60} {index}"' for index in range(12))
    text = TEST_ZONE_TEXT.format(serial=serial, digest="ab" * 32, big=big) + extra
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    signing_keys = tuple(keys) if keys is not None else (
        generate_key(flags=KSK_FLAGS), generate_key(flags=ZSK_FLAGS)
    )
    rrsets = sign_zone(zone, signing_keys, SIGNATURE_START, SIGNATURE_END, nsec=nsec)
    served = ServedZone(dns.name.from_text(origin), serial, tuple(rrsets))
    return SignedZone(served, signing_keys)


def with_corrupted_signature(zone: SignedZone, name: str, rdtype: int,
                             serial: int) -> SignedZone:
    """The zone at a new serial with one byte of the RRSIG over (name, rdtype) flipped."""
    owner = dns.name.from_text(name, zone.origin)
    rrsets = []
    for rrset in zone.served.rrsets:
        if (rrset.name, rrset.rdtype, rrset.covers) == (owner, dns.rdatatype.RRSIG, rdtype):
            rrsig = next(iter(rrset))
            rrset = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
            rrset.update_ttl(rrsig_ttl(zone, owner, rdtype))
            signature = bytearray(rrsig.signature)
            signature[10] ^= 0xFF
            rrset.items = {rrsig.replace(signature=bytes(signature)): None}
        rrsets.append(rrset)
    served = ServedZone(zone.origin, serial, tuple(rrsets))
    return SignedZone(served, zone.keys)


def rrsig_ttl(zone: SignedZone, owner: dns.name.Name, rdtype: int) -> int:
    rrsig = zone.served.find(owner, dns.rdatatype.RRSIG, rdtype)
    assert rrsig is not None
    return int(rrsig.ttl)


def stop_all(peers: Sequence[PeerProcess]) -> None:
    for peer in peers:
        with contextlib.suppress(Exception):
            peer.stop()
