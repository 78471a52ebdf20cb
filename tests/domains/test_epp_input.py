"""What EPP can carry: a value XML 1.0 cannot hold is refused while the flow validates, before
anything is written; and an operation whose command still cannot be built settles as failed,
releasing the domain, instead of staying running."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from domains.conftest import Holder, Registry
from domains.test_lifecycle import events
from domains.test_poll import other_registrars_domain
from regshield.flows import domains as domain_flows
from regshield.services import Services
from regshield.store.models import Domain, DomainOperation

CODE = "Moving-0ver-2026!"


async def rows(services: Services) -> tuple[int, int]:
    async with services.store.read() as session:
        return (await session.scalar(select(func.count()).select_from(Domain)) or 0,
                await session.scalar(select(func.count()).select_from(DomainOperation)) or 0)


async def test_a_control_character_in_an_auth_code_is_refused_before_anything_is_written(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    await other_registrars_domain(registry, "other.test", CODE)
    before = await rows(services)

    refused = await api.post("/api/v1/transfers", headers=holder.headers,
                             json={"name": "other.test", "auth_code": "a\u0001b"})

    assert refused.status_code == 422, refused.text
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == \
        [("auth_code", "not_xml_text")]
    assert "U+0001" in refused.json()["errors"][0]["message"]
    assert await rows(services) == before
    assert await events(services, "domains:transfer-in") == []
    retried = await api.post("/api/v1/transfers", headers=holder.headers,
                             json={"name": "other.test", "auth_code": CODE})
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "pending_transfer_in"


@pytest.mark.parametrize("character", ["\u0000", "\u001f", "\ufffe"])
async def test_every_character_outside_xml_is_refused_with_the_others_reasons(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        character: str) -> None:
    refused = await api.post("/api/v1/transfers", headers=holder.headers, json={
        "name": "other.test", "auth_code": f"x{character}y", "registrant": "RS-NOSUCH"})

    assert refused.status_code == 422, refused.text
    assert {e["field"] for e in refused.json()["errors"]} == {"auth_code", "registrant"}


async def test_an_operation_that_cannot_be_built_settles_as_failed_and_a_retry_works(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await other_registrars_domain(registry, "other.test", CODE)
    # A validation gap: the flow lets the code through, so lxml refuses it while the
    # transfer command is built, after the flow committed.
    monkeypatch.setattr(domain_flows, "check_xml_text", lambda value, field, errors: True)

    failed = await api.post("/api/v1/transfers", headers=holder.headers,
                            json={"name": "other.test", "auth_code": "a\u0001b"})

    assert failed.status_code == 503, failed.text
    async with services.store.read() as session:
        [operation] = (await session.scalars(select(DomainOperation))).all()
        assert (operation.state, operation.result and operation.result.get("error")) == \
            ("failed", "CodecError")
        assert operation.completed_at is not None and operation.lease_until is None
        [domain] = (await session.scalars(select(Domain))).all()
        assert domain.state == "ended"
    [settled] = await events(services, "domains:transfer_request:failed")
    assert settled.summary["error"] == "CodecError"
    assert "a\u0001b" not in str(settled.summary)
    monkeypatch.undo()
    retried = await api.post("/api/v1/transfers", headers=holder.headers,
                             json={"name": "other.test", "auth_code": CODE})
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "pending_transfer_in"
    sponsor = registry.domain("other.test")
    assert sponsor is not None and "pendingTransfer" in sponsor["statuses"]
