"""The sandbox registry publishes its TLD zones over DNS, signed, as a parent does: what a
registrar sets over EPP (nameservers, glue, DS records, holds) is what the TLD server serves,
and its trust anchor validates the chain from the TLD down."""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import dns.asyncquery
import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from registry.sandbox.test_server import Client, Sandbox, create, running_sandbox
from regshield.clock import FakeClock
from regshield.config import Listen
from regshield.dnssec import KSK_FLAGS, SigningKey, generate_key
from regshield.registry.codec import DOMAIN_NS, HOST_NS, SECDNS_NS, ResultCode, Status
from regshield.registry.commands import (
    DomainChanges,
    DomainDelete,
    DomainUpdate,
    HostCreate,
    SecDnsCreate,
    SecDnsUpdate,
)
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.zone import KEY_DIRECTORY
from regshield.rules.ds import DsRecord

LOOPBACK = "127.0.0.1"
TEST = dns.name.from_text("test.")


@pytest.fixture
async def sandbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path, clock, dns_listen=Listen(LOOPBACK, 0),
                               dns_ttl=60) as box:
        yield box


async def registrar(sandbox: Sandbox) -> Client:
    return await sandbox.session(object_uris=(DOMAIN_NS, HOST_NS),
                                 extension_uris=(SECDNS_NS,))


def ds_of(key: SigningKey, zone: str) -> DsRecord:
    ds = dns.dnssec.make_ds(zone, key.dnskey, "SHA256")
    return DsRecord(ds.key_tag, ds.algorithm, ds.digest_type, ds.digest.hex())


async def ask(sandbox: Sandbox, name: str, rdtype: dns.rdatatype.RdataType
              ) -> dns.message.Message:
    assert sandbox.server.dns is not None
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    query.flags &= ~dns.flags.RD
    return await dns.asyncquery.tcp(query, LOOPBACK, timeout=5, port=sandbox.server.dns.port)


def section_rrset(section: list[dns.rrset.RRset], name: str,
                  rdtype: dns.rdatatype.RdataType,
                  covers: dns.rdatatype.RdataType = dns.rdatatype.NONE
                  ) -> dns.rrset.RRset | None:
    for rrset in section:
        if (rrset.name == dns.name.from_text(name) and rrset.rdtype == rdtype
                and rrset.covers == covers):
            return rrset
    return None


async def tld_dnskeys(sandbox: Sandbox) -> dns.rrset.RRset:
    response = await ask(sandbox, "test.", dns.rdatatype.DNSKEY)
    keys = section_rrset(response.answer, "test.", dns.rdatatype.DNSKEY)
    assert keys is not None
    return keys


async def validated_ds(sandbox: Sandbox, name: str, at: datetime | None = None) -> set[str]:
    """The DS records the TLD server gives for `name`, once their RRSIG is checked against the
    TLD's DNSKEY set (at the time `at`, or now)."""
    response = await ask(sandbox, name, dns.rdatatype.DS)
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    ds = section_rrset(response.answer, name, dns.rdatatype.DS)
    rrsig = section_rrset(response.answer, name, dns.rdatatype.RRSIG, dns.rdatatype.DS)
    assert ds is not None and rrsig is not None
    dns.dnssec.validate(ds, rrsig, {TEST: await tld_dnskeys(sandbox)},
                        now=None if at is None else at.timestamp())
    return {rdata.to_text().lower() for rdata in ds}


async def test_a_domain_with_nameservers_and_ds_is_a_signed_delegation_at_the_tld(
        sandbox: Sandbox) -> None:
    child_key = generate_key(flags=KSK_FLAGS)
    client = await registrar(sandbox)

    created = await client.send(create("shop.test"),
                                extensions=(SecDnsCreate((ds_of(child_key, "shop.test."),)),))
    referral = await ask(sandbox, "www.shop.test.", dns.rdatatype.A)

    assert created.code == ResultCode.COMPLETED, created.message
    assert await validated_ds(sandbox, "shop.test.") == {
        ds_of(child_key, "shop.test.").to_text()}
    assert not referral.flags & dns.flags.AA
    delegation = section_rrset(referral.authority, "shop.test.", dns.rdatatype.NS)
    assert delegation is not None
    assert sorted(str(rdata) for rdata in delegation) == ["ns1.example.net.", "ns2.example.net."]
    # The DS travels with the referral, signed, so a resolver can go on down the chain.
    assert section_rrset(referral.authority, "shop.test.", dns.rdatatype.DS) is not None


async def test_hosts_inside_the_tld_get_their_addresses_as_glue(sandbox: Sandbox) -> None:
    client = await registrar(sandbox)
    await client.send(create("glue.test"))
    host = await client.send(HostCreate("ns1.glue.test", (ipaddress.ip_address("192.0.2.53"),
                                                          ipaddress.ip_address("2001:db8::53"))))
    moved = await client.send(DomainUpdate(
        "glue.test", add=DomainChanges(nameservers=("ns1.glue.test",)),
        remove=DomainChanges(nameservers=("ns1.example.net", "ns2.example.net"))))

    referral = await ask(sandbox, "glue.test.", dns.rdatatype.SOA)

    assert host.code == moved.code == ResultCode.COMPLETED
    delegation = section_rrset(referral.authority, "glue.test.", dns.rdatatype.NS)
    assert delegation is not None and [str(r) for r in delegation] == ["ns1.glue.test."]
    v4 = section_rrset(referral.additional, "ns1.glue.test.", dns.rdatatype.A)
    v6 = section_rrset(referral.additional, "ns1.glue.test.", dns.rdatatype.AAAA)
    assert v4 is not None and [str(r) for r in v4] == ["192.0.2.53"]
    assert v6 is not None and [str(r) for r in v6] == ["2001:db8::53"]


async def test_a_ds_change_over_epp_is_served_with_a_new_serial(sandbox: Sandbox) -> None:
    old_key, new_key = generate_key(flags=KSK_FLAGS), generate_key(flags=KSK_FLAGS)
    old_ds, new_ds = ds_of(old_key, "roll.test."), ds_of(new_key, "roll.test.")
    client = await registrar(sandbox)
    await client.send(create("roll.test"), extensions=(SecDnsCreate((old_ds,)),))
    assert sandbox.server.dns is not None
    serial_before = sandbox.server.dns.serial("test")

    both = await client.send(DomainUpdate("roll.test"), extensions=(SecDnsUpdate(add=(new_ds,)),))
    during = await validated_ds(sandbox, "roll.test.")
    only_new = await client.send(DomainUpdate("roll.test"),
                                 extensions=(SecDnsUpdate(remove=(old_ds,)),))
    after = await validated_ds(sandbox, "roll.test.")

    assert both.code == only_new.code == ResultCode.COMPLETED
    assert during == {old_ds.to_text(), new_ds.to_text()}
    assert after == {new_ds.to_text()}
    assert sandbox.server.dns.serial("test") == serial_before + 2


async def test_signatures_follow_the_registry_clock_and_are_made_again_before_expiry(
        sandbox: Sandbox, clock: FakeClock) -> None:
    ds = ds_of(generate_key(flags=KSK_FLAGS), "aging.test.")
    client = await registrar(sandbox)
    await client.send(create("aging.test"), extensions=(SecDnsCreate((ds,)),))
    assert sandbox.server.dns is not None
    clock.advance(timedelta(days=13))

    with pytest.raises(dns.exception.ValidationFailure):
        await validated_ds(sandbox, "aging.test.", at=clock.now() + timedelta(days=2))
    await sandbox.server.dns.update(force=True)

    assert await validated_ds(sandbox, "aging.test.",
                              at=clock.now() + timedelta(days=2)) == {ds.to_text()}


async def test_a_held_domain_is_not_delegated_until_the_hold_is_lifted(
        sandbox: Sandbox) -> None:
    client = await registrar(sandbox)
    await client.send(create("held.test"))
    held = await client.send(DomainUpdate("held.test",
                                          add=DomainChanges(statuses=(Status("clientHold"),))))
    while_held = await ask(sandbox, "held.test.", dns.rdatatype.NS)
    await client.send(DomainUpdate("held.test",
                                   remove=DomainChanges(statuses=(Status("clientHold"),))))
    await sandbox.server.state.set_server_statuses("held.test", add=["serverHold"])
    while_server_held = await ask(sandbox, "held.test.", dns.rdatatype.NS)
    await sandbox.server.state.set_server_statuses("held.test", remove=["serverHold"])
    released = await ask(sandbox, "held.test.", dns.rdatatype.NS)

    assert held.code == ResultCode.COMPLETED, held.message
    for response in (while_held, while_server_held):
        assert response.rcode() == dns.rcode.NXDOMAIN and response.flags & dns.flags.AA
        # The denial is signed: an NSEC proves the name is not in the zone.
        assert any(rrset.rdtype == dns.rdatatype.NSEC for rrset in response.authority)
    assert section_rrset(released.authority, "held.test.", dns.rdatatype.NS) is not None


async def test_a_domain_deleted_into_redemption_leaves_the_zone(
        sandbox: Sandbox, clock: FakeClock) -> None:
    client = await registrar(sandbox)
    await client.send(create("gone.test"))
    before = await ask(sandbox, "gone.test.", dns.rdatatype.NS)
    clock.advance(sandbox.config.add_grace_period + timedelta(days=1))

    deleted = await client.send(DomainDelete("gone.test"))
    after = await ask(sandbox, "gone.test.", dns.rdatatype.NS)

    assert deleted.code == ResultCode.COMPLETED_ACTION_PENDING, deleted.message
    # Still registered (restorable), but no longer in the zone (RFC 3915 section 3.1).
    assert sandbox.sql("SELECT rgp_status FROM domains WHERE name = 'gone.test'") == [
        ("redemptionPeriod",)]
    assert section_rrset(before.authority, "gone.test.", dns.rdatatype.NS) is not None
    assert after.rcode() == dns.rcode.NXDOMAIN


async def test_the_trust_anchor_validates_the_tld_dnskey_set(sandbox: Sandbox) -> None:
    assert sandbox.server.dns is not None
    anchors = sandbox.server.dns.trust_anchors()
    response = await ask(sandbox, "test.", dns.rdatatype.DNSKEY)
    keys = section_rrset(response.answer, "test.", dns.rdatatype.DNSKEY)
    rrsig = section_rrset(response.answer, "test.", dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY)
    assert keys is not None and rrsig is not None

    anchor = next(line for line in anchors if line.startswith("test. DS "))
    anchor_ds = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS,
                                    anchor.removeprefix("test. DS "))
    anchored = [key for key in keys if dns.dnssec.make_ds(TEST, key, "SHA256") == anchor_ds]
    anchored_set = dns.rrset.from_rdata_list(TEST, keys.ttl, anchored)

    assert sorted(line.split()[0] for line in anchors) == ["example.", "test."]
    assert len(anchored) == 1 and anchored[0].flags == KSK_FLAGS
    # The DNSKEY set is signed by the anchored key itself: the chain starts here.
    dns.dnssec.validate(keys, rrsig, {TEST: anchored_set})


async def test_the_tld_keys_are_kept_private_and_survive_a_restart(
        tmp_path: Path, clock: FakeClock) -> None:
    async with running_sandbox(tmp_path, clock, dns_listen=Listen(LOOPBACK, 0)) as first:
        assert first.server.dns is not None
        anchors = first.server.dns.trust_anchors()
    again = await SandboxServer.start(first.config, clock)
    try:
        assert again.dns is not None
        assert again.dns.trust_anchors() == anchors
    finally:
        await again.close()

    key_files = sorted((tmp_path / "sandbox-registry" / KEY_DIRECTORY).iterdir())
    assert [path.name for path in key_files] == [
        "example.ksk.der", "example.zsk.der", "test.ksk.der", "test.zsk.der"]
    assert {stat.S_IMODE(path.stat().st_mode) for path in key_files} == {0o600}
