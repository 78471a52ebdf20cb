"""Which contact fields a requester sees, and the redaction record of every field they do not.

Shared by RDAP and WHOIS. One table, `REDACTION_TABLE`, says per role and field whether the
field is public or redacted, and if redacted with which name (the `type` of RFC 9537's `name`
member, as registered for the ICANN gTLD RDAP Response Profile, Appendix E), method and
JSONPaths. `redact_contact` applies it to one contact for one persona:

- `anonymous`: public rows are shown, every other row is redacted unless the registrant
  consented to publish that field (RP 2.7.9); fields without a row are not published at all.
- `disclosed`: a requester whose disclosure request for the domain was approved sees, of each
  contact (by role) the approval covers, exactly the fields it approved, beside what anyone
  sees; every other field, the contact's handle and other contacts read as for anonymous.
- `staff`: registrar staff with contacts:read see every field and get no redaction records.

A redacted email is replaced by the registrar's contact web form (RP 2.7.8: exactly one of an
email or a web-form `contact-uri`): the email property is removed, a `contact-uri` takes its
place, and the record uses the method replacementValue with prePath on the email and
replacementPath on the contact-uri.

A redacted row yields its record whether or not the contact has a value for the field, so the
record does not tell whether an optional field (organization, fax) is filled in.

Pure: no I/O. Bad arguments are programming errors and raise TypeError or ValueError.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from regshield.rules.contacts import FIELDS


class Persona(StrEnum):
    ANONYMOUS = "anonymous"
    DISCLOSED = "disclosed"
    STAFF = "staff"


class ContactRole(StrEnum):
    """The RDAP entity role of a domain contact (RFC 9083 §10.2.4)."""

    REGISTRANT = "registrant"
    TECHNICAL = "technical"


class RedactionMethod(StrEnum):
    """RFC 9537 §3 methods used by the profile."""

    REMOVAL = "removal"
    EMPTY_VALUE = "emptyValue"
    REPLACEMENT_VALUE = "replacementValue"


_Enum = TypeVar("_Enum", bound=StrEnum)

SERVER_POLICY: Final = "Server policy"
PATH_LANGUAGE: Final = "jsonpath"


@dataclass(frozen=True)
class RedactionRule:
    """One row of the table. `name` None means the field is public (never redacted)."""

    role: ContactRole
    field: str
    name: str | None = None
    method: RedactionMethod | None = None
    pre_path: str | None = None
    post_path: str | None = None
    replacement_path: str | None = None

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"{self.field!r} is not a contact field")
        if (self.name is None) != (self.method is None):
            raise ValueError(f"{self.role} {self.field}: a name needs a method and back")

    @property
    def public(self) -> bool:
        return self.name is None


def _card(role: ContactRole, selector: str) -> str:
    """A JSONPath into the jCard of the domain's entity with `role` (RP Appendix E)."""
    return f"$.entities[?(@.roles[0]=='{role}')].vcardArray[1]{selector}"


_R = ContactRole.REGISTRANT
_T = ContactRole.TECHNICAL
_EMPTY = RedactionMethod.EMPTY_VALUE
_REMOVE = RedactionMethod.REMOVAL
_REPLACE = RedactionMethod.REPLACEMENT_VALUE

REDACTION_TABLE: Final[tuple[RedactionRule, ...]] = (
    RedactionRule(_R, "name", "Registrant Name", _EMPTY,
                  post_path=_card(_R, "[?(@[0]=='fn')][3]")),
    RedactionRule(_R, "organization", "Registrant Organization", _REMOVE,
                  pre_path=_card(_R, "[?(@[0]=='org')]")),
    RedactionRule(_R, "street", "Registrant Street", _EMPTY,
                  post_path=_card(_R, "[?(@[0]=='adr')][3][:3]")),
    RedactionRule(_R, "city", "Registrant City", _EMPTY,
                  post_path=_card(_R, "[?(@[0]=='adr')][3][3]")),
    RedactionRule(_R, "state"),
    RedactionRule(_R, "postal_code", "Registrant Postal Code", _EMPTY,
                  post_path=_card(_R, "[?(@[0]=='adr')][3][5]")),
    RedactionRule(_R, "country"),
    RedactionRule(_R, "phone", "Registrant Phone", _REMOVE,
                  pre_path=_card(_R, "[?(@[1].type=='voice')]")),
    RedactionRule(_R, "fax", "Registrant Fax", _REMOVE,
                  pre_path=_card(_R, "[?(@[1].type=='fax')]")),
    RedactionRule(_R, "email", "Registrant Email", _REPLACE,
                  pre_path=_card(_R, "[?(@[0]=='email')]"),
                  replacement_path=_card(_R, "[?(@[0]=='contact-uri')]")),
    # The Registration Data Policy publishes only name, phone and email of a tech contact.
    RedactionRule(_T, "name", "Tech Name", _EMPTY,
                  post_path=_card(_T, "[?(@[0]=='fn')][3]")),
    RedactionRule(_T, "phone", "Tech Phone", _REMOVE,
                  pre_path=_card(_T, "[?(@[1].type=='voice')]")),
    RedactionRule(_T, "email", "Tech Email", _REPLACE,
                  pre_path=_card(_T, "[?(@[0]=='email')]"),
                  replacement_path=_card(_T, "[?(@[0]=='contact-uri')]")),
)


@dataclass(frozen=True)
class Redaction:
    """One redacted field, as an RFC 9537 `redacted` member describes it."""

    name: str
    method: RedactionMethod
    reason: str
    pre_path: str | None = None
    post_path: str | None = None
    replacement_path: str | None = None

    def as_rdap(self) -> dict[str, Any]:
        member: dict[str, Any] = {"name": {"type": self.name}}
        for key, path in (("prePath", self.pre_path), ("postPath", self.post_path),
                          ("replacementPath", self.replacement_path)):
            if path is not None:
                member[key] = path
        member["pathLang"] = PATH_LANGUAGE
        member["method"] = str(self.method)
        member["reason"] = {"description": self.reason}
        return member


@dataclass(frozen=True)
class RedactedContact:
    """What one persona sees of one contact.

    `shown` maps field to value; `contact_uri` is set when the email was replaced by the
    contact web form, which the adapter shows where the email would be.
    """

    role: ContactRole
    shown: Mapping[str, Any]
    redactions: tuple[Redaction, ...]
    contact_uri: str | None = None


def redact_contact(
    contact: Mapping[str, Any],
    role: ContactRole | str,
    persona: Persona | str,
    *,
    contact_uri: str,
    consent: AbstractSet[str] = frozenset(),
    disclosed: Mapping[ContactRole, AbstractSet[str]] = MappingProxyType({}),
) -> RedactedContact:
    """Apply `REDACTION_TABLE` to `contact` (fields named as in rules/contacts.py).

    `consent` names the fields this contact agreed to publish; `disclosed` maps each contact
    role an approved disclosure covers to the fields it approved, and is given only for the
    disclosed persona; `contact_uri` is the web form (https, or http where the installation is
    served so) that replaces a redacted email.
    Raises TypeError for arguments of the wrong type and ValueError for unknown personas,
    roles or fields, a contact_uri that is not https, or `disclosed` for another persona.
    """
    role = _member(ContactRole, role, "role")
    persona = _member(Persona, persona, "persona")
    if not isinstance(contact, Mapping):
        raise TypeError("contact must be a mapping of field to value")
    consent = _field_set(consent, "consent")
    if not isinstance(contact_uri, str):
        raise TypeError("contact_uri must be a URL string")
    if not isinstance(disclosed, Mapping):
        raise TypeError("disclosed must map contact roles to sets of field names")
    covered = {_member(ContactRole, covered_role, "disclosed role"):
               _field_set(fields, "disclosed") for covered_role, fields in disclosed.items()}
    problems = [f"{name!r} is not a contact field" for name in contact if name not in FIELDS]
    if any(covered.values()) and persona is not Persona.DISCLOSED:
        problems.append(f"disclosed fields apply only to the disclosed persona, not {persona}")
    if not _is_web_form(contact_uri):
        problems.append("contact_uri must be a web form (an https URL)")
    if problems:
        raise ValueError("; ".join(problems))

    present = {name: value for name, value in contact.items() if value is not None}
    if persona is Persona.STAFF:
        return RedactedContact(role, MappingProxyType(present), ())

    opened = covered.get(role, frozenset())
    shown: dict[str, Any] = {}
    redactions: list[Redaction] = []
    replaced_email = False
    for rule in REDACTION_TABLE:
        if rule.role is not role:
            continue
        if rule.public or rule.field in consent or rule.field in opened:
            if rule.field in present:
                shown[rule.field] = present[rule.field]
            continue
        assert rule.name is not None and rule.method is not None
        redactions.append(Redaction(rule.name, rule.method, SERVER_POLICY, rule.pre_path,
                                    rule.post_path, rule.replacement_path))
        replaced_email = replaced_email or rule.method is RedactionMethod.REPLACEMENT_VALUE
    return RedactedContact(role, MappingProxyType(shown), tuple(redactions),
                           contact_uri if replaced_email else None)


# RP Appendix E: the registry's contact IDs. A public handle would link every domain of one
# registrant, so it is redacted wherever the contact's personal data is.
HANDLE_REDACTIONS: Final[Mapping[ContactRole, Redaction]] = MappingProxyType({
    _R: Redaction("Registry Registrant ID", _REMOVE, SERVER_POLICY,
                  pre_path="$.entities[?(@.roles[0]=='registrant')].handle"),
    _T: Redaction("Registry Tech ID", _REMOVE, SERVER_POLICY,
                  pre_path="$.entities[?(@.roles[0]=='technical')].handle"),
})


def handle_redaction(role: ContactRole | str, persona: Persona | str) -> Redaction | None:
    """The redaction of the contact's handle for this persona, or None when it is shown: only
    staff see handles (a disclosure approves fields of a contact, and the handle is none)."""
    role = _member(ContactRole, role, "role")
    persona = _member(Persona, persona, "persona")
    if persona is Persona.STAFF:
        return None
    return HANDLE_REDACTIONS[role]


def rules_for(role: ContactRole) -> tuple[RedactionRule, ...]:
    """The table's rows for one role, in table order."""
    return tuple(rule for rule in REDACTION_TABLE if rule.role is role)


def _member(kind: type[_Enum], value: object, label: str) -> _Enum:
    if isinstance(value, kind):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{label} must be a {kind.__name__} or its text, not "
                        f"{type(value).__name__}")
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ValueError(f"unknown {label} {value!r} (known: {known})") from None


def _field_set(value: object, label: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, AbstractSet):
        raise TypeError(f"{label} must be a set of contact field names")
    unknown = sorted(str(name) for name in value if name not in FIELDS)
    if unknown:
        raise ValueError(f"{label} names unknown contact fields: {', '.join(unknown)}")
    return frozenset(value)


def _is_web_form(uri: str) -> bool:
    """An http(s) URL with a host. The profile wants https; the installation's public URL
    (http.public_url) decides, so a plain-http installation still names its form."""
    parts = urlsplit(uri)
    return parts.scheme in ("https", "http") and bool(parts.hostname)
