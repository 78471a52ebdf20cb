"""Notices for a domain registered through the API at the sandbox registry: the expiry notice
reaches the registrant, and a renewal at the registry ends the cycle it was about."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta

import httpx
from conftest import World
from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, register

from regshield.flows.auth import TokenCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.notices import NoticesSweep
from regshield.flows.operations import run_queued
from regshield.flows.runner import run_flow
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.services import Services

DAY = timedelta(days=1)


async def test_a_registered_domain_gets_its_month_notice_and_a_renewal_ends_the_cycle(
        api: httpx.AsyncClient, notices_api: httpx.AsyncClient, holder: Holder,
        registry: Registry, services: Services, world: World) -> None:
    assert (await register(api, holder, years=1)).status_code == 201
    shown = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    expires = datetime.fromisoformat(shown.json()["expires_at"])
    worker = OutboxWorker(services, {**handlers(), "registry:operation": run_queued})

    holder.clock.set(expires - 30 * DAY)
    await run_flow(services, system_actor("sweep"), RequestContext("system"), NoticesSweep())
    await worker.run_once()
    directory = services.settings.home / MAIL_DIRECTORY
    messages = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(directory.glob("*.eml"))]
    about_expiry = [m for m in messages if "Expires on" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in about_expiry) == sorted(
        ["jane@example.net", holder.identity.email])
    assert expires.date().isoformat() in str(about_expiry[0]["Subject"])

    holder.clock.advance(10 * DAY)
    # A year on, the registration's tokens have expired: the holder signs in again.
    token = await world.flow(TokenCreate(holder.identity.user_id, "a year later"))
    headers = {"Authorization": f"Bearer {token.value}"}
    renewed = await api.post(f"{DOMAINS}/example.test/renew", headers=headers,
                             json={"years": 1})
    assert renewed.status_code == 200, renewed.text
    at_registry = registry.domain("example.test")
    assert at_registry is not None
    assert str(at_registry["expires_at"]).startswith(str(expires.year + 1))

    holder.clock.set(expires - 7 * DAY)  # the old expiry's week notice would be due now
    await run_flow(services, system_actor("sweep"), RequestContext("system"), NoticesSweep())
    listed = await notices_api.get(f"{DOMAINS}/example.test/notices", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [(n["kind"], n["cycle"]) for n in listed.json()["items"]] == [
        ("errp-30", expires.date().isoformat())]
