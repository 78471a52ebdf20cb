"""Change of registrant: a step-up, the contact created at the registry, the Transfer
Policy's 60-day transfer lock, or the prior registrant's opt-out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from contact_samples import contact_body

from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, register
from regshield.clock import FakeClock
from regshield.flows.sweeps import sweep
from regshield.services import Services


async def new_contact(api: httpx.AsyncClient, holder: Holder) -> str:
    created = await api.post("/api/v1/contacts", headers=holder.headers,
                             json=contact_body(name="Erika Mustermann",
                                               email="erika@example.org"))
    assert created.status_code == 201, created.text
    return str(created.json()["handle"])


async def unlocked(api: httpx.AsyncClient, holder: Holder) -> None:
    assert (await register(api, holder)).status_code == 201
    response = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert response.status_code == 200, response.text


async def test_a_change_of_registrant_locks_transfers_for_60_days(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await unlocked(api, holder)
    handle = await new_contact(api, holder)
    url = f"{DOMAINS}/example.test/registrant"
    clock.advance(timedelta(minutes=6))
    assert (await api.put(url, headers=holder.headers,
                          json={"registrant": handle})).status_code == 403

    changed = await api.put(url, headers=holder.otp(), json={"registrant": handle})

    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["registrant"] == handle
    assert "change_of_registrant_lock" in body["holds"]
    assert "clientTransferProhibited" in body["statuses"]
    assert body["registrar_lock"] is False
    rows = registry.sql("SELECT registrant FROM domains WHERE name = 'example.test'")
    assert rows == [(handle,)]

    clock.advance(timedelta(days=61))
    assert len(await sweep(services)) == 1
    fetched = (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).json()
    assert "change_of_registrant_lock" not in fetched["holds"]
    assert "clientTransferProhibited" not in fetched["statuses"]


async def test_the_prior_registrant_may_opt_out_of_the_lock(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    await unlocked(api, holder)
    handle = await new_contact(api, holder)
    changed = await api.put(f"{DOMAINS}/example.test/registrant", headers=holder.otp(),
                            json={"registrant": handle, "opt_out_of_transfer_lock": True})
    assert changed.status_code == 200, changed.text
    assert changed.json()["holds"] == []
    assert "clientTransferProhibited" not in changed.json()["statuses"]


async def test_an_unknown_or_foreign_contact_is_refused(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    response = await api.put(f"{DOMAINS}/example.test/registrant", headers=holder.otp(),
                             json={"registrant": "RS-ZZZZZZZZZZ"})
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "registrant", "code": "unknown_contact",
        "message": response.json()["errors"][0]["message"]}


async def test_the_tech_contact_is_set_and_removed_at_the_registry(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    handle = await new_contact(api, holder)
    url = f"{DOMAINS}/example.test/contacts"

    set_ = await api.put(url, headers=holder.headers, json={"tech": handle})

    assert set_.status_code == 200, set_.text
    assert set_.json()["tech"] == handle
    assert registry.sql("SELECT contacts FROM domains") == [
        (f'[{{"type": "tech", "id": "{handle}"}}]',)]
    removed = await api.put(url, headers=holder.headers, json={"tech": None})
    assert removed.status_code == 200, removed.text
    assert removed.json()["tech"] is None
    assert registry.sql("SELECT contacts FROM domains") == [("[]",)]


async def test_under_the_tpr_a_new_domain_cannot_move_for_30_days_even_unlocked(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "settings", replace(
        services.settings, tpr_effective=(clock.now() - timedelta(days=1)).date()))
    await unlocked(api, holder)
    fetched = (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).json()
    assert fetched["registrar_lock"] is False
    assert "transfer_lock_after_registration" in fetched["holds"]
    assert "clientTransferProhibited" in fetched["statuses"]

    clock.advance(timedelta(days=31))
    assert len(await sweep(services)) == 1
    fetched = (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).json()
    assert "clientTransferProhibited" not in fetched["statuses"]
