"""A domain lookup checked rule by rule against ICANN's gTLD RDAP profile (February 2024),
on real responses of the application for domains registered at the sandbox registry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonpath_rfc9535 as jsonpath
import pytest
from domains.conftest import Registry, as_other_registrar
from domains.test_lifecycle import DOMAINS, register
from sqlalchemy import select

from rdap.conftest import ABUSE_EMAIL, IANA_ID, Published, set_domain
from regshield.clock import FakeClock
from regshield.registry.codec import Secret
from regshield.registry.commands import DomainCreate
from regshield.services import Services
from regshield.store.models import Domain

LOOKUP = "/rdap/domain/example.test"
PROFILE = {"rdap_level_0", "icann_rdap_technical_implementation_guide_1",
           "icann_rdap_response_profile_1"}
# Every personal value of the registrant (contact_samples.contact_body) and the tech contact.
PERSONAL = ("Jane Example", "jane@example.net", "Invalidenstrasse", "Berlin", "10115",
            "+493012345678", "Example GmbH", "Tom Tech", "tom@ops.example", "1 Hosting Way",
            "London", "SW1A 1AA", "Ops Ltd", "+442079460000")
ANONYMOUS_REDACTIONS = {
    "Registry Registrant ID", "Registrant Name", "Registrant Organization",
    "Registrant Street", "Registrant City", "Registrant Postal Code", "Registrant Phone",
    "Registrant Fax", "Registrant Email", "Registry Tech ID", "Tech Name", "Tech Phone",
    "Tech Email",
}


def entity(body: dict[str, Any], role: str) -> dict[str, Any]:
    found = [e for e in body["entities"] if e["roles"] == [role]]
    assert len(found) == 1, body["entities"]
    return found[0]


def card(entity_object: dict[str, Any], name: str) -> list[list[Any]]:
    """The properties called `name` of an entity's jCard."""
    assert entity_object["vcardArray"][0] == "vcard"
    return [p for p in entity_object["vcardArray"][1] if p[0] == name]


def events(body: dict[str, Any]) -> dict[str, str]:
    actions = [e["eventAction"] for e in body["events"]]
    assert len(actions) == len(set(actions)), actions
    return {e["eventAction"]: e["eventDate"] for e in body["events"]}


def find(path: str, body: dict[str, Any]) -> list[Any]:
    return list(jsonpath.find(path, body).values())


async def lookup(api: httpx.AsyncClient, path: str = LOOKUP,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await api.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/rdap+json"
    assert response.headers["access-control-allow-origin"] == "*"
    body: dict[str, Any] = response.json()
    return body


async def test_an_anonymous_lookup_carries_every_member_the_profile_requires(
        api: httpx.AsyncClient, published: Published, services: Services,
        clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=3))
    body = await lookup(api)
    base = services.settings.rdap_base_url

    # rdapConformance, topmost only; `redacted` because a redacted array is present.
    assert set(body["rdapConformance"]) == PROFILE | {"redacted"}
    assert not any(v.endswith("_0") and v != "rdap_level_0" for v in body["rdapConformance"])
    assert all("rdapConformance" not in e for e in body["entities"])
    # The domain: its registry ROID as handle, its LDH name, a self link.
    async with services.store.read() as session:
        roid = (await session.execute(select(Domain.roid).where(
            Domain.name == "example.test"))).scalar_one()
    assert roid and body["handle"] == roid
    assert (body["objectClassName"], body["ldhName"]) == ("domain", "example.test")
    assert "unicodeName" not in body
    assert body["links"] == [{"value": f"{base}domain/example.test", "rel": "self",
                              "href": f"{base}domain/example.test",
                              "type": "application/rdap+json"}]
    # Status per RFC 8056, each once.
    assert sorted(body["status"]) == ["client delete prohibited", "client transfer prohibited"]
    # Events: both expirations; no last changed, no transfer; the database time is now.
    dated = events(body)
    assert set(dated) == {"registration", "expiration", "registrar expiration",
                          "last update of RDAP database"}
    assert dated["expiration"] == dated["registrar expiration"]
    assert dated["expiration"].startswith("2028-11-27")
    assert dated["last update of RDAP database"] == clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    # The registrar entity (RP 2.4).
    registrar = entity(body, "registrar")
    assert registrar["handle"] == str(IANA_ID)
    assert registrar["publicIds"] == [{"type": "IANA Registrar ID",
                                       "identifier": str(IANA_ID)}]
    assert card(registrar, "fn") == [["fn", {}, "text", "Shield Registrar GmbH"]]
    assert registrar["links"] == [{"value": base, "rel": "about",
                                   "href": services.settings.registrar_url,
                                   "type": "text/html"}]
    abuse = [e for e in registrar["entities"] if e["roles"] == ["abuse"]]
    assert len(abuse) == 1
    assert card(abuse[0], "email") == [["email", {}, "text", ABUSE_EMAIL]]
    assert card(abuse[0], "tel") == [["tel", {"type": "voice"}, "uri", "tel:+49301234000"]]
    # A registrant entity with a structured address: empty country name, ISO code as cc.
    registrant = entity(body, "registrant")
    (adr,) = card(registrant, "adr")
    assert adr[1] == {"cc": "DE"} and len(adr[3]) == 7 and adr[3][6] == ""
    # Nameservers, secureDNS.
    assert body["nameservers"] == [
        {"objectClassName": "nameserver", "ldhName": "ns1.example.net"},
        {"objectClassName": "nameserver", "ldhName": "ns2.example.net"}]
    assert body["secureDNS"] == {"delegationSigned": False}
    assert "port43" not in body  # no WHOIS server is configured
    # The three notices, their links' value being the query URL.
    query_url = f"{base}domain/example.test"
    notices = {n["title"]: n for n in body["notices"]}
    assert set(notices) == {"Terms of Use", "Status Codes", "RDDS Inaccuracy Complaint Form"}
    assert notices["Terms of Use"]["links"] == [{
        "value": query_url, "rel": "terms-of-service", "href": services.settings.terms_url,
        "type": "text/html"}]
    assert notices["Status Codes"]["description"] == [
        "For more information on domain status codes, please visit https://icann.org/epp"]
    assert notices["Status Codes"]["links"] == [{
        "value": query_url, "rel": "glossary", "href": "https://icann.org/epp",
        "type": "text/html"}]
    assert notices["RDDS Inaccuracy Complaint Form"]["description"] == [
        "URL of the ICANN RDDS Inaccuracy Complaint Form: https://icann.org/wicf"]
    assert notices["RDDS Inaccuracy Complaint Form"]["links"] == [{
        "value": query_url, "rel": "help", "href": "https://icann.org/wicf",
        "type": "text/html"}]


async def test_an_anonymous_lookup_shows_no_personal_data_and_every_redaction_path_holds(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    response = await api.get(LOOKUP)
    body = response.json()

    for value in PERSONAL:
        assert value not in response.text
    redacted = {r["name"]["type"]: r for r in body["redacted"]}
    assert set(redacted) == ANONYMOUS_REDACTIONS
    assert len(redacted) == len(body["redacted"])
    for name, member in redacted.items():
        assert member["pathLang"] == "jsonpath" and "description" not in member["name"]
        method = member["method"]
        if method == "removal":
            assert find(member["prePath"], body) == [], name
        elif method == "emptyValue":
            values = find(member["postPath"], body)
            assert values and all(v == "" for v in values), (name, values)
        else:
            assert method == "replacementValue", name
            assert find(member["prePath"], body) == [], name
            (uri,) = find(member["replacementPath"], body)
            role = "registrant" if name.startswith("Registrant") else "technical"
            assert uri == ["contact-uri", {}, "uri",
                           f"{services.settings.public_url}/contact/example.test/{role}"]
    # The domain's ROID is shown, so it is not listed as redacted; the contact handles are.
    assert "Registry Domain ID" not in redacted
    assert "handle" not in entity(body, "registrant")
    assert "handle" not in entity(body, "technical")
    # RP 2.7.8: exactly one of an email or a contact-uri per contact.
    for role in ("registrant", "technical"):
        contact = entity(body, role)
        assert len(card(contact, "email")) + len(card(contact, "contact-uri")) == 1
    # The state (none here) and the country stay published.
    assert card(entity(body, "registrant"), "adr")[0][1] == {"cc": "DE"}


async def test_staff_see_every_field_and_no_redaction(
        api: httpx.AsyncClient, published: Published) -> None:
    body = await lookup(api, headers=published.staff.headers)

    assert "redacted" not in body
    assert set(body["rdapConformance"]) == PROFILE
    registrant = entity(body, "registrant")
    assert registrant["handle"] == published.holder.contact
    assert card(registrant, "fn") == [["fn", {}, "text", "Jane Example"]]
    assert card(registrant, "org") == [["org", {}, "text", "Example GmbH"]]
    assert card(registrant, "adr") == [["adr", {"cc": "DE"}, "text",
                                        ["", "", "Invalidenstrasse 116", "Berlin", "", "10115",
                                         ""]]]
    assert card(registrant, "tel") == [["tel", {"type": "voice"}, "uri", "tel:+493012345678"]]
    assert card(registrant, "email") == [["email", {}, "text", "jane@example.net"]]
    assert card(registrant, "contact-uri") == []
    tech = entity(body, "technical")
    assert tech["handle"] == published.tech
    assert card(tech, "fn") == [["fn", {}, "text", "Tom Tech"]]
    assert card(tech, "email") == [["email", {}, "text", "tom@ops.example"]]


async def test_a_customer_without_an_approved_disclosure_reads_as_anonymous(
        api: httpx.AsyncClient, published: Published) -> None:
    as_customer = await lookup(api, headers=published.holder.headers)
    anonymous = await lookup(api)

    assert as_customer["redacted"] == anonymous["redacted"]
    assert as_customer["entities"] == anonymous["entities"]


async def test_the_organization_the_registrant_consented_to_publish_is_shown(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    await set_domain(services, "example.test",
                     publish_consent={"organization": "2026-11-27T12:00:00+00:00"})

    response = await api.get(LOOKUP)
    body = response.json()

    registrant = entity(body, "registrant")
    assert card(registrant, "org") == [["org", {}, "text", "Example GmbH"]]
    names = {r["name"]["type"] for r in body["redacted"]}
    assert names == ANONYMOUS_REDACTIONS - {"Registrant Organization"}
    assert "Jane Example" not in response.text and "jane@example.net" not in response.text


async def test_queries_differing_in_case_or_a_trailing_dot_answer_alike(
        api: httpx.AsyncClient, published: Published) -> None:
    answers = [await lookup(api, path) for path in (
        LOOKUP, "/rdap/domain/EXAMPLE.TEST", "/rdap/domain/Example.Test.")]

    for answer in answers:
        answer.pop("notices")  # their links name each query's own URL
    assert answers[0] == answers[1] == answers[2]


async def test_an_idn_is_found_by_its_a_label_and_its_u_label(
        api: httpx.AsyncClient, published: Published) -> None:
    registered = await register(api, published.holder, name="bücher.test")
    assert registered.status_code == 201, registered.text

    by_a_label = await lookup(api, "/rdap/domain/xn--bcher-kva.test")
    by_u_label = await lookup(api, "/rdap/domain/B%C3%BCcher.test")

    for body in (by_a_label, by_u_label):
        assert body["ldhName"] == "xn--bcher-kva.test"
        assert body["unicodeName"] == "bücher.test"
    assert by_u_label["notices"][0]["links"][0]["value"].endswith(
        "/rdap/domain/B%C3%BCcher.test")


async def test_unknown_and_unsponsored_domains_answer_404_with_an_rdap_error(
        api: httpx.AsyncClient, published: Published, registry: Registry) -> None:
    taken = await as_other_registrar(registry, DomainCreate("elsewhere.test", Secret("")))
    assert taken.succeeded

    for name in ("not-a-domain.invalid", "test.invalid", "unknown.test", "elsewhere.test"):
        response = await api.get(f"/rdap/domain/{name}")
        assert response.status_code == 404, (name, response.text)
        assert response.headers["content-type"] == "application/rdap+json"
        assert response.headers["access-control-allow-origin"] == "*"
        body = response.json()
        assert body["errorCode"] == 404
        assert set(body["rdapConformance"]) == PROFILE
        assert body["title"] and body["description"]


async def test_a_change_and_a_transfer_appear_as_events(
        api: httpx.AsyncClient, published: Published, services: Services,
        clock: FakeClock) -> None:
    clock.advance(timedelta(days=3))
    changed = await api.put(f"{DOMAINS}/example.test/nameservers",
                            headers=published.holder.otp(),
                            json={"nameservers": ["ns1.example.org"]})
    assert changed.status_code == 200, changed.text
    transferred = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    await record_transfer(services, "example.test", transferred)

    body = await lookup(api)

    dated = events(body)
    assert dated["last changed"].startswith("2026-11-30")
    assert dated["transfer"] == "2026-12-01T08:30:00Z"
    assert [ns["ldhName"] for ns in body["nameservers"]] == ["ns1.example.org"]


async def record_transfer(services: Services, name: str, completed_at: datetime) -> None:
    """A confirmed inbound transfer, as the transfer flow leaves it once the registry agreed."""
    from regshield.store.models import DomainOperation

    async with services.store.write() as session:
        domain = (await session.execute(select(Domain).where(Domain.name == name))).scalar_one()
        session.add(DomainOperation(
            public_id="op_rdaptransfer01", domain_id=domain.id, kind="transfer_request",
            state="confirmed", request={}, result={}, attempts=1, actor="system:test",
            created_at=completed_at - timedelta(days=5), completed_at=completed_at))


async def test_status_values_follow_rfc_8056_and_secure_dns_lists_the_ds(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    ds = {"key_tag": 12345, "algorithm": 13, "digest_type": 2, "digest": "ab" * 32}
    await set_domain(services, "example.test", ds=[ds], registry_statuses=[
        "clientHold", "serverTransferProhibited", "pendingDelete", "redemptionPeriod",
        "pendingDelete"])

    body = await lookup(api)

    assert body["status"] == ["client hold", "server transfer prohibited", "pending delete",
                              "redemption period"]
    assert body["secureDNS"] == {"delegationSigned": True, "dsData": [
        {"keyTag": 12345, "algorithm": 13, "digestType": 2, "digest": "ab" * 32}]}

    await set_domain(services, "example.test", registry_statuses=["ok"])
    assert (await lookup(api))["status"] == ["active"]


async def test_port43_names_the_whois_server_when_one_is_configured(
        api: httpx.AsyncClient, published: Published, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = services.settings
    monkeypatch.setattr(services, "settings", replace(
        settings, rdds=replace(settings.rdds, whois_server="whois.registrar.example")))

    body = await lookup(api)

    assert body["port43"] == "whois.registrar.example"
