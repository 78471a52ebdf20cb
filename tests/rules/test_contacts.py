"""Contact registration data rules (rules/contacts.py): pure validation, no store."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from regshield.errors import ValidationFailed
from regshield.rules.contacts import (
    FIELDS,
    MAX_STREET_LINES,
    MAX_TEXT,
    ContactData,
    validate_contact,
)

# ICANN Registration Data Policy, collection (RDP row 12): the fields every contact must have.
MINIMAL: dict[str, Any] = {
    "name": "Jane Example",
    "street": ["Invalidenstrasse 116"],
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
    "phone": "+49 30 12345678",
    "email": "jane@example.net",
}
REQUIRED = ("name", "street", "city", "postal_code", "country", "phone", "email")


def contact(**changes: Any) -> dict[str, Any]:
    values = {**MINIMAL, **changes}
    return {k: v for k, v in values.items() if v is not ...}


def failures(raw: dict[str, Any]) -> dict[str, str]:
    """field -> code of every reason `raw` is refused."""
    with pytest.raises(ValidationFailed) as refused:
        validate_contact(raw)
    found = {e.field: e.code for e in refused.value.errors}
    assert len(found) == len(refused.value.errors), "one error per failing field"
    assert all(e.message for e in refused.value.errors)
    return found


# What a valid contact looks like


def test_minimal_contact_of_the_seven_required_fields_is_accepted() -> None:
    data = validate_contact(MINIMAL)

    assert data == ContactData(
        name="Jane Example", organization=None, street=("Invalidenstrasse 116",),
        city="Berlin", state=None, postal_code="10115", country="DE", phone="+493012345678",
        fax=None, email="jane@example.net",
    )


def test_optional_organization_state_and_fax_are_kept() -> None:
    data = validate_contact(contact(organization="Example GmbH", state="Berlin",
                                    fax="+49 30 12345679"))

    assert (data.organization, data.state, data.fax) == ("Example GmbH", "Berlin",
                                                        "+493012345679")


@pytest.mark.parametrize("field", ["organization", "state", "fax"])
@pytest.mark.parametrize("empty", [None, ""])
def test_empty_optional_field_is_stored_as_absent(field: str, empty: Any) -> None:
    assert getattr(validate_contact(contact(**{field: empty})), field) is None


def test_up_to_three_street_lines_are_accepted() -> None:
    data = validate_contact(contact(street=["c/o Example", "Invalidenstrasse 116", "Hinterhaus"]))

    assert data.street == ("c/o Example", "Invalidenstrasse 116", "Hinterhaus")


def test_text_of_exactly_the_maximum_length_is_accepted() -> None:
    assert validate_contact(contact(name="x" * MAX_TEXT)).name == "x" * MAX_TEXT


def test_stored_form_round_trips_through_as_dict_and_from_dict() -> None:
    data = validate_contact(contact(organization="Example GmbH", fax="+49 30 12345679",
                                    street=["a", "b"]))

    assert ContactData.from_dict(data.as_dict()) == data
    assert data.as_dict()["street"] == ["a", "b"]
    assert set(data.as_dict()) == set(FIELDS)
    # as_dict names each field: one added to the record must be added there too.
    assert set(FIELDS) == {f.name for f in dataclasses.fields(ContactData)}


# Normalization


def test_phone_and_fax_are_stored_in_e164() -> None:
    data = validate_contact(contact(phone="+49 (30) 1234-5678", fax="+1 415 555 0132"))

    assert (data.phone, data.fax) == ("+493012345678", "+14155550132")


def test_national_phone_number_is_read_in_the_contacts_country() -> None:
    assert validate_contact(contact(phone="030 12345678", country="DE")).phone == "+493012345678"
    assert validate_contact(contact(phone="(415) 555-0132", country="US",
                                    postal_code="94105")).phone == "+14155550132"


def test_country_code_is_upper_cased() -> None:
    assert validate_contact(contact(country="de")).country == "DE"


def test_runs_of_whitespace_are_collapsed_and_ends_trimmed() -> None:
    data = validate_contact(contact(name="  Jane \u00a0  Example ", city=" Berlin ",
                                    street=["  Invalidenstrasse   116 "]))

    assert (data.name, data.city, data.street) == ("Jane Example", "Berlin",
                                                  ("Invalidenstrasse 116",))


def test_text_is_stored_in_unicode_nfc() -> None:
    decomposed = "Zoe\u0308 Mu\u0308ller"

    assert validate_contact(contact(name=decomposed)).name == "Zo\u00eb M\u00fcller"


def test_single_street_string_becomes_one_line() -> None:
    assert validate_contact(contact(street="Invalidenstrasse 116")).street == (
        "Invalidenstrasse 116",)


def test_email_domain_is_lower_cased_and_local_part_kept() -> None:
    assert validate_contact(contact(email=" Jane.Doe@EXAMPLE.Net ")).email == "Jane.Doe@example.net"


@pytest.mark.parametrize(("country", "given", "stored"), [
    ("GB", "sw1a 1aa", "SW1A 1AA"),
    ("CA", "k1a 0b1", "K1A 0B1"),
    ("NL", "1012 ab", "1012 AB"),
])
def test_letters_of_postal_codes_are_upper_cased_where_the_format_has_them(
        country: str, given: str, stored: str) -> None:
    phone = {"GB": "+44 20 7946 0958", "CA": "+1 613 555 0199", "NL": "+31 20 794 0000"}[country]
    data = validate_contact(contact(country=country, postal_code=given, phone=phone))

    assert data.postal_code == stored


def test_postal_code_of_a_country_without_a_known_format_is_free_text() -> None:
    data = validate_contact(contact(country="NZ", postal_code="Rural Delivery 7",
                                    phone="+64 21 345 6789"))

    assert data.postal_code == "Rural Delivery 7"


# Refusals, one code per reason


@pytest.mark.parametrize("field", REQUIRED)
def test_each_required_field_missing_is_reported_as_required(field: str) -> None:
    assert failures(contact(**{field: ...})) == {field: "required"}


@pytest.mark.parametrize("field", ["name", "city", "postal_code", "email", "phone"])
def test_blank_required_field_counts_as_missing(field: str) -> None:
    blank = "" if field in ("email", "phone") else "   "
    assert failures(contact(**{field: blank})) == {field: "required"}


def test_empty_street_is_required() -> None:
    assert failures(contact(street=[])) == {"street": "required"}


def test_unknown_field_is_refused_by_name() -> None:
    assert failures(contact(nickname="JD")) == {"nickname": "unknown_field"}


@pytest.mark.parametrize("field", ["name", "organization", "city", "state", "postal_code"])
@pytest.mark.parametrize("value", [123, 1.5, True, ["Jane"], {"first": "Jane"}])
def test_text_field_of_another_json_type_is_not_text(field: str, value: Any) -> None:
    assert failures(contact(**{field: value})) == {field: "not_text"}


@pytest.mark.parametrize("field", ["name", "organization", "city", "state"])
def test_control_characters_are_refused(field: str) -> None:
    assert failures(contact(**{field: "Jane\x00Example"})) == {field: "control_characters"}
    assert failures(contact(**{field: "Jane\u202eelpmaxE"})) == {field: "control_characters"}


@pytest.mark.parametrize("field", ["name", "organization", "city", "state"])
def test_text_longer_than_255_characters_is_too_long(field: str) -> None:
    assert failures(contact(**{field: "x" * (MAX_TEXT + 1)})) == {field: "too_long"}


def test_more_than_three_street_lines_are_refused() -> None:
    lines = [f"line {n}" for n in range(MAX_STREET_LINES + 1)]

    assert failures(contact(street=lines)) == {"street": "too_many_lines"}


def test_street_that_is_not_a_list_is_refused() -> None:
    assert failures(contact(street={"line": "Invalidenstrasse 116"})) == {"street": "not_list"}


def test_bad_street_line_is_named_by_its_position() -> None:
    assert failures(contact(street=["Invalidenstrasse 116", "", 7])) == {
        "street.1": "required", "street.2": "not_text"}
    assert failures(contact(street=["ok", "x" * (MAX_TEXT + 1)])) == {"street.1": "too_long"}


@pytest.mark.parametrize("country", ["XX", "ZZ", "DEU", "Germany", 49, "E"])
def test_country_that_is_not_iso_3166_alpha_2_is_unknown(country: Any) -> None:
    # A national phone number cannot be read without a country: give it in international form.
    assert failures(contact(country=country)) == {"country": "unknown_country"}


@pytest.mark.parametrize(("country", "postal_code", "phone"), [
    ("US", "9410", "+1 415 555 0132"),
    ("US", "94105-12", "+1 415 555 0132"),
    ("US", "ABCDE", "+1 415 555 0132"),
    ("DE", "1011", "+49 30 12345678"),
    ("GB", "12345", "+44 20 7946 0958"),
])
def test_postal_code_not_in_the_countrys_format_is_refused(
        country: str, postal_code: str, phone: str) -> None:
    assert failures(contact(country=country, postal_code=postal_code, phone=phone)) == {
        "postal_code": "invalid_postal_code"}


def test_us_zip_plus_four_is_accepted() -> None:
    data = validate_contact(contact(country="us", postal_code="94105-1804",
                                    phone="+1 415 555 0132"))

    assert (data.country, data.postal_code) == ("US", "94105-1804")


def test_postal_code_longer_than_16_characters_is_too_long() -> None:
    assert failures(contact(country="NZ", phone="+64 21 345 6789",
                            postal_code="1" * 17)) == {"postal_code": "too_long"}


@pytest.mark.parametrize("phone", [
    "12",  # no country code and too short
    "+49 30",  # too short for any German number
    "+999 1234567",  # no such country code
    "call me",
    "+" + "1" * 70,  # longer than any telephone number
    4930123456,  # a number, not text
])
def test_phone_that_is_not_a_valid_telephone_number_is_refused(phone: Any) -> None:
    assert failures(contact(phone=phone)) == {"phone": "invalid_phone"}


def test_bad_fax_is_refused_under_its_own_name() -> None:
    assert failures(contact(fax="not a fax")) == {"fax": "invalid_phone"}


@pytest.mark.parametrize("email", [
    "jane", "jane@", "@example.net", "jane@@example.net", "jane doe@example.net",
    "jane@example..net", "x" * 250 + "@example.net", 42,
])
def test_email_that_is_not_an_address_is_refused(email: Any) -> None:
    assert failures(contact(email=email)) == {"email": "invalid_email"}


def test_every_failing_field_is_reported_at_once() -> None:
    raw = {
        "organization": 7,
        "street": ["a", "b", "c", "d"],
        "city": "",
        "postal_code": "1234",
        "country": "US",
        "phone": "12",
        "fax": "nope",
        "email": "not-an-address",
        "nickname": "JD",
    }

    assert failures(raw) == {
        "nickname": "unknown_field", "name": "required", "organization": "not_text",
        "street": "too_many_lines", "city": "required", "postal_code": "invalid_postal_code",
        "phone": "invalid_phone", "fax": "invalid_phone", "email": "invalid_email",
    }


def test_refusal_detail_names_the_failing_fields() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_contact(contact(name=..., email="x"))

    assert "email" in refused.value.detail
    assert "name" in refused.value.detail
