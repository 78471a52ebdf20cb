"""A hosted zone whose keys live in a PKCS#11 token (SoftHSM): made there, never stored here,
and the zone it signs validates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import dns.asyncquery
import dns.dnssec
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import httpx
import pytest
from conftest import Identity, SoftHsm, World
from dns_provider import verify_through_dns
from sqlalchemy import select

from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.services import Services
from regshield.store.models import ZoneKey

ORIGIN = dns.name.from_text("held.example.")
WWW = dns.name.from_text("www.held.example.")


@pytest.fixture
async def held_keys(services: Services, softhsm: SoftHsm) -> AsyncIterator[Services]:
    """The installation configured to make zone keys in the SoftHSM token."""
    services.settings = replace(services.settings, dns=replace(
        services.settings.dns, hsm_token=softhsm.label, hsm_pin=softhsm.pin))
    yield services
    await services.close()


async def test_zone_keys_made_in_the_token_sign_a_zone_that_validates(
        api: httpx.AsyncClient, world: World, held_keys: Services) -> None:
    owner: Identity = await world.user("owner", await world.account("Token Customer"))
    created = await api.post("/api/v1/zones", json={"name": "held.example"},
                             headers=owner.headers)
    assert created.status_code == 201, created.text
    verified = await verify_through_dns(api, held_keys, owner.headers, "held.example")
    assert verified.status_code == 200, verified.text
    put = await api.put("/api/v1/zones/held.example/rrsets/www/A", headers=owner.headers,
                        json={"ttl": 300, "records": ["192.0.2.44"]})
    assert put.status_code == 200, put.text
    async with held_keys.store.read() as session:
        keys = (await session.execute(select(ZoneKey))).scalars().all()
    assert len(keys) == 2
    assert all(key.hsm_label and key.private_sealed is None and key.data_key_id is None
               for key in keys)

    publisher = Publisher(held_keys)
    server = DnsServer(publisher.table)
    await server.start("127.0.0.1", 0)
    try:
        await publisher.publish("held.example.")
        query = dns.message.make_query(WWW, dns.rdatatype.A, want_dnssec=True)
        answer = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=2)
        keyset = await dns.asyncquery.udp(
            dns.message.make_query(ORIGIN, dns.rdatatype.DNSKEY, want_dnssec=True),
            "127.0.0.1", port=server.port, timeout=2)
    finally:
        await server.close()
        await publisher.close()
    dnskeys = keyset.find_rrset(keyset.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    assert {dns.dnssec.key_id(key) for key in dnskeys} == {key.key_tag for key in keys}
    rrset = answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.A)
    rrsigs = answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                               dns.rdatatype.A)
    dns.dnssec.validate(rrset, rrsigs, {ORIGIN: dnskeys})
    keyset_rrsigs = keyset.find_rrset(keyset.answer, ORIGIN, dns.rdataclass.IN,
                                      dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY)
    dns.dnssec.validate(dnskeys, keyset_rrsigs, {ORIGIN: dnskeys})
