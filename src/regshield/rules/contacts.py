"""Registration data of a contact (ICANN Registration Data Policy, collection).

Required: name, street, city, postal code, country, phone, email. Optional: organization,
state/province, fax. Lengths follow the EPP contact mapping (RFC 5733) so that every contact
can be sent to a registry unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from regshield.errors import FieldError, ValidationFailed
from regshield.rules.countries import ISO_3166_ALPHA2
from regshield.rules.text import text_value

FIELDS = (
    "name", "organization", "street", "city", "state", "postal_code", "country",
    "phone", "fax", "email",
)
MAX_TEXT = 255
MAX_STREET_LINES = 3
MAX_POSTAL_CODE = 16
MAX_EMAIL = 254

# Postal code shapes for countries whose format is fixed and well known.
POSTAL_CODE_PATTERNS: dict[str, re.Pattern[str]] = {
    "US": re.compile(r"\d{5}(-\d{4})?"),
    "CA": re.compile(r"[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d"),
    "DE": re.compile(r"\d{5}"),
    "FR": re.compile(r"\d{5}"),
    "IT": re.compile(r"\d{5}"),
    "ES": re.compile(r"\d{5}"),
    "NL": re.compile(r"\d{4} ?[A-Za-z]{2}"),
    "BE": re.compile(r"\d{4}"),
    "CH": re.compile(r"\d{4}"),
    "AT": re.compile(r"\d{4}"),
    "AU": re.compile(r"\d{4}"),
    "JP": re.compile(r"\d{3}-?\d{4}"),
    "BR": re.compile(r"\d{5}-?\d{3}"),
    "GB": re.compile(r"[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}"),
    "IN": re.compile(r"\d{6}"),
    "SE": re.compile(r"\d{3} ?\d{2}"),
    "PL": re.compile(r"\d{2}-\d{3}"),
}


@dataclass(frozen=True)
class ContactData:
    name: str
    organization: str | None
    street: tuple[str, ...]
    city: str
    state: str | None
    postal_code: str
    country: str
    phone: str  # E.164
    fax: str | None  # E.164
    email: str

    def as_dict(self) -> dict[str, Any]:
        # Field by field: `dataclasses.asdict` deep-copies every value, a cost paid on every
        # contact written or read.
        return {"name": self.name, "organization": self.organization, "street": list(self.street),
                "city": self.city, "state": self.state, "postal_code": self.postal_code,
                "country": self.country, "phone": self.phone, "fax": self.fax,
                "email": self.email}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ContactData:
        """Rebuild from stored (already validated) values."""
        return cls(
            name=values["name"], organization=values.get("organization"),
            street=tuple(values["street"]), city=values["city"], state=values.get("state"),
            postal_code=values["postal_code"], country=values["country"], phone=values["phone"],
            fax=values.get("fax"), email=values["email"],
        )


def validate_contact(raw: Mapping[str, Any]) -> ContactData:
    """Check every field and raise one ValidationFailed naming every failing field."""
    errors: list[FieldError] = [
        FieldError(name, "unknown_field", "is not a contact field")
        for name in raw if name not in FIELDS
    ]
    name = _text(raw, "name", errors, required=True)
    organization = _text(raw, "organization", errors, required=False)
    street = _street(raw.get("street"), errors)
    city = _text(raw, "city", errors, required=True)
    state = _text(raw, "state", errors, required=False)
    country = _country(raw.get("country"), errors)
    postal_code = _postal_code(raw.get("postal_code"), country, errors)
    phone = validate_phone(raw.get("phone"), "phone", country, errors)
    fax = validate_phone(raw.get("fax"), "fax", country, errors, required=False)
    email = _email(raw.get("email"), errors)
    if errors:
        raise ValidationFailed(errors)
    assert name and city and country and postal_code and phone and email is not None
    return ContactData(name=name, organization=organization, street=street, city=city,
                       state=state, postal_code=postal_code, country=country, phone=phone,
                       fax=fax, email=email)


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", " ".join(value.split()))


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in value)


def _text(raw: Mapping[str, Any], field: str, errors: list[FieldError], *,
          required: bool, limit: int = MAX_TEXT) -> str | None:
    value = text_value(raw.get(field), field, errors, required=required)
    if value is None:
        return None
    if _has_control(value):
        errors.append(FieldError(field, "control_characters",
                                 "must not contain control characters"))
        return None
    cleaned = _clean(value)
    if len(cleaned) > limit:
        errors.append(FieldError(field, "too_long", f"must be at most {limit} characters"))
        return None
    return cleaned


def _street(value: Any, errors: list[FieldError]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not value:
        errors.append(FieldError("street", "required", "needs at least one line"))
        return ()
    if not isinstance(value, list):
        errors.append(FieldError("street", "not_list", "must be a list of lines"))
        return ()
    if len(value) > MAX_STREET_LINES:
        errors.append(FieldError("street", "too_many_lines",
                                 f"must have at most {MAX_STREET_LINES} lines"))
        return ()
    lines: list[str] = []
    for index, line in enumerate(value):
        line_errors: list[FieldError] = []
        cleaned = _text({"line": line}, "line", line_errors, required=True)
        for error in line_errors:
            errors.append(FieldError(f"street.{index}", error.code, error.message))
        if cleaned:
            lines.append(cleaned)
    return tuple(lines)


def _country(value: Any, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        errors.append(FieldError("country", "required", "is required"))
        return None
    if not isinstance(value, str) or value.upper() not in ISO_3166_ALPHA2:
        errors.append(FieldError("country", "unknown_country",
                                 "must be an ISO 3166-1 alpha-2 code such as DE or US"))
        return None
    return value.upper()


def _postal_code(value: Any, country: str | None, errors: list[FieldError]) -> str | None:
    code = _text({"postal_code": value}, "postal_code", errors, required=True,
                 limit=MAX_POSTAL_CODE)
    if code is None:
        return None
    pattern = POSTAL_CODE_PATTERNS.get(country or "")
    if pattern and not pattern.fullmatch(code):
        errors.append(FieldError("postal_code", "invalid_postal_code",
                                 f"is not a valid postal code for {country}"))
        return None
    return code.upper() if country in {"CA", "GB", "NL"} else code


def validate_phone(value: Any, field: str, country: str | None, errors: list[FieldError], *,
                   required: bool = True) -> str | None:
    """A telephone number in E.164, parsed with libphonenumber; `country` helps local forms."""
    if value is None or value == "":
        if required:
            errors.append(FieldError(field, "required", "is required"))
        return None
    if not isinstance(value, str) or len(value) > 64:
        errors.append(FieldError(field, "invalid_phone", "must be a telephone number"))
        return None
    try:
        number = phonenumbers.parse(value, None if value.strip().startswith("+") else country)
    except phonenumbers.NumberParseException:
        errors.append(FieldError(field, "invalid_phone",
                                 "must be a telephone number in international form (+CC ...)"))
        return None
    if not phonenumbers.is_valid_number(number):
        errors.append(FieldError(field, "invalid_phone", "is not a valid telephone number"))
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(value: Any, errors: list[FieldError]) -> str | None:
    return normalize_email(value, errors, "email")


def normalize_email(value: Any, errors: list[FieldError], field: str) -> str | None:
    """Syntax check (RFC 5322 as email-validator reads it); the domain part is lower-cased."""
    if value is None or value == "":
        errors.append(FieldError(field, "required", "is required"))
        return None
    if not isinstance(value, str) or len(value) > MAX_EMAIL:
        errors.append(FieldError(field, "invalid_email",
                                 f"must be an email address of at most {MAX_EMAIL} characters"))
        return None
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        errors.append(FieldError(field, "invalid_email", str(exc)))
        return None
    return str(checked.normalized)
