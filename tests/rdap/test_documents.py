"""Anonymous domain lookups answered from rendered documents: the same bytes as the dynamic
path, HTTP validators, and every change that must show at once (or within the documented
delay for another process) through the real API."""

from __future__ import annotations

import asyncio
import gc
import weakref
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from conftest import World
from domains.conftest import Registry, as_other_registrar
from domains.test_lifecycle import DOMAINS, register
from sqlalchemy import func, select

from rdap.conftest import Published, set_domain
from rdap.test_domain import card, entity, record_transfer
from regshield.clock import FakeClock
from regshield.rdds.documents import (
    CACHE_CONTROL,
    CHECK_SECONDS,
    Materializer,
    Missing,
    _document,
    document_cache,
)
from regshield.registry.codec import ResultCode, Secret
from regshield.registry.commands import DomainTransfer
from regshield.services import Services
from regshield.store.models import RdapDocument

LOOKUP = "/rdap/domain/example.test"


async def rendered(services: Services) -> int:
    """Render every missing document, as `regshield serve` does in the background."""
    return await Materializer(services).render_missing()


async def stored_names(services: Services) -> set[str]:
    async with services.store.read() as session:
        return set((await session.execute(select(RdapDocument.name))).scalars())


async def cached(api: httpx.AsyncClient, path: str = LOOKUP,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    """An anonymous lookup that was answered from a rendered document."""
    response = await api.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"].startswith('"'), "answered by the dynamic path"
    return response


async def varied(api: httpx.AsyncClient, published: Published, services: Services) -> list[str]:
    """Domains whose documents differ in every way the renderer branches on: two contacts or
    one, an IDN, consent to publish, DS records and odd statuses, a transfer, a change."""
    holder = published.holder
    for name, extra in (("bücher.test", {}), ("plain.test", {}),
                        ("signed.example", {"tech": published.tech})):
        response = await register(api, holder, name=name, **extra)
        assert response.status_code == 201, response.text
    await set_domain(services, "plain.test",
                     publish_consent={"organization": "2026-11-27T12:00:00+00:00"})
    await set_domain(services, "signed.example", ds=[
        {"key_tag": 4242, "algorithm": 13, "digest_type": 2, "digest": "cd" * 32}],
        registry_statuses=["clientHold", "serverTransferProhibited", "pendingDelete"])
    await record_transfer(services, "example.test", datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    return ["example.test", "xn--bcher-kva.test", "plain.test", "signed.example"]


async def test_a_rendered_document_is_byte_for_byte_the_dynamic_answer(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    names = await varied(api, published, services)
    assert await rendered(services) == len(names)

    for name in names:
        fast = await cached(api, f"/rdap/domain/{name}")
        # A customer without a disclosure reads as anonymous, through the dynamic path.
        dynamic = await api.get(f"/rdap/domain/{name}", headers=published.holder.headers)
        assert dynamic.status_code == 200 and "etag" not in dynamic.headers
        assert dynamic.headers["cache-control"] == "no-store"
        assert fast.content == dynamic.content, name
        assert fast.headers["content-type"] == dynamic.headers["content-type"]
        assert fast.headers["access-control-allow-origin"] == "*"
        assert fast.headers["cache-control"] == CACHE_CONTROL
        assert fast.headers["x-request-id"] and fast.headers["x-content-type-options"]
    # Staff still see everything, from the dynamic path.
    staff = await api.get(LOOKUP, headers=published.staff.headers)
    assert "Jane Example" in staff.text and "etag" not in staff.headers


async def test_a_requester_with_a_current_copy_gets_304_and_head_no_body(
        api: httpx.AsyncClient, published: Published, services: Services,
        clock: FakeClock) -> None:
    await rendered(services)
    first = await cached(api)
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    assert modified == format_datetime(clock.now().replace(microsecond=0), usegmt=True)

    for headers in ({"If-None-Match": tag}, {"If-None-Match": f'"other", W/{tag}'},
                    {"If-None-Match": "*"}, {"If-Modified-Since": modified}):
        again = await api.get(LOOKUP, headers=headers)
        assert again.status_code == 304, headers
        assert again.content == b"" and again.headers["etag"] == tag
    for headers in ({"If-None-Match": '"other"'}, {"If-Modified-Since": "not a date"},
                    {"If-Modified-Since": format_datetime(clock.now() - timedelta(hours=1),
                                                          usegmt=True)},
                    # If-None-Match decides alone when both are sent (RFC 9110 §13.2.2).
                    {"If-None-Match": '"other"', "If-Modified-Since": modified}):
        assert (await api.get(LOOKUP, headers=headers)).status_code == 200, headers
    head = await api.head(LOOKUP)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))


async def test_a_nameserver_change_shows_at_once(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    await rendered(services)
    before = await cached(api)

    changed = await api.put(f"{DOMAINS}/example.test/nameservers",
                            headers=published.holder.otp(),
                            json={"nameservers": ["ns1.example.org", "ns2.example.org"]})
    assert changed.status_code == 200, changed.text

    after = await api.get(LOOKUP)  # not rendered yet: the dynamic path answers
    assert [ns["ldhName"] for ns in after.json()["nameservers"]] == [
        "ns1.example.org", "ns2.example.org"]
    assert "example.test" not in await stored_names(services)
    assert await rendered(services) == 1
    again = await cached(api)
    assert again.content == after.content and again.headers["etag"] != before.headers["etag"]
    assert (await api.get(LOOKUP, headers={"If-None-Match": before.headers["etag"]})
            ).status_code == 200


async def test_a_registrant_edit_rerenders_every_domain_naming_the_contact(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    holder = published.holder
    assert (await register(api, holder, name="second.test")).status_code == 201
    for name in ("example.test", "second.test"):
        await set_domain(services, name,
                         publish_consent={"organization": "2026-11-27T12:00:00+00:00"})
    assert await rendered(services) == 2
    await cached(api)
    await cached(api, "/rdap/domain/second.test")

    edited = await api.patch(f"/api/v1/contacts/{holder.contact}", headers=holder.otp(),
                             json={"organization": "Renamed GmbH"})
    assert edited.status_code == 200, edited.text

    for name in ("example.test", "second.test"):
        body = (await api.get(f"/rdap/domain/{name}")).json()
        assert card(entity(body, "registrant"), "org") == [["org", {}, "text", "Renamed GmbH"]]
    assert await stored_names(services) == set()
    assert await rendered(services) == 2
    body = (await cached(api, "/rdap/domain/second.test")).json()
    assert card(entity(body, "registrant"), "org") == [["org", {}, "text", "Renamed GmbH"]]


async def test_a_tech_contact_edit_drops_only_the_documents_that_name_it(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    assert (await register(api, published.holder, name="second.test")).status_code == 201
    assert await rendered(services) == 2
    await cached(api)
    await cached(api, "/rdap/domain/second.test")

    edited = await api.patch(f"/api/v1/contacts/{published.tech}",
                             headers=published.holder.otp(),
                             json={"country": "fr", "postal_code": "75001", "city": "Paris"})
    assert edited.status_code == 200, edited.text

    # What anonymous requesters see of a tech contact did not change; the document is
    # rendered again all the same, and the domain without that contact keeps its own.
    assert await stored_names(services) == {"second.test"}
    assert (await api.get(LOOKUP)).status_code == 200
    assert await rendered(services) == 1
    await cached(api)


async def test_a_deleted_domain_is_not_found_at_once(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    await rendered(services)
    await cached(api)
    holder = published.holder
    unlocked = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert unlocked.status_code == 200, unlocked.text
    deleted = await api.delete(f"{DOMAINS}/example.test", headers=holder.otp())
    assert deleted.status_code == 200 and deleted.json()["state"] == "ended", deleted.text

    gone = await api.get(LOOKUP)
    assert gone.status_code == 404 and gone.json()["errorCode"] == 404
    assert await rendered(services) == 0
    assert (await api.get(LOOKUP)).status_code == 404


async def test_a_domain_transferred_away_is_not_found_at_once(
        api: httpx.AsyncClient, published: Published, services: Services,
        registry: Registry, clock: FakeClock) -> None:
    await rendered(services)
    await cached(api)
    holder = published.holder
    assert (await api.delete(f"{DOMAINS}/example.test/registrar-lock",
                             headers=holder.otp())).status_code == 200
    code = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())
    assert code.status_code == 201, code.text
    asked = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(code.json()["code"])))
    assert asked.code == ResultCode.COMPLETED_ACTION_PENDING
    clock.advance(timedelta(minutes=6))

    approved = await api.post(f"{DOMAINS}/example.test/transfer/approve", headers=holder.otp())
    assert approved.status_code == 200 and approved.json()["state"] == "ended", approved.text

    assert (await api.get(LOOKUP)).status_code == 404


async def test_a_change_of_the_registrar_record_rerenders_everything(
        api: httpx.AsyncClient, published: Published, services: Services,
        world: World) -> None:
    assert (await register(api, published.holder, name="second.test")).status_code == 201
    assert await rendered(services) == 2
    await cached(api)
    admin = await world.user("admin")

    patched = await api.patch("/api/v1/registrar", headers=admin.headers,
                              json={"name": "Renamed Registrar AG"})
    assert patched.status_code == 200, patched.text

    assert await stored_names(services) == set()
    for name in ("example.test", "second.test"):
        body = (await api.get(f"/rdap/domain/{name}")).json()
        assert card(entity(body, "registrar"), "fn") == [
            ["fn", {}, "text", "Renamed Registrar AG"]]
    assert await rendered(services) == 2


async def test_documents_rendered_under_other_settings_are_not_served(
        api: httpx.AsyncClient, published: Published, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await rendered(services)
    old = await cached(api)
    settings = services.settings
    # The terms page moved; the process restarts with the new settings.
    monkeypatch.setattr(services, "settings", replace(
        settings, rdds=replace(settings.rdds, terms_url="https://registrar.example/terms-2")))
    monkeypatch.setattr("regshield.rdds.documents._caches", weakref.WeakKeyDictionary())

    dynamic = await api.get(LOOKUP)
    assert "terms-2" in dynamic.text and "etag" not in dynamic.headers
    assert await rendered(services) == 1
    new = await cached(api)
    assert "terms-2" in new.text and new.headers["etag"] != old.headers["etag"]


async def test_a_change_made_by_another_process_is_served_within_the_check_interval(
        api: httpx.AsyncClient, published: Published, services: Services,
        clock: FakeClock) -> None:
    await rendered(services)
    before = await cached(api)
    other = Services.open(services.settings, clock)  # another process: its own store
    try:
        await set_domain(other, "example.test", nameservers=["ns9.example.org"])
    finally:
        await other.close()

    await asyncio.sleep(CHECK_SECONDS + 0.1)

    after = await api.get(LOOKUP)
    assert after.content != before.content
    assert [ns["ldhName"] for ns in after.json()["nameservers"]] == ["ns9.example.org"]


async def test_a_document_rendered_from_data_a_change_overtook_is_not_written(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    materializer = Materializer(services)
    # Read before the change, written after it: as if the change committed mid-render.
    original = materializer._write

    async def change_then_write(rows: list[dict[str, object]], read_at: int) -> int:
        await set_domain(services, "example.test", nameservers=["ns7.example.org"])
        return await original(rows, read_at)

    materializer._write = change_then_write  # type: ignore[method-assign]
    assert await materializer.render_missing() == 0
    materializer._write = original  # type: ignore[method-assign]
    assert await materializer.render_missing() == 1
    body = (await cached(api)).json()
    assert [ns["ldhName"] for ns in body["nameservers"]] == ["ns7.example.org"]


async def test_unknown_names_are_404_and_leave_nothing_behind(
        api: httpx.AsyncClient, published: Published, services: Services,
        registry: Registry) -> None:
    await rendered(services)
    await cached(api)
    cache = document_cache(services)
    kept = len(cache)

    for i in range(8):
        response = await api.get(f"/rdap/domain/never-seen-{i}.test")
        assert response.status_code == 404 and response.json()["errorCode"] == 404
        assert response.headers["cache-control"] == "no-store"

    assert len(cache) == kept
    async with services.store.read() as session:
        assert (await session.execute(select(func.count()).select_from(RdapDocument))
                ).scalar_one() == 1


async def test_a_restart_loads_the_stored_documents_into_memory(
        api: httpx.AsyncClient, published: Published, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await register(api, published.holder, name="second.test")).status_code == 201
    await rendered(services)
    assert len(document_cache(services)) == 2  # what was rendered here is kept at once
    monkeypatch.setattr("regshield.rdds.documents._caches", weakref.WeakKeyDictionary())
    restarted = document_cache(services)
    assert len(restarted) == 0

    assert await restarted.preload() == 2

    assert len(restarted) == 2
    await cached(api, "/rdap/domain/second.test")


async def test_names_without_a_document_answer_as_the_dynamic_path_does(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    await rendered(services)
    for name, status in (("ab--cd.test", 400), ("xn--zz.test", 400), ("1.2.3.4", 400),
                         ("unknown.test", 404)):
        fast = await api.get(f"/rdap/domain/{name}")
        # With a token the same query takes the dynamic path.
        dynamic = await api.get(f"/rdap/domain/{name}", headers=published.holder.headers)
        assert fast.status_code == dynamic.status_code == status, name
        assert fast.content == dynamic.content, name
        assert fast.headers["content-type"] == "application/rdap+json"


async def test_a_failure_ahead_of_the_application_is_an_rdap_500_without_detail(
        api: httpx.AsyncClient, published: Published, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await rendered(services)

    class Broken:
        def check(self, source: str | None, *, user: str | None = None) -> None:
            raise RuntimeError("limits store unreachable at 10.0.0.7")

    monkeypatch.setattr(services, "limiter", lambda service: Broken())

    response = await api.get(LOOKUP)

    assert response.status_code == 500 and response.json()["errorCode"] == 500
    assert "10.0.0.7" not in response.text and "Jane" not in response.text
    assert response.headers["x-request-id"]


async def test_one_instance_renders_at_a_time_and_the_others_leave_it_the_work(
        services: Services, published: Published) -> None:
    assert await stored_names(services) == set()
    # Another instance on the same database (its own store and connections) is rendering.
    other = Services.open(services.settings, services.clock)
    try:
        async with other.store.exclusive("rdap-materializer") as first:
            assert first
            assert await Materializer(services).render_if_first() is None
            assert await stored_names(services) == set()
        # Its pass is over (or it died: the lock goes with its connection, or on SQLite its
        # file lock with its process): this one renders.
        assert await Materializer(services).render_if_first() == 1
        assert await stored_names(services) == {"example.test"}
    finally:
        await other.close()


async def test_the_garbage_collector_stops_walking_documents_kept_in_memory(
        services: Services) -> None:
    # Every full collection walks every object it tracks: 100,000 documents as objects made
    # pauses of 0.19 s. Memory keeps each as a tuple of plain values, untracked once collected.
    memory = document_cache(services)
    assert await memory.document("example.test") is Missing.UNKNOWN  # memory is current
    assert memory.offer([_document("example.test", 1, 2, None, '"0123"', b'{"ldhName": 1}',
                                   datetime(2026, 12, 6, tzinfo=UTC))],
                        memory._generation or 0) == 1
    gc.collect()
    gc.collect()  # the first untracks the contact ids' tuple, the second the document's
    assert [gc.is_tracked(kept) for kept in memory._documents.values()] == [False]
    document = await memory.document("example.test")
    assert not isinstance(document, Missing)
    assert document.body == b'{"ldhName": 1}'
    assert document.last_modified == "Sun, 06 Dec 2026 00:00:00 GMT"
