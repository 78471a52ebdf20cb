"""The parent-DS check asks every server of the parent zone, directly: here the sandbox
registry's TLD server, a second server that lags behind it, one that never answers, and the
servers found through a validating unbound."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dns.asyncquery
import dns.asyncresolver
import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dns_peers import (
    LOOPBACK,
    PeerProcess,
    start_unbound,
    start_validating_resolver,
)
from registry.sandbox.test_server import Client, Sandbox, create, running_sandbox

from regshield.clock import FakeClock
from regshield.config import Listen, Settings
from regshield.dns.parent import check_parent_ds
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone, ZoneTable
from regshield.dnssec import KSK_FLAGS, generate_key
from regshield.dnssec.incremental import SignedZone
from regshield.errors import ConfigurationError, ValidationFailed
from regshield.registry.codec import DOMAIN_NS, SECDNS_NS, ResultCode
from regshield.registry.commands import DomainUpdate, SecDnsCreate, SecDnsUpdate
from regshield.registry.links import configured_links
from regshield.rules.ds import DsRecord

TTL = 120
TEST = dns.name.from_text("test.")


def new_ds(zone: str) -> DsRecord:
    ds = dns.dnssec.make_ds(zone, generate_key(flags=KSK_FLAGS).dnskey, "SHA256")
    return DsRecord(ds.key_tag, ds.algorithm, ds.digest_type, ds.digest.hex())


def shouted(record: DsRecord) -> str:
    """The DS as registrars often paste it: the digest in upper case."""
    return f"{record.key_tag} {record.algorithm} {record.digest_type} {record.digest.upper()}"


OLD_DS, NEW_DS = new_ds("shop.test."), new_ds("shop.test.")


@pytest.fixture
async def sandbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path, clock, dns_listen=Listen(LOOPBACK, 0),
                               dns_ttl=TTL) as box:
        yield box


async def signed_domain(sandbox: Sandbox) -> Client:
    """registrar-a's session, with shop.test registered and OLD_DS at the registry."""
    client = await sandbox.session(object_uris=(DOMAIN_NS,), extension_uris=(SECDNS_NS,))
    created = await client.send(create("shop.test"), extensions=(SecDnsCreate((OLD_DS,)),))
    assert created.code == ResultCode.COMPLETED, created.message
    return client


async def roll(client: Client, change: SecDnsUpdate) -> None:
    updated = await client.send(DomainUpdate("shop.test"), extensions=(change,))
    assert updated.code == ResultCode.COMPLETED, updated.message


def tld_server(sandbox: Sandbox) -> tuple[str, int]:
    assert sandbox.server.dns is not None
    (server,) = sandbox.server.dns.servers
    return server


@pytest.fixture
async def lagging(sandbox: Sandbox) -> AsyncIterator[tuple[DnsServer, ZoneTable]]:
    """A second server of the TLD, serving only what it is handed (as a secondary that has
    not transferred the newest serial yet)."""
    table = ZoneTable()
    server = DnsServer(table)
    await server.start(LOOPBACK, 0)
    yield server, table
    await server.close()


@pytest.fixture
def silent() -> Iterator[tuple[str, int]]:
    """A loopback UDP and TCP port that takes queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((LOOPBACK, 0))
        yield LOOPBACK, int(udp.getsockname()[1])


async def test_the_tld_server_serves_the_ds_of_a_domain_created_with_one(
        sandbox: Sandbox) -> None:
    await signed_domain(sandbox)

    check = await check_parent_ds("shop.test", [shouted(OLD_DS)],
                                  servers=[tld_server(sandbox)])
    other = await check_parent_ds("shop.test", [NEW_DS.to_text()],
                                  servers=[tld_server(sandbox)])

    assert check.seen and check.reasons == ()
    assert check.ttl == TTL
    assert check.servers[tld_server(sandbox)].ds == {OLD_DS.to_text()}
    assert not other.seen
    assert other.reasons == (f"127.0.0.1:{tld_server(sandbox)[1]} does not serve "
                             f"{NEW_DS.to_text()}",)


async def test_a_withdrawn_ds_counts_as_seen_only_once_the_parent_stops_serving_it(
        sandbox: Sandbox) -> None:
    client = await signed_domain(sandbox)
    await roll(client, SecDnsUpdate(add=(NEW_DS,)))

    both = await check_parent_ds("shop.test", [NEW_DS.to_text()], [OLD_DS.to_text()],
                                 servers=[tld_server(sandbox)])
    await roll(client, SecDnsUpdate(remove=(OLD_DS,)))
    only_new = await check_parent_ds("shop.test", [NEW_DS.to_text()], [OLD_DS.to_text()],
                                     servers=[tld_server(sandbox)])

    assert not both.seen
    assert both.reasons[0].endswith(f"still serves {OLD_DS.to_text()}")
    assert only_new.seen


async def test_every_server_must_serve_the_new_ds_before_it_is_seen(
        sandbox: Sandbox, lagging: tuple[DnsServer, ZoneTable]) -> None:
    assert sandbox.server.dns is not None
    client = await signed_domain(sandbox)
    lagging_server, lagging_table = lagging
    old_zone = sandbox.server.dns.table.get(TEST)
    assert old_zone is not None
    lagging_table.put(old_zone)
    servers = [tld_server(sandbox), (LOOPBACK, lagging_server.port)]

    await roll(client, SecDnsUpdate(add=(NEW_DS,), remove=(OLD_DS,)))
    behind = await check_parent_ds("shop.test", [NEW_DS.to_text()], servers=servers)
    new_zone = sandbox.server.dns.table.get(TEST)
    assert new_zone is not None and new_zone.serial > old_zone.serial
    lagging_table.put(new_zone)
    caught_up = await check_parent_ds("shop.test", [NEW_DS.to_text()], servers=servers)

    assert not behind.seen
    assert behind.servers[servers[0]].ds == {NEW_DS.to_text()}
    assert behind.servers[servers[1]].ds == {OLD_DS.to_text()}
    assert behind.reasons == (f"127.0.0.1:{lagging_server.port} does not serve "
                              f"{NEW_DS.to_text()}",)
    assert caught_up.seen


async def test_a_server_that_does_not_answer_is_not_seen_and_says_why(
        sandbox: Sandbox, silent: tuple[str, int]) -> None:
    await signed_domain(sandbox)

    check = await check_parent_ds("shop.test", [OLD_DS.to_text()],
                                  servers=[tld_server(sandbox), silent], wait=0.2)

    assert not check.seen
    assert check.servers[silent].error == "timeout"
    assert check.servers[tld_server(sandbox)].ds == {OLD_DS.to_text()}
    assert check.reasons == (f"127.0.0.1:{silent[1]}: timeout",)


async def test_a_server_of_no_zone_refuses_and_one_of_the_child_only_is_lame(
        sandbox: Sandbox, lagging: tuple[DnsServer, ZoneTable]) -> None:
    await signed_domain(sandbox)
    no_zone = (LOOPBACK, lagging[0].port)
    refused = await check_parent_ds("shop.test", [OLD_DS.to_text()], servers=[no_zone])
    # The child's own server answers a DS query from the child zone, with no DS at all.
    origin = dns.name.from_text("shop.test.")
    lagging[1].put(ServedZone(origin, 1, (
        dns.rrset.from_text(origin, 60, "IN", "SOA", "ns1.shop.test. h.shop.test. 1 2 3 4 5"),
        dns.rrset.from_text(origin, 60, "IN", "NS", "ns1.shop.test."))))
    lame = await check_parent_ds("shop.test", [OLD_DS.to_text()], servers=[no_zone])

    assert not refused.seen and refused.servers[no_zone].error == "refused"
    assert not lame.seen and lame.servers[no_zone].error == "lame"


async def test_a_ds_that_is_not_presentation_text_is_refused_naming_it() -> None:
    with pytest.raises(ValidationFailed) as refused:
        await check_parent_ds("shop.test", [OLD_DS.to_text(), "12345 13 2 not-hex"],
                              servers=[(LOOPBACK, 9)])

    assert [error.field for error in refused.value.errors] == ["wanted.1.digest"]


async def test_the_parent_servers_are_found_through_a_resolver(
        sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.server.dns is not None
    await signed_domain(sandbox)
    # unbound queries the sandbox, which answers on this event loop: start it off the loop.
    unbound: PeerProcess = await asyncio.to_thread(
        start_unbound, tmp_path, TEST, _anchor(sandbox, "test."), [tld_server(sandbox)])
    try:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [LOOPBACK]
        resolver.port = unbound.port
        check = await check_parent_ds("shop.test", [OLD_DS.to_text()], resolver=resolver,
                                      port=sandbox.server.dns.port)
    finally:
        await asyncio.to_thread(unbound.stop)

    # ns1.nic.test, the TLD's one server, has the sandbox's DNS address.
    assert list(check.servers) == [tld_server(sandbox)]
    assert check.seen


def _anchor(sandbox: Sandbox, zone: str) -> str:
    assert sandbox.server.dns is not None
    return next(line for line in sandbox.server.dns.trust_anchors()
                if line.startswith(f"{zone} "))


# --- where a registry link's parent servers come from -----------------------------------------

def settings_with(tmp_path: Path, registry: str, environ: dict[str, str] | None = None
                  ) -> Settings:
    (tmp_path / "regshield.toml").write_text(registry)
    return Settings.load(home=tmp_path, environ=environ or {})


REGISTRY_TABLE = """
[registries.nic]
tlds = ["example"]
host = "epp.nic.example"
client_id = "regshield-01"
ca_certificate = "/etc/regshield/registry-ca.pem"
"""
PASSWORD_ENV = {"REGSHIELD_REGISTRY_NIC_PASSWORD": "link-pass-0001"}


def test_a_registry_link_names_its_parent_servers(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, REGISTRY_TABLE + 'parent_servers = ["192.0.2.1:53", "[2001:DB8::1]:5353"]\n',
        PASSWORD_ENV)

    (link,) = configured_links(settings, PASSWORD_ENV)

    assert link.parent_servers == (("192.0.2.1", 53), ("2001:db8::1", 5353))


def test_parent_servers_that_are_not_address_and_port_are_refused_naming_the_option(
        tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, REGISTRY_TABLE + 'parent_servers = ["ns1.nic.example:53", "192.0.2.1", '
        '"2001:db8::1:53", "192.0.2.2:53"]\n', PASSWORD_ENV)

    with pytest.raises(ConfigurationError) as refused:
        configured_links(settings, PASSWORD_ENV)

    message = str(refused.value)
    assert message.startswith("registries.nic.parent_servers: expected")
    assert "'ns1.nic.example:53', '192.0.2.1', '2001:db8::1:53'" in message
    assert "192.0.2.2:53'" not in message


def test_the_sandbox_link_checks_the_sandbox_dns_listener(tmp_path: Path) -> None:
    default = Settings.load(home=tmp_path / "a", environ={})
    moved = Settings.load(home=tmp_path / "b",
                          environ={"REGSHIELD_SANDBOX_DNS_LISTEN": "0.0.0.0:5399"})
    off = Settings.load(home=tmp_path / "c", environ={"REGSHIELD_SANDBOX_DNS_LISTEN": "off"})

    assert configured_links(default, {})[0].parent_servers == (("127.0.0.1", 5354),)
    assert configured_links(moved, {})[0].parent_servers == (("127.0.0.1", 5399),)
    assert configured_links(off, {})[0].parent_servers == ()


# --- the sandbox as the parent a validating resolver starts from ------------------------------

async def test_a_validating_resolver_follows_the_sandbox_ds_down_to_the_child_zone(
        sandbox: Sandbox, tmp_path: Path, clock: FakeClock) -> None:
    assert sandbox.server.dns is not None
    child_keys = [generate_key(flags=KSK_FLAGS), generate_key()]
    children = ZoneTable()
    for name in ("shop.test.", "forged.test."):
        origin = dns.name.from_text(name)
        children.put(SignedZone([
            dns.rrset.from_text(origin, 60, "IN", "SOA", f"ns1.{name} h.{name} 1 60 60 600 60"),
            dns.rrset.from_text(origin, 60, "IN", "NS", "ns1.example.net."),
            dns.rrset.from_text(f"www.{name}", 60, "IN", "A", "192.0.2.80"),
        ], child_keys, clock.now()).served())
    child_server = DnsServer(children)
    await child_server.start(LOOPBACK, 0)
    client = await sandbox.session(object_uris=(DOMAIN_NS,), extension_uris=(SECDNS_NS,))
    good = dns.dnssec.make_ds("shop.test.", child_keys[0].dnskey, "SHA256")
    for name, ds in (("shop.test", DsRecord(good.key_tag, 13, 2, good.digest.hex())),
                     ("forged.test", new_ds("forged.test."))):
        created = await client.send(create(name), extensions=(SecDnsCreate((ds,)),))
        assert created.code == ResultCode.COMPLETED, created.message
    # unbound queries the sandbox, which answers on this event loop: start it off the loop.
    unbound = await asyncio.to_thread(
        start_validating_resolver, tmp_path, _anchor(sandbox, "test."), {
            "test.": [tld_server(sandbox)], "shop.test.": [(LOOPBACK, child_server.port)],
            "forged.test.": [(LOOPBACK, child_server.port)]})
    try:
        secure = await resolve(unbound.port, "www.shop.test.")
        bogus = await resolve(unbound.port, "www.forged.test.")
    finally:
        await asyncio.to_thread(unbound.stop)
        await child_server.close()

    assert secure.rcode() == dns.rcode.NOERROR and secure.flags & dns.flags.AD
    assert [str(rdata) for rrset in secure.answer for rdata in rrset
            if rrset.rdtype == dns.rdatatype.A] == ["192.0.2.80"]
    # The DS at the TLD names a key the child does not have: the answer is bogus.
    assert bogus.rcode() == dns.rcode.SERVFAIL


async def resolve(port: int, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, dns.rdatatype.A, want_dnssec=True)
    return await dns.asyncquery.udp(query, LOOPBACK, timeout=5, port=port)
