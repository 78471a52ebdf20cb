"""Another DNS provider on loopback, for proof of control: it serves a parent zone that
delegates a customer's zone to itself, and that zone with whatever TXT records the test puts
there. `verify_through_dns` runs the real `POST /zones/{name}/verify` against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

import dns.name
import dns.rrset
import httpx

from regshield.config import Listen
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone, ZoneTable
from regshield.registry.links import Registries
from regshield.services import Services

LOOPBACK = "127.0.0.1"


def _zone(origin: str, records: Sequence[tuple[str, str, str]]) -> ServedZone:
    name = dns.name.from_text(origin)
    rrsets = [dns.rrset.from_text(origin, 3600, "IN", "SOA",
                                  f"ns.{origin} hostmaster.{origin} 1 3600 600 86400 300")]
    grouped: dict[tuple[str, str], list[str]] = {}
    for owner, rtype, value in records:
        grouped.setdefault((owner, rtype), []).append(value)
    rrsets += [dns.rrset.from_text_list(owner, 300, "IN", rtype, values)
               for (owner, rtype), values in grouped.items()]
    return ServedZone(name, 1, tuple(rrsets))


@asynccontextmanager
async def other_provider(services: Services, zone: str, txt: Sequence[str] = ()
                         ) -> AsyncIterator[DnsServer]:
    """Serve `zone` (absolute) from a server on loopback, delegated to it from its parent
    zone on the same server, with `txt` at `_regshield-challenge.<zone>`; regshield asks it
    (as resolver and as the authoritative servers) while the context is open."""
    parent = zone.split(".", 1)[1]
    host = f"ns.{zone}"
    table = ZoneTable([
        _zone(parent, [(parent, "NS", f"ns.{parent}"), (f"ns.{parent}", "A", LOOPBACK),
                       (zone, "NS", host), (host, "A", LOOPBACK)]),
        _zone(zone, [(zone, "NS", host), (host, "A", LOOPBACK),
                     *((f"_regshield-challenge.{zone}", "TXT", f'"{text}"') for text in txt)]),
    ])
    server = DnsServer(table)
    await server.start(LOOPBACK, 0)
    before, links = services.settings, services.registries
    services.settings = replace(before, dns=replace(
        before.dns, resolver=Listen(LOOPBACK, server.port), authoritative_port=server.port))
    if parent.rstrip(".") in links.tlds:  # the parent is found through the resolver: this one
        services.registries = Registries([replace(link, parent_servers=())
                                          for link in links.links.values()])
    try:
        yield server
    finally:
        services.settings, services.registries = before, links
        await server.close()


async def verify_through_dns(api: httpx.AsyncClient, services: Services,
                             headers: dict[str, str], zone: str) -> httpx.Response:
    """Publish the zone's challenge at another provider, then ask regshield to verify it."""
    name = zone.rstrip(".")
    shown = (await api.get(f"/api/v1/zones/{name}", headers=headers)).json()
    challenge = shown["challenge"]
    assert challenge is not None, shown
    async with other_provider(services, f"{name}.", [challenge["value"]]):
        return await api.post(f"/api/v1/zones/{name}/verify", headers=headers)
