"""Hosted zones through the API: create, edit RRsets with every error at once, import and
export, secondaries, and who may do what."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import httpx
import pytest
from conftest import Identity, World
from dns_peers import LOOPBACK, build_signed_zone
from dns_provider import other_provider, verify_through_dns
from domains.conftest import Holder, stepped_up_owner
from domains.test_hosted_zone_control import publish_all
from sqlalchemy import func, select

from regshield.api.app import create_app
from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ZoneTable
from regshield.dns.zonefile import MAX_GENERATE_RECORDS
from regshield.services import Services
from regshield.store.models import Event, OutboxItem, Secondary, TsigKey, Zone, ZoneKey, ZoneRRset

ZONES = "/api/v1/zones"
ZONE = "hosted.example"


@pytest.fixture
async def account(world: World) -> str:
    return await world.account("Zone Customer")


@pytest.fixture
async def owner(world: World, api: httpx.AsyncClient, clock: FakeClock, account: str
                ) -> Holder:
    """The account's owner, with a second factor and a token that may step up."""
    return await stepped_up_owner(world, api, clock, account)


async def create_zone(api: httpx.AsyncClient, who: Identity | Holder, name: str = ZONE,
                      **body: Any) -> dict[str, Any]:
    response = await api.post(ZONES, json={"name": name, **body}, headers=who.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def put(api: httpx.AsyncClient, who: Identity | Holder, owner: str, rtype: str, ttl: Any,
              records: Any, zone: str = ZONE) -> httpx.Response:
    return await api.put(f"{ZONES}/{zone}/rrsets/{owner}/{rtype}",
                         json={"ttl": ttl, "records": records}, headers=who.headers)


def fields(response: httpx.Response) -> set[str]:
    return {error["field"] for error in response.json()["errors"]}


@contextlib.asynccontextmanager
async def api_allowing(settings: Settings, clock: FakeClock, networks: str
                       ) -> AsyncIterator[httpx.AsyncClient]:
    """The API of the same installation, its configuration allowing `networks` as secondaries
    (`REGSHIELD_DNS_ALLOWED_SECONDARY_NETWORKS`)."""
    configured = Services.open(Settings.load(
        home=settings.home, database_url=settings.database_url,
        environ={"REGSHIELD_DNS_ALLOWED_SECONDARY_NETWORKS": networks}), clock)
    transport = httpx.ASGITransport(app=create_app(configured), client=("192.0.2.10", 40000))
    try:
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://regshield.test") as client:
            yield client
    finally:
        await configured.close()


async def count(services: Services, model: Any) -> int:
    async with services.store.read() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_new_zone_is_signed_with_a_ksk_and_a_zsk_and_shows_the_ds_to_publish(
        api: httpx.AsyncClient, owner: Identity, services: Services) -> None:
    zone = await create_zone(api, owner)
    assert zone["name"] == "hosted.example."
    assert zone["dnssec"] is True and zone["denial"] == "nsec"
    assert sorted(key["role"] for key in zone["keys"]) == ["ksk", "zsk"]
    assert all(key["algorithm"] == 13 and key["state"] == "active" for key in zone["keys"])
    ksk = next(key for key in zone["keys"] if key["role"] == "ksk")
    assert zone["ds"] == ksk["ds"] and zone["ds"][0].startswith(f"{ksk['key_tag']} 13 2 ")
    read = (await api.get(f"{ZONES}/{ZONE}", headers=owner.headers)).json()
    assert read["serial"] == zone["serial"]
    async with services.store.read() as session:
        keys = (await session.execute(select(ZoneKey))).scalars().all()
        # The private keys are sealed: no PKCS#8 header in the stored bytes.
        assert all(key.private_sealed and b"\x30\x81" not in key.private_sealed[:4]
                   for key in keys)
        published = (await session.execute(select(OutboxItem).where(
            OutboxItem.kind == "dns:publish"))).scalars().all()
    assert [item.payload for item in published] == [{"zone": "hosted.example."}]
    # A name this registrar does not sponsor waits for proof of control.
    assert zone["state"] == "unverified" and zone["challenge"]["owner"] == \
        "_regshield-challenge.hosted.example." and zone["challenge"]["type"] == "TXT"
    assert read["challenge"] == zone["challenge"]
    # The token is a keyed hash: nothing the database holds makes it.
    async with services.store.read() as session:
        stored = (await session.execute(select(Zone))).scalar_one()
    assert zone["challenge"]["value"] not in str(vars(stored))


async def test_an_rrset_put_is_stored_canonically_and_advances_the_serial(
        api: httpx.AsyncClient, owner: Identity, clock: FakeClock) -> None:
    zone = await create_zone(api, owner, serial_scheme="increment")
    response = await put(api, owner, "www", "A", 300, ["192.0.2.10", "192.0.2.11"])
    assert response.status_code == 200, response.text
    change = response.json()
    assert change["serial"] == zone["serial"] + 1 and change["changed"] is True
    assert change["rrset"] == {"owner": "www.hosted.example.", "type": "A", "ttl": 300,
                               "records": ["192.0.2.10", "192.0.2.11"]}
    again = (await put(api, owner, "www", "A", 300, ["192.0.2.10", "192.0.2.11"])).json()
    assert again["changed"] is False and again["serial"] == change["serial"]
    mx = await put(api, owner, "@", "MX", 3600, ["10 mail"])
    assert mx.json()["rrset"]["records"] == ["10 mail.hosted.example."]
    listed = (await api.get(f"{ZONES}/{ZONE}/rrsets", headers=owner.headers)).json()
    assert {(r["owner"], r["type"]) for r in listed} == {
        ("hosted.example.", "NS"), ("hosted.example.", "MX"), ("www.hosted.example.", "A")}


async def test_a_bad_rrset_names_every_field_and_writes_nothing(
        api: httpx.AsyncClient, owner: Identity, services: Services) -> None:
    await create_zone(api, owner)
    before = await count(services, Event)
    response = await put(api, owner, "www", "A", 5, ["192.0.2.300", "not an address"])
    assert response.status_code == 422
    assert {"ttl", "records.0", "records.1"} <= fields(response)
    assert await count(services, Event) == before
    assert await count(services, ZoneRRset) == 1  # the apex NS only


async def test_a_cname_beside_other_data_is_refused_with_the_rule(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    assert (await put(api, owner, "www", "A", 300, ["192.0.2.1"])).status_code == 200
    response = await put(api, owner, "www", "CNAME", 300, ["elsewhere.example."])
    assert response.status_code == 422
    assert [e["code"] for e in response.json()["errors"]] == ["cname_and_other_data"]


async def test_the_apex_ns_cannot_be_deleted_but_another_rrset_can(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    refused = await api.delete(f"{ZONES}/{ZONE}/rrsets/@/NS", headers=owner.headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "apex_ns_missing"
    await put(api, owner, "www", "AAAA", 300, ["2001:db8::1"])
    deleted = await api.delete(f"{ZONES}/{ZONE}/rrsets/www/AAAA", headers=owner.headers)
    assert deleted.status_code == 200 and deleted.json()["rrset"] is None
    missing = await api.delete(f"{ZONES}/{ZONE}/rrsets/www/AAAA", headers=owner.headers)
    assert missing.status_code == 404


async def test_signer_records_cannot_be_edited(api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    response = await put(api, owner, "@", "DNSKEY", 300, ["257 3 13 AAAA"])
    assert response.status_code == 422 and "type" in fields(response)


async def test_export_then_import_round_trips_and_the_import_keeps_counting_up(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    await put(api, owner, "@", "TXT", 600, ['"v=spf1 -all"'])
    exported = await api.get(f"{ZONES}/{ZONE}/export", headers=owner.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/dns")
    text = exported.text
    assert "www.hosted.example. 300 IN A 192.0.2.10" in text
    moved = text.replace("192.0.2.10", "192.0.2.20") + "old 300 IN RRSIG A 13 3 300 " \
        "20270101000000 20261201000000 1 hosted.example. AAAA\n"
    serial_line = next(line for line in text.splitlines() if " SOA " in line)
    serial = int(serial_line.split()[6])
    moved = moved.replace(f" {serial} ", f" {serial + 10**6} ", 1)
    response = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": moved},
                              headers=owner.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rrsets"] == 3 and report["dropped_signer_records"] == 1
    assert report["serial"] == serial + 10**6 + 1  # greater than the file's, for secondaries
    listed = (await api.get(f"{ZONES}/{ZONE}/rrsets", headers=owner.headers)).json()
    assert {"owner": "www.hosted.example.", "type": "A", "ttl": 300,
            "records": ["192.0.2.20"]} in listed


async def test_an_import_with_mistakes_reports_them_all_and_keeps_the_zone(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    bad = ("$ORIGIN hosted.example.\n@ 3600 IN NS ns1.example.net.\n"
           "a 300 IN CNAME b\na 300 IN TXT \"x\"\nsub 300 IN NS ns.sub\nlow.sub 300 IN TXT x\n")
    response = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": bad},
                              headers=owner.headers)
    assert response.status_code == 422
    codes = {e["code"] for e in response.json()["errors"]}
    assert codes == {"cname_and_other_data", "below_delegation"}
    syntax = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": "@ IN A\n"},
                            headers=owner.headers)
    assert syntax.status_code == 422 and fields(syntax) == {"file"}
    listed = (await api.get(f"{ZONES}/{ZONE}/rrsets", headers=owner.headers)).json()
    assert any(r["owner"] == "www.hosted.example." for r in listed)


async def test_generate_bomb_is_refused_with_the_line(
        api: httpx.AsyncClient, owner: Identity, services: Services) -> None:
    await create_zone(api, owner)
    events, rows = await count(services, Event), await count(services, ZoneRRset)
    bomb = ("$ORIGIN hosted.example.\n$TTL 300\n@ NS ns1.example.net.\n"
            "$GENERATE 1-10000000 host$ A 192.0.2.1\n")
    started = time.monotonic()
    response = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": bomb},
                              headers=owner.headers)
    # Refused before a record is made: ten million would take the better part of an hour.
    assert time.monotonic() - started < 5
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("file", "too_many_records")
    assert error["message"].startswith("line 4: ")
    assert f"at most {MAX_GENERATE_RECORDS}" in error["message"]
    # The limit is for the file: two lines under it each, over it together.
    half = MAX_GENERATE_RECORDS // 2 + 1
    twice = ("$ORIGIN hosted.example.\n$TTL 300\n@ NS ns1.example.net.\n"
             f"$GENERATE 1-{half} outside$.example.org. A 192.0.2.1\n"
             f"$GENERATE 1-{half} host$ A 192.0.2.1\n")
    response = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": twice},
                              headers=owner.headers)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["code"] == "too_many_records" and error["message"].startswith("line 5: ")
    assert await count(services, Event) == events
    assert await count(services, ZoneRRset) == rows


async def test_zone_import_does_not_stall_dns(
        api: httpx.AsyncClient, owner: Identity) -> None:
    """While a large file is read and checked, the embedded DNS server (on the same event
    loop, as in `regshield serve`) keeps answering: no answer waits for a sizeable part of
    the import, however slow the machine is."""
    await create_zone(api, owner)
    served = build_signed_zone()
    server = DnsServer(ZoneTable([served.served]))
    await server.start(LOOPBACK, 0)
    large = "$ORIGIN hosted.example.\n$TTL 300\n@ NS ns1.example.net.\n" + "".join(
        f"host{index} A 192.0.2.{index % 250 + 1}\n" for index in range(10_000))
    query = dns.message.make_query("www.regshield.test.", "A")
    gaps: list[float] = []  # between one answer and the next, a pause of 10 ms included
    try:
        started = last = time.monotonic()
        importing = asyncio.create_task(api.post(
            f"{ZONES}/{ZONE}/import", json={"zone_file": large},
            headers=owner.otp()))  # the file's apex NS is new: a step-up
        while not importing.done():
            await asyncio.sleep(0.01)
            answer = await dns.asyncquery.udp(query, LOOPBACK, port=server.port, timeout=60)
            assert answer.rcode() == dns.rcode.NOERROR
            gaps.append(time.monotonic() - last)
            last = time.monotonic()
        response = await importing
        duration = time.monotonic() - started
    finally:
        await server.close()
    assert response.status_code == 200, response.text
    assert response.json()["rrsets"] == 10_001
    assert len(gaps) >= 5 and max(gaps) < duration / 4, (max(gaps), duration, len(gaps))


async def test_another_account_cannot_see_or_edit_the_zone(
        api: httpx.AsyncClient, owner: Holder, world: World, services: Services) -> None:
    await create_zone(api, owner)
    verified = await verify_through_dns(api, services, owner.headers, ZONE)
    assert verified.status_code == 200, verified.text
    stranger = await world.user("owner", await world.account("Stranger"))
    assert (await api.get(f"{ZONES}/{ZONE}", headers=stranger.headers)).status_code == 404
    response = await put(api, stranger, "www", "A", 300, ["192.0.2.1"])
    assert response.status_code == 404
    assert (await api.get(ZONES, headers=stranger.headers)).json() == []
    taken = await api.post(ZONES, json={"name": ZONE}, headers=stranger.headers)
    assert taken.status_code == 409
    below = await api.post(ZONES, json={"name": f"sub.{ZONE}"}, headers=stranger.headers)
    assert below.status_code == 409


async def test_staff_add_a_secondary_and_the_tsig_secret_is_shown_once_and_sealed(
        owner: Identity, world: World, services: Services, settings: Settings,
        clock: FakeClock) -> None:
    # The documentation network stands for one an administrator allowed.
    async with api_allowing(settings, clock, "192.0.2.0/24") as api:
        await staff_add_a_secondary(api, owner, world, services)


async def staff_add_a_secondary(api: httpx.AsyncClient, owner: Identity, world: World,
                                services: Services) -> None:
    await create_zone(api, owner)
    refused = await api.post(f"{ZONES}/{ZONE}/secondaries", json={"address": "192.0.2.53"},
                             headers=owner.headers)
    assert refused.status_code == 403
    operator = await world.user("operator")
    added = await api.post(f"{ZONES}/{ZONE}/secondaries",
                           json={"address": "192.0.2.53", "port": 5300, "tsig_key": "xfr-1"},
                           headers=operator.headers)
    assert added.status_code == 201, added.text
    body = added.json()
    secret = body["tsig_secret"]
    assert body["tsig_key"] == "xfr-1." and len(secret) == 44
    async with services.store.read() as session:
        key = (await session.execute(select(TsigKey))).scalar_one()
        assert secret.encode() not in key.secret_sealed
    again = await api.post(f"{ZONES}/{ZONE}/secondaries",
                           json={"address": "192.0.2.54", "tsig_key": "xfr-1."},
                           headers=operator.headers)
    assert again.status_code == 201 and again.json()["tsig_secret"] is None
    twice = await api.post(f"{ZONES}/{ZONE}/secondaries",
                           json={"address": "192.0.2.53", "port": 5300},
                           headers=operator.headers)
    assert twice.status_code == 409
    bad = await api.post(f"{ZONES}/{ZONE}/secondaries", json={"address": "nowhere", "port": 0},
                         headers=operator.headers)
    assert bad.status_code == 422 and fields(bad) == {"address", "port"}
    zone = (await api.get(f"{ZONES}/{ZONE}", headers=owner.headers)).json()
    assert [(s["address"], s["port"], s["lag"]) for s in zone["secondaries"]] == [
        ("192.0.2.53", 5300, None), ("192.0.2.54", 53, None)]


NOT_PUBLIC = ["10.1.2.3", "172.16.0.53", "192.168.1.53", "fd00::53", "127.0.0.1", "::1",
              "169.254.1.53", "fe80::53", "100.64.0.53", "192.0.2.53", "2001:db8::53",
              "240.0.0.53", "255.255.255.255", "::ffff:10.1.2.3", "2002:a01:203::53",
              "fec0::53"]
NEVER = ["0.0.0.0", "::", "224.0.0.251", "ff02::fb"]  # noqa: S104 - addresses, not bound


async def test_secondary_on_a_private_address_is_refused(
        api: httpx.AsyncClient, owner: Identity, world: World, services: Services) -> None:
    await create_zone(api, owner)
    operator = await world.user("operator")
    events = await count(services, Event)
    for address in NOT_PUBLIC + NEVER:
        response = await api.post(f"{ZONES}/{ZONE}/secondaries",
                                  json={"address": address, "port": 0},
                                  headers=operator.headers)
        assert response.status_code == 422, address
        # Every reason at once: the address and the port.
        errors = {e["field"]: e for e in response.json()["errors"]}
        assert set(errors) == {"address", "port"}, address
        assert errors["address"]["code"] == "not_public", address
    assert await count(services, Secondary) == 0
    assert await count(services, Event) == events
    public = await api.post(f"{ZONES}/{ZONE}/secondaries", json={"address": "198.41.0.4"},
                            headers=operator.headers)
    assert public.status_code == 201, public.text


async def test_secondary_on_loopback_is_allowed_only_when_the_network_is_configured(
        api: httpx.AsyncClient, owner: Identity, world: World, services: Services,
        settings: Settings, clock: FakeClock) -> None:
    await create_zone(api, owner)
    operator = await world.user("operator")
    secondary = {"address": "127.0.0.1", "port": 5300}
    refused = await api.post(f"{ZONES}/{ZONE}/secondaries", json=secondary,
                             headers=operator.headers)
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert (error["field"], error["code"]) == ("address", "not_public")
    assert "loopback" in error["message"]
    assert "allowed_secondary_networks" in error["message"]
    async with api_allowing(settings, clock, "10.0.0.0/8,fd00::/8") as other_networks:
        elsewhere = await other_networks.post(f"{ZONES}/{ZONE}/secondaries", json=secondary,
                                              headers=operator.headers)
        assert elsewhere.status_code == 422
        private = await other_networks.post(f"{ZONES}/{ZONE}/secondaries",
                                            json={"address": "10.9.8.7"},
                                            headers=operator.headers)
        assert private.status_code == 201, private.text
    async with api_allowing(settings, clock, "127.0.0.0/8,224.0.0.0/4") as loopback:
        # A multicast address stays refused whatever the setting says.
        never = await loopback.post(f"{ZONES}/{ZONE}/secondaries",
                                    json={"address": "224.0.0.251"}, headers=operator.headers)
        assert never.status_code == 422
        added = await loopback.post(f"{ZONES}/{ZONE}/secondaries", json=secondary,
                                    headers=operator.headers)
        assert added.status_code == 201, added.text
    assert await count(services, Secondary) == 2


async def test_a_bad_zone_request_names_every_field(api: httpx.AsyncClient,
                                                    owner: Identity) -> None:
    response = await api.post(ZONES, json={"name": "-bad-.example", "dnssec": False,
                                           "denial": "nsec5", "policy": "fastest",
                                           "serial_scheme": "never"},
                              headers=owner.headers)
    assert response.status_code == 422
    assert fields(response) == {"name", "denial", "policy", "serial_scheme"}


async def test_a_zone_request_of_wrong_json_types_names_each_field(
        api: httpx.AsyncClient, owner: Identity) -> None:
    response = await api.post(ZONES, json={"name": ["a.example"], "dnssec": "yes",
                                           "denial": 3, "policy": {}},
                              headers=owner.headers)
    assert response.status_code == 422
    assert fields(response) == {"name", "dnssec", "denial", "policy"}


async def test_a_deleted_zone_is_gone_and_its_name_can_be_hosted_again(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    refused = await api.delete(f"{ZONES}/{ZONE}", headers=owner.headers)
    assert refused.status_code == 403 and refused.json()["type"].endswith("step-up-required")
    assert (await api.delete(f"{ZONES}/{ZONE}", headers=owner.otp())).status_code == 204
    assert (await api.get(f"{ZONES}/{ZONE}", headers=owner.headers)).status_code == 404
    await create_zone(api, owner, dnssec=False)


async def test_sibling_glue_is_kept_only_while_an_ns_rrset_names_it(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    assert (await put(api, owner, "a", "NS", 3600, ["ns.b.hosted.example."])).status_code == 200
    assert (await put(api, owner, "b", "NS", 3600, ["ns1.example.net."])).status_code == 200
    # ns.b lies below the delegation b, and a's NS names it: sibling glue (RFC 9471).
    glue = await put(api, owner, "ns.b", "A", 3600, ["192.0.2.53"])
    assert glue.status_code == 200, glue.text
    assert (await put(api, owner, "b", "NS", 3600, ["ns2.example.net."])).status_code == 200
    occluded = await put(api, owner, "x.b", "TXT", 3600, ['"hidden"'])
    assert [e["code"] for e in occluded.json()["errors"]] == ["below_delegation"]
    # Without a's NS, nothing names ns.b: it would be data below a delegation.
    orphaning = await api.delete(f"{ZONES}/{ZONE}/rrsets/a/NS", headers=owner.headers)
    assert orphaning.status_code == 422
    assert [e["code"] for e in orphaning.json()["errors"]] == ["below_delegation"]
    renaming = await put(api, owner, "a", "NS", 3600, ["ns1.example.net."])
    assert [e["code"] for e in renaming.json()["errors"]] == ["below_delegation"]


async def test_a_deletion_naming_a_bad_owner_or_type_says_which(
        api: httpx.AsyncClient, owner: Identity) -> None:
    await create_zone(api, owner)
    response = await api.delete(f"{ZONES}/{ZONE}/rrsets/bad..name/NOPE", headers=owner.headers)
    assert response.status_code == 422
    assert fields(response) == {"owner", "type"}
    signer = await api.delete(f"{ZONES}/{ZONE}/rrsets/@/RRSIG", headers=owner.headers)
    assert [e["code"] for e in signer.json()["errors"]] == ["signer_owned"]


# --- who controls a zone, and its sensitive changes ------------------------------------------


async def ask(server: DnsServer, name: str, rdtype: int) -> dns.message.Message:
    query = dns.message.make_query(dns.name.from_text(name), rdtype)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=2)


async def dns_events(services: Services) -> int:
    async with services.store.read() as session:
        return int((await session.execute(select(func.count()).select_from(Event).where(
            Event.tag.startswith("dns:")))).scalar_one())


async def notices_of(services: Services, change: str) -> list[dict[str, Any]]:
    async with services.store.read() as session:
        items = (await session.execute(select(OutboxItem).where(
            OutboxItem.kind == "notify:email").order_by(OutboxItem.id))).scalars().all()
    return [item.payload for item in items if item.payload.get("change") == change]


async def test_unverified_zone_is_not_served(
        api: httpx.AsyncClient, owner: Holder, services: Services,
        served: tuple[Publisher, DnsServer]) -> None:
    publisher, server = served
    await create_zone(api, owner)
    assert (await put(api, owner, "www", "A", 300, ["192.0.2.10"])).status_code == 200
    await publish_all(services, publisher)
    answer = await ask(server, f"www.{ZONE}.", dns.rdatatype.A)
    assert answer.rcode() == dns.rcode.REFUSED and not answer.answer

    # The challenge must be served by the zone's own servers: a wrong value proves nothing.
    async with other_provider(services, f"{ZONE}.", ["regshield-not-the-token"]):
        wrong = await api.post(f"{ZONES}/{ZONE}/verify", headers=owner.headers)
    assert wrong.status_code == 422 and fields(wrong) == {"challenge"}
    await publish_all(services, publisher)
    assert (await ask(server, f"www.{ZONE}.", dns.rdatatype.A)).rcode() == dns.rcode.REFUSED

    verified = await verify_through_dns(api, services, owner.headers, ZONE)
    assert verified.status_code == 200, verified.text
    assert verified.json()["state"] == "active" and verified.json()["challenge"] is None
    await publish_all(services, publisher)
    answer = await ask(server, f"www.{ZONE}.", dns.rdatatype.A)
    assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA
    assert [rrset.to_text() for rrset in answer.answer] == [f"www.{ZONE}. 300 IN A 192.0.2.10"]


async def test_customer_cannot_host_the_registrars_nameserver_zone(
        api: httpx.AsyncClient, owner: Holder, world: World, account: str) -> None:
    # The default nameservers are ns1 and ns2.regshield.test.
    for name in ("regshield.test", "ns1.regshield.test", "deep.ns2.regshield.test"):
        refused = await api.post(ZONES, json={"name": name}, headers=owner.otp())
        assert refused.status_code == 403, (name, refused.text)
    operator = await world.user("operator")
    staff = await api.post(ZONES, json={"name": "regshield.test", "account": account},
                           headers=operator.headers)
    assert staff.status_code == 201, staff.text


async def test_import_replacing_most_rrsets_needs_force_and_step_up(
        api: httpx.AsyncClient, owner: Holder, services: Services) -> None:
    await create_zone(api, owner)
    head = (f"$ORIGIN {ZONE}.\n@ 3600 IN NS ns1.regshield.test.\n"
            "@ 3600 IN NS ns2.regshield.test.\n")
    first = head + "".join(f"host{i} 300 IN A 192.0.2.{i + 1}\n" for i in range(12))
    imported = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": first},
                              headers=owner.headers)
    assert imported.status_code == 200, imported.text
    # A few changes go through as usual.
    small = first.replace("192.0.2.1\n", "192.0.2.101\n")
    assert (await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": small},
                           headers=owner.headers)).status_code == 200
    before = await dns_events(services)
    replacing = head + "".join(f"other{i} 300 IN A 198.51.100.{i + 1}\n" for i in range(12))
    refused = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": replacing},
                             headers=owner.headers)
    assert refused.status_code == 422
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [
        ("force", "too_many_changes")]
    forced = await api.post(f"{ZONES}/{ZONE}/import",
                            json={"zone_file": replacing, "force": True}, headers=owner.headers)
    assert forced.status_code == 403 and forced.json()["type"].endswith("step-up-required")
    assert await dns_events(services) == before  # nothing written
    stepped = await api.post(f"{ZONES}/{ZONE}/import",
                             json={"zone_file": replacing, "force": True}, headers=owner.otp())
    assert stepped.status_code == 200, stepped.text
    listed = (await api.get(f"{ZONES}/{ZONE}/rrsets", headers=owner.headers)).json()
    owners = {r["owner"] for r in listed}
    assert f"other0.{ZONE}." in owners and f"host0.{ZONE}." not in owners


async def test_apex_ns_change_needs_step_up_and_sends_a_notice(
        api: httpx.AsyncClient, owner: Holder, services: Services, world: World,
        account: str) -> None:
    await create_zone(api, owner)
    member = await world.user("member", account)
    elsewhere = ["ns1.attacker.example.", "ns2.attacker.example."]
    for who in (member.headers, owner.headers):
        refused = await api.put(f"{ZONES}/{ZONE}/rrsets/@/NS", headers=who,
                                json={"ttl": 3600, "records": elsewhere})
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("step-up-required")
    file = f"$ORIGIN {ZONE}.\n@ 3600 IN NS ns1.attacker.example.\n"
    imported = await api.post(f"{ZONES}/{ZONE}/import", json={"zone_file": file},
                              headers=owner.headers)
    assert imported.status_code == 403
    assert await notices_of(services, "zone_apex") == []
    changed = await api.put(f"{ZONES}/{ZONE}/rrsets/@/NS", headers=owner.otp(),
                            json={"ttl": 3600, "records": elsewhere})
    assert changed.status_code == 200, changed.text
    # Other apex data needs no step-up, but the owners hear of every apex change.
    assert (await put(api, member, "@", "MX", 3600, ["10 mail.attacker.example."])
            ).status_code == 200
    sent = await notices_of(services, "zone_apex")
    assert [(n["details"]["action"], n["details"]["types"]) for n in sent] == [
        ("changed", ["NS"]), ("changed", ["MX"])]
    assert all(n["recipients"] == [{"account_owners": account}] for n in sent)
