"""RDAP query limits: per source network, larger and separate for authenticated requesters,
refused with 429, Retry-After and an RDAP error body."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from rdap.conftest import Published
from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.rdds.documents import Materializer
from regshield.services import Services

LOOKUP = "/rdap/domain/example.test"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two queries at once, then one a minute, for anonymous requesters."""
    return replace(settings, rdds=replace(settings.rdds, burst=2, per_minute=1,
                                          authenticated_per_minute=10))


async def test_a_source_over_its_limit_gets_429_with_retry_after_until_it_waits(
        api: httpx.AsyncClient, published: Published, clock: FakeClock,
        services: Services) -> None:
    assert (await api.get(LOOKUP)).status_code == 200
    assert (await api.head(LOOKUP)).status_code == 200

    refused = await api.get(LOOKUP)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/rdap+json"
    assert refused.headers["access-control-allow-origin"] == "*"
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60
    body = refused.json()
    assert body["errorCode"] == 429 and "rdap_level_0" in body["rdapConformance"]
    assert "Jane" not in refused.text
    # HEAD is refused alike; a wrong token does not get around the limit.
    assert (await api.head(LOOKUP)).status_code == 429
    bad_token = await api.get(LOOKUP, headers={"Authorization": "Bearer rs_guessed"})
    assert bad_token.status_code == 429
    # An authenticated requester has a bucket of its own.
    assert (await api.get(LOOKUP, headers=published.staff.headers)).status_code == 200
    assert services.limiter("rdap").refused["anonymous"] == 3

    clock.advance(timedelta(seconds=wait))
    assert (await api.get(LOOKUP)).status_code == 200


async def test_an_answer_from_a_rendered_document_takes_its_query_from_the_limit(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    await Materializer(services).render_missing()
    first = await api.get(LOOKUP)
    assert first.status_code == 200 and first.headers["etag"]
    assert (await api.head(LOOKUP)).status_code == 200

    refused = await api.get(LOOKUP, headers={"If-None-Match": first.headers["etag"]})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["errorCode"] == 429
    assert (await api.get("/rdap/domain/unknown.test")).status_code == 429
    assert services.limiter("rdap").refused["anonymous"] == 2
