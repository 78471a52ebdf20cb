"""RDAP responses (RFC 9083) as ICANN's gTLD RDAP profile (February 2024) shapes them.

Pure rendering: a `Presentation` (rdds/record.py, already redacted for its persona) becomes a
domain object with the profile's rdapConformance values, notices, events, registrar entity,
contacts as jCards, nameservers, secureDNS and the RFC 9537 `redacted` array. Help, error,
nameserver, entity and search-result objects are built here as well, and the text of a
lookup query is checked here (`lookup_name`). No I/O, no clock: the adapter passes `now`.

The JSONPaths in `redacted` (rules/redaction.py) point into the shapes built here: the fn
value is an empty string when the name is withheld, the structured `adr` keeps its seven
components with the withheld ones empty, the phone and the email properties are left out, and
a `contact-uri` stands where a withheld email would be.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import idna

from regshield.errors import ValidationFailed
from regshield.rdds.record import (
    DomainRecord,
    Presentation,
    PresentedContact,
    RegistrarFacts,
)
from regshield.rules.names import ACE_PREFIX, DomainName, parse_domain_name

MEDIA_TYPE: Final = "application/rdap+json"
CONFORMANCE: Final = ("rdap_level_0", "icann_rdap_technical_implementation_guide_1",
                      "icann_rdap_response_profile_1")
REDACTED_CONFORMANCE: Final = "redacted"
MAX_QUERY: Final = 1000  # characters of a name in a query, before any IDNA work

EPP_INFO_URL: Final = "https://icann.org/epp"
COMPLAINT_FORM_URL: Final = "https://icann.org/wicf"

# RFC 8056 §2 (EPP domain statuses) and the RFC 3915 grace periods, as the IANA "RDAP JSON
# Values" registry names them.
STATUS_MAP: Final[Mapping[str, str]] = {
    "ok": "active",
    "inactive": "inactive",
    "clientDeleteProhibited": "client delete prohibited",
    "clientHold": "client hold",
    "clientRenewProhibited": "client renew prohibited",
    "clientTransferProhibited": "client transfer prohibited",
    "clientUpdateProhibited": "client update prohibited",
    "serverDeleteProhibited": "server delete prohibited",
    "serverHold": "server hold",
    "serverRenewProhibited": "server renew prohibited",
    "serverTransferProhibited": "server transfer prohibited",
    "serverUpdateProhibited": "server update prohibited",
    "pendingCreate": "pending create",
    "pendingDelete": "pending delete",
    "pendingRenew": "pending renew",
    "pendingTransfer": "pending transfer",
    "pendingUpdate": "pending update",
    "addPeriod": "add period",
    "autoRenewPeriod": "auto renew period",
    "renewPeriod": "renew period",
    "transferPeriod": "transfer period",
    "redemptionPeriod": "redemption period",
    "pendingRestore": "pending restore",
}
ACTIVE: Final = "active"


class RdapError(Exception):
    """A query answered with an RDAP error object: `status` is the HTTP status and the
    errorCode (RFC 9083 §6)."""

    def __init__(self, status: int, title: str, *description: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = tuple(description)
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Site:
    """What every response links to: the IANA-registered RDAP base URL (ending in a slash),
    the registrar's web site, its terms of service, and the WHOIS server if one runs."""

    base_url: str
    registrar_url: str
    terms_url: str
    port43: str | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path.lstrip('/')}"


@dataclass(frozen=True)
class LookupName:
    """A checked lookup query: the canonical name and whether the query used U-labels."""

    name: DomainName
    unicode_query: bool


def lookup_name(text: str) -> LookupName:
    """Check the name of a domain or nameserver lookup.

    Accepts A-labels or U-labels in any case, with one trailing dot (TIG 2.1.1). A name that
    mixes A-labels and U-labels is refused (TIG 3.1), as is anything that is not a domain
    name. Raises RdapError(400).
    """
    if len(text) > MAX_QUERY:
        raise RdapError(400, "Malformed query",
                        f"A domain name has at most 253 characters; the query has {len(text)}.")
    if "/" in text or "\\" in text:
        raise RdapError(400, "Malformed query", "A name has no slashes.")
    labels = [label for label in text.replace("\u3002", ".").replace("\uff0e", ".")
              .replace("\uff61", ".").split(".") if label]
    unicode_query = any(not label.isascii() for label in labels)
    if unicode_query and any(label.lower().startswith(ACE_PREFIX) for label in labels):
        raise RdapError(400, "Malformed query",
                        "The name mixes A-labels and U-labels; write it all in one form.")
    try:
        name = parse_domain_name(text, "name")
    except ValidationFailed as failed:
        raise RdapError(400, "Malformed query",
                        *(f"{error.field} {error.message}" for error in failed.errors)) from None
    return LookupName(name, unicode_query)


@dataclass(frozen=True)
class SearchPattern:
    """A domain search (RFC 9082 §3.2.1): an exact name, or a prefix before a trailing `*`
    in A-label form (`ascii_prefix`) or in U-label form (`unicode_prefix`)."""

    exact: str | None = None
    ascii_prefix: str | None = None
    unicode_prefix: str | None = None


def search_pattern(text: str) -> SearchPattern:
    """Check the `name` of a domain search. Raises RdapError(400)."""
    if not text.endswith("*"):
        return SearchPattern(exact=lookup_name(text).name.ascii)
    prefix = text[:-1]
    if "*" in prefix or len(prefix) > MAX_QUERY:
        raise RdapError(400, "Malformed query",
                        "A search pattern has at most one '*', at its end.")
    if prefix.isascii():
        lowered = prefix.lower()
        if not all(ch.isalnum() or ch in "-." for ch in lowered):
            raise RdapError(400, "Malformed query",
                            "A search pattern holds only letters, digits, hyphens and dots "
                            "before its '*'.")
        return SearchPattern(ascii_prefix=lowered)
    folded = unicodedata.normalize("NFC", prefix).casefold()
    if any(unicodedata.category(ch)[0] in "CZ" or ch in "%_\\" for ch in folded):
        raise RdapError(400, "Malformed query", "The search pattern has characters no name has.")
    return SearchPattern(unicode_prefix=folded)


def status_values(epp_statuses: Iterable[str]) -> list[str]:
    """RDAP status values for EPP statuses (RFC 8056), each once, in a stable order. `active`
    stands alone (RFC 5731: "ok" combines with no prohibition or pending state)."""
    values: list[str] = []
    for status in epp_statuses:
        value = STATUS_MAP.get(status)
        if value is not None and value not in values:
            values.append(value)
    if len(values) > 1 and ACTIVE in values and any(v != "inactive" for v in values
                                                    if v != ACTIVE):
        values.remove(ACTIVE)
    return values or [ACTIVE]


def rdap_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conformance(redacted: bool = False) -> list[str]:
    values = list(CONFORMANCE)
    if redacted:
        values.append(REDACTED_CONFORMANCE)
    return values


def _link(value: str, rel: str, href: str, media_type: str = "text/html") -> dict[str, str]:
    return {"value": value, "rel": rel, "href": href, "type": media_type}


def terms_notice(site: Site, query_url: str) -> dict[str, Any]:
    """TIG 3.3: the terms of service, linked from every response."""
    return {
        "title": "Terms of Use",
        "description": ["Registration data is provided subject to the registrar's terms of "
                        "use, which the linked page sets out."],
        "links": [_link(query_url, "terms-of-service", site.terms_url)],
    }


def domain_notices(site: Site, query_url: str) -> list[dict[str, Any]]:
    """The three notices of a domain response (TIG 3.3, RP 2.6.3, RP 2.10)."""
    return [
        terms_notice(site, query_url),
        {
            "title": "Status Codes",
            "description": [f"For more information on domain status codes, please visit "
                            f"{EPP_INFO_URL}"],
            "links": [_link(query_url, "glossary", EPP_INFO_URL)],
        },
        {
            "title": "RDDS Inaccuracy Complaint Form",
            "description": [f"URL of the ICANN RDDS Inaccuracy Complaint Form: "
                            f"{COMPLAINT_FORM_URL}"],
            "links": [_link(query_url, "help", COMPLAINT_FORM_URL)],
        },
    ]


def _card(properties: Sequence[list[Any]]) -> list[Any]:
    return ["vcard", [["version", {}, "text", "4.0"], *properties]]


def _tel(number: str, kind: str) -> list[Any]:
    return ["tel", {"type": kind}, "uri", f"tel:{number}"]


def registrar_entity(facts: RegistrarFacts, site: Site) -> dict[str, Any]:
    """RP 2.4: the sponsoring registrar, its IANA ID, its about link and its abuse contact."""
    entity: dict[str, Any] = {"objectClassName": "entity"}
    if facts.iana_id is not None:
        entity["handle"] = str(facts.iana_id)
    entity["roles"] = ["registrar"]
    if facts.iana_id is not None:
        entity["publicIds"] = [{"type": "IANA Registrar ID", "identifier": str(facts.iana_id)}]
    entity["vcardArray"] = _card([["fn", {}, "text", facts.name]])
    entity["links"] = [_link(site.base_url, "about", site.registrar_url)]
    abuse: list[list[Any]] = [["fn", {}, "text", "Abuse Contact"]]
    if facts.abuse_phone:
        abuse.append(_tel(facts.abuse_phone, "voice"))
    if facts.abuse_email:
        abuse.append(["email", {}, "text", facts.abuse_email])
    entity["entities"] = [{"objectClassName": "entity", "roles": ["abuse"],
                           "vcardArray": _card(abuse)}]
    return entity


def contact_card(shown: Mapping[str, Any], contact_uri: str | None) -> list[Any]:
    """A jCard of the fields `shown` (RP 1.4, TIG 3.8). The name is always present (empty
    when withheld); the address is the structured seven-part `adr` with an empty country
    name and the ISO code as `cc`, present whenever any part or the country is shown."""
    properties: list[list[Any]] = [["fn", {}, "text", shown.get("name") or ""]]
    if shown.get("organization"):
        properties.append(["org", {}, "text", shown["organization"]])
    address_parts = ("street", "city", "state", "postal_code", "country")
    if any(shown.get(part) for part in address_parts):
        street = list(shown.get("street") or [])
        street_value: str | list[str] = street if len(street) > 1 else (
            street[0] if street else "")
        parameters: dict[str, str] = {}
        if shown.get("country"):
            parameters["cc"] = str(shown["country"]).upper()
        properties.append(["adr", parameters, "text",
                           ["", "", street_value, shown.get("city") or "",
                            shown.get("state") or "", shown.get("postal_code") or "", ""]])
    if shown.get("phone"):
        properties.append(_tel(shown["phone"], "voice"))
    if shown.get("fax"):
        properties.append(_tel(shown["fax"], "fax"))
    if shown.get("email"):
        properties.append(["email", {}, "text", shown["email"]])
    elif contact_uri:
        properties.append(["contact-uri", {}, "uri", contact_uri])
    return _card(properties)


def contact_entity(contact: PresentedContact) -> dict[str, Any]:
    entity: dict[str, Any] = {"objectClassName": "entity"}
    if contact.handle is not None:
        entity["handle"] = contact.handle
    entity["roles"] = [str(contact.role)]
    entity["vcardArray"] = contact_card(contact.shown, contact.contact_uri)
    return entity


def nameserver_member(name: str) -> dict[str, Any]:
    """A nameserver as a domain lists it (RP 2.8): its LDH name, and its U-label form for an
    internationalized name."""
    member: dict[str, Any] = {"objectClassName": "nameserver", "ldhName": name}
    if ACE_PREFIX in name:
        # Stored names were checked on the way in; an odd one is shown as stored.
        with contextlib.suppress(idna.IDNAError, UnicodeError):
            member["unicodeName"] = idna.decode(name)
    return member


def secure_dns(ds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """RP 2.9: delegationSigned always, dsData when the delegation has DS records."""
    secure: dict[str, Any] = {"delegationSigned": bool(ds)}
    if ds:
        secure["dsData"] = [{"keyTag": int(d["key_tag"]), "algorithm": int(d["algorithm"]),
                             "digestType": int(d["digest_type"]), "digest": str(d["digest"])}
                            for d in ds]
    return secure


def domain_events(record: DomainRecord, now: datetime | None) -> list[dict[str, str]]:
    """RP 2.3: registration, expiration and registrar expiration; last changed and transfer
    only when they happened; the last update of the RDAP database (`now`) for a lookup."""
    events = [{"eventAction": "registration", "eventDate": rdap_time(record.registered_at)}]
    if record.expires_at is not None:
        expiry = rdap_time(record.expires_at)
        events.append({"eventAction": "expiration", "eventDate": expiry})
        events.append({"eventAction": "registrar expiration", "eventDate": expiry})
    if record.last_changed_at is not None:
        events.append({"eventAction": "last changed",
                       "eventDate": rdap_time(record.last_changed_at)})
    if record.transferred_at is not None:
        events.append({"eventAction": "transfer", "eventDate": rdap_time(record.transferred_at)})
    if now is not None:
        events.append({"eventAction": "last update of RDAP database",
                       "eventDate": rdap_time(now)})
    return events


def domain_member(presentation: Presentation, site: Site, *, unicode_query: bool = False,
                  now: datetime | None = None) -> dict[str, Any]:
    """The domain object without the members only the topmost object carries."""
    record = presentation.record
    self_url = site.url(f"domain/{record.name}")
    domain: dict[str, Any] = {"objectClassName": "domain"}
    if record.roid:
        domain["handle"] = record.roid
    domain["ldhName"] = record.name
    if unicode_query or record.unicode_name != record.name:
        domain["unicodeName"] = record.unicode_name
    domain["links"] = [_link(self_url, "self", self_url, MEDIA_TYPE)]
    domain["status"] = status_values(record.statuses)
    domain["events"] = domain_events(record, now)
    domain["entities"] = [registrar_entity(record.registrar, site),
                          *(contact_entity(contact) for contact in presentation.contacts)]
    domain["nameservers"] = [nameserver_member(name) for name in record.nameservers]
    domain["secureDNS"] = secure_dns(record.ds)
    if site.port43:
        domain["port43"] = site.port43
    return domain


def domain_response(presentation: Presentation, site: Site, *, query_url: str, now: datetime,
                    unicode_query: bool = False) -> dict[str, Any]:
    """The answer to a domain lookup (RP §2), for the persona the presentation was made for."""
    redacted = [redaction.as_rdap() for redaction in presentation.redactions]
    body: dict[str, Any] = {"rdapConformance": conformance(bool(redacted))}
    body.update(domain_member(presentation, site, unicode_query=unicode_query, now=now))
    body["notices"] = domain_notices(site, query_url)
    if redacted:
        body["redacted"] = redacted
    return body


def nameserver_response(name: DomainName, site: Site, *, query_url: str) -> dict[str, Any]:
    """A nameserver lookup: a host that a sponsored domain delegates to."""
    body: dict[str, Any] = {"rdapConformance": conformance()}
    body.update(nameserver_member(name.ascii))
    self_url = site.url(f"nameserver/{name.ascii}")
    body["links"] = [_link(self_url, "self", self_url, MEDIA_TYPE)]
    if site.port43:
        body["port43"] = site.port43
    body["notices"] = [terms_notice(site, query_url)]
    return body


def registrar_response(facts: RegistrarFacts, site: Site, *, query_url: str) -> dict[str, Any]:
    """An entity lookup of the registrar by its IANA ID."""
    return {"rdapConformance": conformance(), **registrar_entity(facts, site),
            "notices": [terms_notice(site, query_url)]}


def contact_response(contact: PresentedContact, site: Site, *, query_url: str
                     ) -> dict[str, Any]:
    """An entity lookup of a contact, for a requester who may see all of it."""
    body: dict[str, Any] = {"rdapConformance": conformance(), **contact_entity(contact)}
    body.pop("roles")  # a contact's role is its role on a domain, not its own
    body["notices"] = [terms_notice(site, query_url)]
    return body


def domain_search_response(presentations: Sequence[Presentation], site: Site, *,
                           query_url: str, now: datetime, limit: int,
                           truncated: bool) -> dict[str, Any]:
    """Domain search results (RFC 9083 §8). Only unredacted presentations belong here: the
    profile's redaction paths address a lookup's topmost domain, not a result in a list."""
    if any(p.redactions for p in presentations):
        raise ValueError("search results are rendered for requesters who see every field")
    notices = [terms_notice(site, query_url)]
    if truncated:
        notices.append({
            "title": "Search Policy",
            "type": "result set truncated due to excessive load",
            "description": [f"Result set truncated due to load: at most {limit} domains are "
                            f"returned; narrow the pattern to see the others."],
        })
    return {
        "rdapConformance": conformance(),
        "domainSearchResults": [domain_member(p, site, now=now) for p in presentations],
        "notices": notices,
    }


def help_response(site: Site, *, query_url: str) -> dict[str, Any]:
    """TIG 3.4: /help, with links to the usage and policy documentation."""
    return {
        "rdapConformance": conformance(),
        "notices": [
            terms_notice(site, query_url),
            {
                "title": "RDAP Help",
                "description": [
                    "This service answers RDAP lookups of the domains this registrar "
                    "sponsors: domain/<name> (A-label or U-label), nameserver/<name>, "
                    "entity/<IANA Registrar ID> and help.",
                    "Personal data of contacts is redacted unless the registrant consented "
                    "to publish it or an approved disclosure request covers it; a redacted "
                    "email is replaced by a web form that relays messages.",
                    "Domain search (domains?name=) is open to authenticated registrar staff.",
                    "Queries are limited per source network; a refused query is answered "
                    "with 429 and Retry-After.",
                ],
                "links": [
                    _link(query_url, "help", site.terms_url),
                    _link(query_url, "about", site.registrar_url),
                ],
            },
        ],
        "links": [_link(query_url, "self", query_url, MEDIA_TYPE),
                  _link(query_url, "terms-of-service", site.terms_url)],
    }


def error_response(status: int, title: str, description: Sequence[str] = ()) -> dict[str, Any]:
    """An RFC 9083 §6 error: errorCode equals the HTTP status [-12108]."""
    return {"rdapConformance": conformance(), "errorCode": status, "title": title,
            "description": list(description) or [title]}
