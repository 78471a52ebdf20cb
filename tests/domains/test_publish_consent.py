"""The registrant's consent to publish fields that are otherwise redacted."""

from __future__ import annotations

import httpx
from conftest import World
from sqlalchemy import select

from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from regshield.services import Services
from regshield.store.models import Domain

CONSENT = f"{DOMAINS}/example.test/publish-consent"


async def consent_of(services: Services) -> dict[str, str]:
    async with services.store.read() as session:
        domain = (await session.execute(
            select(Domain).where(Domain.name == "example.test"))).scalar_one()
        return dict(domain.publish_consent)


async def test_consent_is_given_with_a_second_factor_dated_and_recorded(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201

    without = await api.put(CONSENT, headers=holder.headers, json={"fields": ["organization"]})
    assert without.status_code == 403, without.text
    assert await consent_of(services) == {}

    given = await api.put(CONSENT, headers=holder.otp(), json={"fields": ["organization"]})
    assert given.status_code == 200, given.text
    assert list(given.json()["fields"]) == ["organization"]
    stored = await consent_of(services)
    assert list(stored) == ["organization"]

    # Giving more keeps the first date; withdrawing needs no second factor.
    more = await api.put(CONSENT, headers=holder.otp(),
                         json={"fields": ["organization", "email"]})
    assert more.status_code == 200, more.text
    assert (await consent_of(services))["organization"] == stored["organization"]
    withdrawn = await api.put(CONSENT, headers=holder.headers, json={"fields": []})
    assert withdrawn.status_code == 200, withdrawn.text
    assert await consent_of(services) == {}

    recorded = [e.summary for e in await events(services, "domains:publish-consent")]
    assert [(s["given"], s["withdrawn"]) for s in recorded] == [
        (["organization"], []), (["email"], []), ([], ["email", "organization"])]


async def test_only_redacted_registrant_fields_can_be_consented(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    refused = await api.put(CONSENT, headers=holder.otp(),
                            json={"fields": ["country", "password", "organization"]})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert [e["field"] for e in problem["errors"]] == ["fields"]
    assert "country" in problem["errors"][0]["message"]
    assert "password" in problem["errors"][0]["message"]
    assert await consent_of(services) == {}


async def test_another_account_cannot_publish_a_registrants_data(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    stranger = await world.user("owner", await world.account())
    answer = await api.put(CONSENT, headers=stranger.headers, json={"fields": ["organization"]})
    assert answer.status_code == 404, answer.text
    assert await consent_of(services) == {}
