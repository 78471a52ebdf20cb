"""A zone's live DNSKEY RRset (dns/lookup.py), asked of regshield's own server on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dns.name
import dns.rrset
import dns.zone
import pytest
from dns_peers import LOOPBACK, SignedZone, build_signed_zone, zone_rrsets

from regshield.config import ConfigurationError, Listen, Settings
from regshield.dns.lookup import LiveKeys, LookupFailure, live_dnskeys
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone, ZoneTable
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, generate_key

UNSIGNED_TEXT = """\
@ 3600 SOA ns1 hostmaster 1 7200 900 1209600 300
@ 3600 NS ns1
ns1 3600 A 192.0.2.1
"""


@pytest.fixture(scope="module")
def signed() -> SignedZone:
    return build_signed_zone("signed.test.")


@pytest.fixture(scope="module")
def many_keys() -> SignedZone:
    """A DNSKEY RRset with its signatures far over 1232 octets: only TCP carries it whole."""
    keys = [generate_key(flags=KSK_FLAGS) for _ in range(14)] + [generate_key(flags=ZSK_FLAGS)]
    return build_signed_zone("big.test.", keys=keys)


def unsigned_zone(origin: str) -> ServedZone:
    rrsets = zone_rrsets(dns.zone.from_text(UNSIGNED_TEXT, origin=origin, relativize=False))
    return ServedZone(dns.name.from_text(origin), 1, tuple(rrsets))


@pytest.fixture
async def server(signed: SignedZone, many_keys: SignedZone) -> AsyncIterator[DnsServer]:
    table = ZoneTable([signed.served, many_keys.served, unsigned_zone("plain.test.")])
    running = DnsServer(table)
    await running.start(LOOPBACK, 0)
    yield running
    await running.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP port where something receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, 0))
        yield int(silent.getsockname()[1])


def texts(zone: SignedZone) -> tuple[str, ...]:
    return tuple(sorted(rdata.to_text() for rdata in zone.dnskey()))


async def test_a_signed_zone_gives_its_dnskey_rrset(server: DnsServer,
                                                     signed: SignedZone) -> None:
    live = await live_dnskeys("signed.test", (LOOPBACK, server.port))

    assert live == LiveKeys("signed.test", texts(signed))
    assert live.signed and len(live.records) == 2


async def test_a_dnskey_rrset_too_big_for_udp_is_read_over_tcp(
        server: DnsServer, many_keys: SignedZone) -> None:
    live = await live_dnskeys("big.test", (LOOPBACK, server.port))

    assert live.error is None
    assert live.records == texts(many_keys) and len(live.records) == 15


async def test_an_unsigned_zone_gives_an_empty_set_and_no_error(server: DnsServer) -> None:
    live = await live_dnskeys("plain.test", (LOOPBACK, server.port))

    assert (live.records, live.error, live.signed) == ((), None, False)


async def test_a_name_that_does_not_exist_is_nxdomain(server: DnsServer) -> None:
    live = await live_dnskeys("missing.signed.test", (LOOPBACK, server.port))

    assert live.error is LookupFailure.NXDOMAIN and live.records == ()
    assert "missing.signed.test does not exist" in live.message


async def test_a_server_that_refuses_the_name_is_reported(server: DnsServer) -> None:
    live = await live_dnskeys("elsewhere.example", (LOOPBACK, server.port))

    assert live.error is LookupFailure.REFUSED
    assert "refused" in live.message


async def test_a_resolver_that_never_answers_times_out_in_time(silent_port: int) -> None:
    started = time.monotonic()

    live = await live_dnskeys("signed.test", (LOOPBACK, silent_port), timeout=0.5)

    assert time.monotonic() - started < 2.0
    assert live.error is LookupFailure.TIMEOUT and live.records == ()
    assert f"{LOOPBACK}:{silent_port}" in live.message


def test_the_resolver_is_configured_in_the_dns_table_or_the_environment(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'regshield.db'}"
    assert Settings.load(home=home, database_url=url, environ={}).dns.resolver is None
    from_env = Settings.load(home=home, database_url=url,
                             environ={"REGSHIELD_DNS_RESOLVER": "127.0.0.1:5300"})
    assert from_env.dns.resolver == Listen("127.0.0.1", 5300)
    (home / "regshield.toml").write_text('[dns]\nresolver = "[::1]:53"\n')
    assert Settings.load(home=home, database_url=url, environ={}).dns.resolver == \
        Listen("::1", 53)

    with pytest.raises(ConfigurationError, match=r"dns\.resolver"):
        Settings.load(home=home, database_url=url,
                      environ={"REGSHIELD_DNS_RESOLVER": "resolver.example"})
