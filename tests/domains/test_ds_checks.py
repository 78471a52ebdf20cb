"""A customer's DS records are checked against the DNSKEY RRset their zone serves before they
go to the registry: the zone is signed by regshield's signer and served by its DNS server on
loopback, which the settings name as the resolver."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dns.dnssec
import dns.name
import dns.rrset
import dns.zone
import httpx
import pytest
from dns_peers import zone_rrsets
from sqlalchemy import select

import regshield.flows.domains
from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from regshield.config import Listen
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone, ZoneTable
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, SigningKey, generate_key, sign_zone
from regshield.rules.ds import ds_text
from regshield.services import Services
from regshield.store.models import DomainOperation

LOOPBACK = "127.0.0.1"
ZONE = "example.test"
ZONE_TEXT = """\
@ 3600 SOA ns1.example.net. hostmaster 1 7200 900 1209600 300
@ 3600 NS ns1.example.net.
@ 3600 NS ns2.example.net.
www 3600 A 192.0.2.10
"""
SIGNED_FROM = datetime.now(UTC) - timedelta(hours=1)


@dataclass(frozen=True)
class CustomerZone:
    """The customer's zone as its own DNS serves it, with the keys it was signed with."""

    served: ServedZone
    keys: tuple[SigningKey, ...]

    @property
    def ksk_ds(self) -> str:
        ksk = next(key for key in self.keys if key.is_ksk)
        return ds_text(ZONE, ksk.dnskey.to_text())


def customer_zone(*, signed: bool = True) -> CustomerZone:
    zone = dns.zone.from_text(ZONE_TEXT, origin=f"{ZONE}.", relativize=False)
    if signed:
        keys = (generate_key(flags=KSK_FLAGS), generate_key(flags=ZSK_FLAGS))
        rrsets = sign_zone(zone, keys, SIGNED_FROM, SIGNED_FROM + timedelta(days=14))
        return CustomerZone(ServedZone(zone.origin, 1, tuple(rrsets)), keys)
    return CustomerZone(ServedZone(zone.origin, 1, tuple(zone_rrsets(zone))), ())


def use_resolver(services: Services, monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    dns_settings = replace(services.settings.dns, resolver=Listen(LOOPBACK, port))
    monkeypatch.setattr(services, "settings", replace(services.settings, dns=dns_settings))


@pytest.fixture
async def zone_server(services: Services,
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DnsServer]:
    """The customer's DNS server (empty until a test puts a zone), named as the resolver."""
    server = DnsServer(ZoneTable())
    await server.start(LOOPBACK, 0)
    use_resolver(services, monkeypatch, server.port)
    yield server
    await server.close()


@pytest.fixture
def silent_resolver(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A resolver that takes queries and never answers, with a short time limit."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, 0))
        port = int(silent.getsockname()[1])
        use_resolver(services, monkeypatch, port)
        monkeypatch.setattr(regshield.flows.domains, "DS_LOOKUP_TIMEOUT", 0.5)
        yield port


async def set_ds(api: httpx.AsyncClient, holder: Holder, ds: list[Any],
                 **extra: Any) -> httpx.Response:
    return await api.put(f"{DOMAINS}/{ZONE}/ds", headers=holder.otp(), json={"ds": ds, **extra})


def ds_at_registry(registry: Registry) -> list[dict[str, Any]]:
    [(rows,)] = registry.sql("SELECT ds_records FROM domains WHERE name = ?", ZONE)
    return list(json.loads(rows))


async def ds_operations(services: Services) -> list[DomainOperation]:
    async with services.store.read() as session:
        return list(await session.scalars(
            select(DomainOperation).where(DomainOperation.kind == "ds")))


def errors_of(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


def wrong_digest(ds: str) -> str:
    tag, algorithm, digest_type, digest = ds.split()
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    return f"{tag} {algorithm} {digest_type} {flipped}"


async def test_a_ds_matching_the_live_ksk_reaches_the_registry(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone = customer_zone()
    zone_server.table.put(zone.served)

    response = await set_ds(api, holder, [zone.ksk_ds])

    assert response.status_code == 200, response.text
    assert response.json()["operation"]["state"] == "confirmed"
    tag, algorithm, digest_type, digest = zone.ksk_ds.split()
    assert ds_at_registry(registry) == [{"key_tag": int(tag), "algorithm": int(algorithm),
                                         "digest_type": int(digest_type), "digest": digest}]
    [requested] = await events(services, "domains:ds:requested")
    assert "forced" not in requested.summary


async def test_a_ds_naming_no_live_key_is_refused_with_the_reason_and_nothing_is_sent(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone = customer_zone()
    zone_server.table.put(zone.served)
    tag = int(zone.ksk_ds.split()[0])
    unknown_tag = (tag + 1) % 65536
    wrong_key = f"{unknown_tag} 13 2 {'ab' * 32}"

    response = await set_ds(api, holder, [wrong_key, wrong_digest(zone.ksk_ds)])

    assert response.status_code == 422, response.text
    assert errors_of(response) == [("ds.0", "breaks_resolution"),
                                   ("ds.1", "breaks_resolution")]
    messages = [e["message"] for e in response.json()["errors"]]
    assert messages[0] == (f"no DNSKEY at {ZONE} has key tag {unknown_tag} and algorithm 13")
    assert messages[1] == (f"the digest does not match the DNSKEY at {ZONE} with key tag "
                           f"{tag} and algorithm 13")
    assert await ds_operations(services) == []
    assert ds_at_registry(registry) == []
    fetched = await api.get(f"{DOMAINS}/{ZONE}", headers=holder.headers)
    assert fetched.json()["ds"] == []


async def test_a_new_ds_beside_one_that_matches_is_accepted_for_a_rollover(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone = customer_zone()
    zone_server.table.put(zone.served)
    next_key = generate_key(flags=KSK_FLAGS)  # not yet published in the DNSKEY RRset
    pre_published = ds_text(ZONE, next_key.dnskey.to_text())

    response = await set_ds(api, holder, [zone.ksk_ds, pre_published])

    assert response.status_code == 200, response.text
    assert len(ds_at_registry(registry)) == 2


async def test_a_ds_for_an_unsigned_zone_is_refused(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone_server.table.put(customer_zone(signed=False).served)
    some_ds = customer_zone().ksk_ds

    response = await set_ds(api, holder, [some_ds])

    assert response.status_code == 422, response.text
    assert errors_of(response) == [("ds", "breaks_resolution")]
    assert response.json()["errors"][0]["message"] == (
        f"{ZONE} is not signed: it publishes no DNSKEY RRset; a DS would make validating "
        "resolvers reject it")
    assert await ds_operations(services) == []
    assert ds_at_registry(registry) == []


async def test_force_sends_a_refused_ds_and_the_event_says_so(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone = customer_zone()
    zone_server.table.put(zone.served)
    broken = wrong_digest(zone.ksk_ds)

    response = await set_ds(api, holder, [broken], force=True)

    assert response.status_code == 200, response.text
    assert [row["digest"] for row in ds_at_registry(registry)] == [broken.split()[3]]
    [requested] = await events(services, "domains:ds:requested")
    assert requested.summary["forced"] is True
    assert requested.summary["reasons"] == [
        f"ds.0: the digest does not match the DNSKEY at {ZONE} with key tag "
        f"{broken.split()[0]} and algorithm 13"]


async def test_an_unanswering_resolver_makes_the_ds_unverifiable_until_forced(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        silent_resolver: int) -> None:
    assert (await register(api, holder)).status_code == 201
    ds = customer_zone().ksk_ds
    started = time.monotonic()

    refused = await set_ds(api, holder, [ds])

    assert time.monotonic() - started < 3.0
    assert refused.status_code == 422, refused.text
    assert errors_of(refused) == [("ds", "unverifiable")]
    message = refused.json()["errors"][0]["message"]
    assert "timeout" in message and f"{LOOPBACK}:{silent_resolver}" in message
    assert "force" in message
    assert await ds_operations(services) == []

    forced = await set_ds(api, holder, [ds], force=True)

    assert forced.status_code == 200, forced.text
    assert len(ds_at_registry(registry)) == 1
    [requested] = await events(services, "domains:ds:requested")
    assert requested.summary["forced"] is True
    assert "timeout" in requested.summary["reasons"][0]


async def test_removing_every_ds_needs_no_lookup(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        silent_resolver: int) -> None:
    assert (await register(api, holder)).status_code == 201
    assert (await set_ds(api, holder, [customer_zone().ksk_ds], force=True)).status_code == 200
    assert len(ds_at_registry(registry)) == 1

    response = await set_ds(api, holder, [])

    assert response.status_code == 200, response.text
    assert ds_at_registry(registry) == []
    assert "forced" not in (await events(services, "domains:ds:requested"))[-1].summary


async def test_the_algorithm_policy_refuses_sha1_and_retired_algorithms_even_with_force(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone = customer_zone()
    zone_server.table.put(zone.served)
    ksk = next(key for key in zone.keys if key.is_ksk)
    sha1 = dns.dnssec.make_ds(dns.name.from_text(ZONE), ksk.dnskey, "SHA1", validating=True)
    rsasha1 = f"{int(zone.ksk_ds.split()[0])} 5 2 {'cd' * 32}"

    response = await set_ds(api, holder, [sha1.to_text(), rsasha1], force=True)

    assert response.status_code == 422, response.text
    assert errors_of(response) == [("ds.0.digest_type", "deprecated_digest"),
                                   ("ds.1.algorithm", "deprecated_algorithm")]
    assert await ds_operations(services) == []
    assert ds_at_registry(registry) == []


async def test_a_digest_type_that_cannot_be_computed_is_unverifiable(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        zone_server: DnsServer) -> None:
    assert (await register(api, holder)).status_code == 201
    zone = customer_zone()
    zone_server.table.put(zone.served)
    tag = zone.ksk_ds.split()[0]
    sm3 = f"{tag} 13 6 {'ef' * 32}"  # SM3 (RFC 9563): allowed, but not computed here

    refused = await set_ds(api, holder, [sm3])
    forced = await set_ds(api, holder, [sm3], force=True)

    assert refused.status_code == 422, refused.text
    assert errors_of(refused) == [("ds.0", "unverifiable")]
    assert "SHA-256" in refused.json()["errors"][0]["message"]
    assert forced.status_code == 200, forced.text
    assert [row["digest_type"] for row in ds_at_registry(registry)] == [6]
