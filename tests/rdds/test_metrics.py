"""`GET /metrics`: the rate limiters' counters in the Prometheus text format, for the local
host and registrar staff only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from conftest import World
from prometheus_client.parser import text_string_to_metric_families

from regshield.api.app import create_app
from regshield.config import Settings
from regshield.services import Services


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API's limit at a size a test can use up."""
    return replace(settings, limits=replace(settings.limits, api_burst=20))


@pytest.fixture
async def local(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the loopback interface, as a Prometheus agent on the same host."""
    transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def samples(text: str) -> dict[tuple[str, str, str], float]:
    """(service, outcome, requester) -> value, as Prometheus's own parser reads the page."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    family = families["regshield_rdds_queries"]
    assert family.type == "counter"
    return {(s.labels["service"], s.labels["outcome"], s.labels["requester"]): s.value
            for s in family.samples if s.name == "regshield_rdds_queries_total"}


async def test_the_local_host_reads_answered_and_refused_queries_per_service(
        local: httpx.AsyncClient, services: Services) -> None:
    whois = services.limiter("whois")
    burst = services.settings.rdds.burst
    for _ in range(burst + 2):
        await whois.check("192.0.2.1")
    await services.limiter("rdap").check("192.0.2.1", user="usr_1")

    response = await local.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE regshield_rdds_queries_total counter" in response.text
    found = samples(response.text)
    assert found["whois", "answered", "anonymous"] == burst
    assert found["whois", "refused", "anonymous"] == 2
    assert found["rdap", "answered", "authenticated"] == 1
    assert found["contact", "refused", "anonymous"] == 0
    assert len(found) == 3 * 2 * 2


async def test_a_remote_client_needs_a_staff_token(
        api: httpx.AsyncClient, world: World) -> None:
    assert (await api.get("/metrics")).status_code == 401
    customer = await world.user("owner", await world.account())
    assert (await api.get("/metrics", headers=customer.headers)).status_code == 403
    auditor = await world.user("auditor")
    allowed = await api.get("/metrics", headers=auditor.headers)
    assert allowed.status_code == 200 and "regshield_rdds_queries_total" in allowed.text


async def test_api_refusals_fallbacks_and_closed_connections_are_published(
        local: httpx.AsyncClient, services: Services) -> None:
    limits = services.limits
    api = services.limiter("api")
    burst = services.settings.limits.api_burst
    for _ in range(burst + 1):
        await api.check("192.0.2.1")
    limits.connections_refused["whois", "per_source"] += 2
    limits.buckets.fallbacks += 3

    response = await local.get("/metrics")

    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    requests = {(s.labels["outcome"], s.labels["requester"]): s.value
                for s in families["regshield_api_requests"].samples
                if s.name == "regshield_api_requests_total"}
    assert requests["refused", "anonymous"] == 1
    assert requests["answered", "anonymous"] == burst
    [fallbacks] = [s for s in families["regshield_rate_limit_fallbacks"].samples
                   if s.name.endswith("_total")]
    assert (fallbacks.labels["store"], fallbacks.value) == ("database", 3)
    [closed] = [s for s in families["regshield_connections_refused"].samples
                if s.name.endswith("_total")]
    assert (closed.labels, closed.value) == ({"listener": "whois", "reason": "per_source"}, 2)
