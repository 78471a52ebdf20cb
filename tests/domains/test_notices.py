"""Holders hear of sensitive changes once the registry has confirmed them."""

from __future__ import annotations

import email
import email.policy

import httpx

from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, register
from regshield.flows.operations import run_queued
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.services import Services


async def test_a_nameserver_change_is_told_to_the_registrant_and_the_owner(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    changed = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                            json={"nameservers": ["ns1.example.org"]})
    assert changed.status_code == 200, changed.text

    await OutboxWorker(services, {**handlers(), "registry:operation": run_queued}).run_once()

    directory = services.settings.home / MAIL_DIRECTORY
    messages = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(directory.glob("*.eml"))]
    about_ns = [m for m in messages if "Nameservers changed" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in about_ns) == sorted(
        ["jane@example.net", holder.identity.email])
    body = about_ns[0].get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "ns1.example.org" in text and "ns1.example.net" in text
    assert "192.0.2.10" in text
    assert holder.identity.user_id in text
