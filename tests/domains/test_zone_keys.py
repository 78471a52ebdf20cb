"""A hosted zone's DNSSEC keys: manual and emergency rollovers through the API, one at a time,
and the DS of a zone's KSK sent to the registry for a domain this registrar sponsors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from domains.conftest import NS, Holder, Registry
from regshield.flows.operations import execute_all
from regshield.flows.zone_keys import keys_sweep
from regshield.services import Services
from regshield.store.models import Event

ZONES = "/api/v1/zones"


async def hosted(api: httpx.AsyncClient, holder: Holder, name: str) -> dict[str, Any]:
    # A zone for a domain sponsored here needs a step-up (its DS follows the zone's keys).
    response = await api.post(ZONES, json={"name": name}, headers=holder.otp())
    assert response.status_code == 201, response.text
    holder.clock.advance(timedelta(minutes=10))  # that one-time code is stale for what follows
    body: dict[str, Any] = response.json()
    return body


async def tags(services: Services, prefix: str) -> list[str]:
    async with services.store.read() as session:
        return list((await session.execute(select(Event.tag).where(
            Event.tag.startswith(prefix)).order_by(Event.seq))).scalars())


async def test_a_new_zone_records_each_key_step_as_an_event(
        api: httpx.AsyncClient, holder: Holder, services: Services) -> None:
    zone = await hosted(api, holder, "keys.example")
    assert {key["state"] for key in zone["keys"]} == {"active"}
    recorded = await tags(services, "dnssec:key:")
    assert recorded.count("dnssec:key:created") == 2
    assert "dnssec:key:published" in recorded and "dnssec:key:active" in recorded


async def test_a_rollover_needs_a_step_up_and_only_one_runs_at_a_time(
        api: httpx.AsyncClient, holder: Holder) -> None:
    await hosted(api, holder, "keys.example")
    url = f"{ZONES}/keys.example/rollover"
    refused = await api.post(url, json={"role": "zsk"}, headers=holder.headers)
    assert refused.status_code == 403
    started = await api.post(url, json={"role": "zsk"}, headers=holder.otp())
    assert started.status_code == 200, started.text
    assert len(started.json()["generated"]) == 1
    zone = (await api.get(f"{ZONES}/keys.example", headers=holder.headers)).json()
    new = next(key for key in zone["keys"] if key["id"] == started.json()["generated"][0])
    assert new["role"] == "zsk" and new["state"] in ("created", "published")
    second = await api.post(url, json={"role": "ksk"}, headers=holder.otp())
    assert second.status_code == 409
    assert "rollover" in second.json()["detail"]
    wrong = await api.post(url, json={"role": "gsk"}, headers=holder.otp())
    assert wrong.status_code in (409, 422)


async def test_a_compromised_key_is_replaced_at_once(
        api: httpx.AsyncClient, holder: Holder, services: Services) -> None:
    zone = await hosted(api, holder, "keys.example")
    zsk = next(key for key in zone["keys"] if key["role"] == "zsk")
    url = f"{ZONES}/keys.example/keys/{zsk['id']}/compromised"
    assert (await api.post(url, headers=holder.headers)).status_code == 403
    response = await api.post(url, headers=holder.otp())
    assert response.status_code == 200, response.text
    assert len(response.json()["generated"]) == 1
    assert "dnssec:key:compromised" in await tags(services, "dnssec:key:")
    missing = await api.post(f"{ZONES}/keys.example/keys/key_nothing/compromised",
                             headers=holder.otp())
    assert missing.status_code == 404


async def test_the_ksk_ds_goes_to_the_registry_once_the_new_keys_have_propagated(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services) -> None:
    registered = await api.post("/api/v1/domains", headers=holder.headers, json={
        "name": "signed.test", "registrant": holder.contact, "years": 1, "nameservers": NS})
    assert registered.status_code == 201, registered.text
    zone = await hosted(api, holder, "signed.test")
    ksk = next(key for key in zone["keys"] if key["role"] == "ksk")
    [early] = await keys_sweep(services, zones=["signed.test."])
    assert early.advanced is not None and early.advanced.ds_operation is None
    # Propagation delay plus the zone's largest TTL: every cache holds the new DNSKEY set.
    holder.clock.advance(timedelta(days=1, hours=1, minutes=1))
    [swept] = await keys_sweep(services, zones=["signed.test."])
    assert swept.advanced is not None and swept.advanced.ds_operation is not None
    await execute_all(services, swept.advanced.ds_operation)
    fetched = (await api.get("/api/v1/domains/signed.test", headers=holder.headers)).json()
    assert [f"{d['key_tag']} {d['algorithm']} {d['digest_type']} {d['digest']}".lower()
            for d in fetched["ds"]] == [ksk["ds"][0].lower()]
    assert "domains:ds:confirmed" in await tags(services, "domains:ds:")
