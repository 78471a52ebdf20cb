"""The redaction engine (rules/redaction.py): per persona, which contact fields are shown and
which are redacted with the ICANN gTLD RDAP profile's name, method and JSONPath."""

from __future__ import annotations

from typing import Any

import pytest

from regshield.rules.redaction import (
    REDACTION_TABLE,
    SERVER_POLICY,
    ContactRole,
    Persona,
    RedactedContact,
    Redaction,
    RedactionMethod,
    RedactionRule,
    handle_redaction,
    redact_contact,
    rules_for,
)

FORM = "https://registrar.example/contact-the-registrant?domain=example.com"
REGISTRANT = ContactRole.REGISTRANT
TECHNICAL = ContactRole.TECHNICAL

CONTACT: dict[str, Any] = {
    "name": "Jane Example",
    "organization": "Example GmbH",
    "street": ["Invalidenstrasse 116", "Hinterhaus"],
    "city": "Berlin",
    "state": "BE",
    "postal_code": "10115",
    "country": "DE",
    "phone": "+493012345678",
    "fax": "+493012345679",
    "email": "jane@example.net",
}

REGISTRANT_CARD = "$.entities[?(@.roles[0]=='registrant')].vcardArray[1]"
TECH_CARD = "$.entities[?(@.roles[0]=='technical')].vcardArray[1]"

# The profile's Appendix E, spelled out: (role, field, name, method, prePath, postPath,
# replacementPath). A row with no name is public.
PROFILE = [
    (REGISTRANT, "name", "Registrant Name", "emptyValue",
     None, REGISTRANT_CARD + "[?(@[0]=='fn')][3]", None),
    (REGISTRANT, "organization", "Registrant Organization", "removal",
     REGISTRANT_CARD + "[?(@[0]=='org')]", None, None),
    (REGISTRANT, "street", "Registrant Street", "emptyValue",
     None, REGISTRANT_CARD + "[?(@[0]=='adr')][3][:3]", None),
    (REGISTRANT, "city", "Registrant City", "emptyValue",
     None, REGISTRANT_CARD + "[?(@[0]=='adr')][3][3]", None),
    (REGISTRANT, "state", None, None, None, None, None),
    (REGISTRANT, "postal_code", "Registrant Postal Code", "emptyValue",
     None, REGISTRANT_CARD + "[?(@[0]=='adr')][3][5]", None),
    (REGISTRANT, "country", None, None, None, None, None),
    (REGISTRANT, "phone", "Registrant Phone", "removal",
     REGISTRANT_CARD + "[?(@[1].type=='voice')]", None, None),
    (REGISTRANT, "fax", "Registrant Fax", "removal",
     REGISTRANT_CARD + "[?(@[1].type=='fax')]", None, None),
    (REGISTRANT, "email", "Registrant Email", "replacementValue",
     REGISTRANT_CARD + "[?(@[0]=='email')]", None, REGISTRANT_CARD + "[?(@[0]=='contact-uri')]"),
    (TECHNICAL, "name", "Tech Name", "emptyValue",
     None, TECH_CARD + "[?(@[0]=='fn')][3]", None),
    (TECHNICAL, "phone", "Tech Phone", "removal",
     TECH_CARD + "[?(@[1].type=='voice')]", None, None),
    (TECHNICAL, "email", "Tech Email", "replacementValue",
     TECH_CARD + "[?(@[0]=='email')]", None, TECH_CARD + "[?(@[0]=='contact-uri')]"),
]

REDACTED_ROWS = [rule for rule in REDACTION_TABLE if not rule.public]
PUBLIC_ROWS = [rule for rule in REDACTION_TABLE if rule.public]


def row_id(rule: RedactionRule) -> str:
    return f"{rule.role}-{rule.field}"


def redact(role: ContactRole, persona: Persona, contact: dict[str, Any] | None = None,
           **options: Any) -> RedactedContact:
    return redact_contact(CONTACT if contact is None else contact, role, persona,
                          contact_uri=FORM, **options)


def only_record(result: RedactedContact, name: str) -> Redaction:
    records = [record for record in result.redactions if record.name == name]
    assert len(records) == 1, f"expected one {name!r} record, got {result.redactions}"
    return records[0]


def assert_redacted_as_the_row_says(result: RedactedContact, rule: RedactionRule) -> None:
    assert rule.field not in result.shown
    assert rule.name is not None
    record = only_record(result, rule.name)
    assert record.method is rule.method
    assert (record.pre_path, record.post_path, record.replacement_path) == (
        rule.pre_path, rule.post_path, rule.replacement_path)
    assert record.reason == SERVER_POLICY


# The table


def test_the_table_is_the_profiles_appendix_e_row_by_row() -> None:
    rows = [(rule.role, rule.field, rule.name, rule.method, rule.pre_path, rule.post_path,
             rule.replacement_path) for rule in REDACTION_TABLE]
    assert rows == PROFILE


@pytest.mark.parametrize("rule", REDACTED_ROWS, ids=row_id)
def test_each_redacted_row_has_the_path_its_method_needs(rule: RedactionRule) -> None:
    # removal points at what is gone (prePath); emptyValue at the emptied value (postPath);
    # replacementValue at the removed email (prePath) and the contact-uri that replaces it.
    if rule.method is RedactionMethod.REMOVAL:
        assert rule.pre_path and not rule.post_path and not rule.replacement_path
    elif rule.method is RedactionMethod.EMPTY_VALUE:
        assert rule.post_path and not rule.pre_path and not rule.replacement_path
    else:
        assert rule.method is RedactionMethod.REPLACEMENT_VALUE
        assert rule.field == "email"
        assert rule.pre_path and rule.replacement_path and not rule.post_path


@pytest.mark.parametrize("rule", REDACTED_ROWS, ids=row_id)
def test_each_path_targets_the_entity_of_its_own_role(rule: RedactionRule) -> None:
    card = REGISTRANT_CARD if rule.role is REGISTRANT else TECH_CARD
    paths = [path for path in (rule.pre_path, rule.post_path, rule.replacement_path) if path]
    assert paths and all(path.startswith(card) for path in paths)


def test_registrant_country_and_state_are_public_and_nothing_else_is() -> None:
    assert {(rule.role, rule.field) for rule in PUBLIC_ROWS} == {
        (REGISTRANT, "country"), (REGISTRANT, "state")}


def test_a_tech_contact_publishes_only_name_phone_and_email() -> None:
    assert [rule.field for rule in rules_for(TECHNICAL)] == ["name", "phone", "email"]


def test_a_row_with_a_name_but_no_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        RedactionRule(REGISTRANT, "city", "Registrant City")


def test_a_row_for_a_field_contacts_do_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="handle"):
        RedactionRule(REGISTRANT, "handle")


# Anonymous


@pytest.mark.parametrize("rule", REDACTED_ROWS, ids=row_id)
def test_anonymous_gets_each_redacted_row_redacted(rule: RedactionRule) -> None:
    assert_redacted_as_the_row_says(redact(rule.role, Persona.ANONYMOUS), rule)


@pytest.mark.parametrize("rule", PUBLIC_ROWS, ids=row_id)
def test_anonymous_sees_each_public_row(rule: RedactionRule) -> None:
    result = redact(rule.role, Persona.ANONYMOUS)
    assert result.shown[rule.field] == CONTACT[rule.field]
    redacted_names = [other.name for other in rules_for(rule.role) if not other.public]
    assert [record.name for record in result.redactions] == redacted_names


def test_anonymous_sees_only_the_registrants_state_and_country() -> None:
    result = redact(REGISTRANT, Persona.ANONYMOUS)
    assert dict(result.shown) == {"state": "BE", "country": "DE"}
    assert [record.name for record in result.redactions] == [
        "Registrant Name", "Registrant Organization", "Registrant Street", "Registrant City",
        "Registrant Postal Code", "Registrant Phone", "Registrant Fax", "Registrant Email"]


def test_anonymous_sees_nothing_of_a_tech_contact_and_no_record_of_unpublished_fields() -> None:
    result = redact(TECHNICAL, Persona.ANONYMOUS)
    assert dict(result.shown) == {}
    assert [record.name for record in result.redactions] == [
        "Tech Name", "Tech Phone", "Tech Email"]


@pytest.mark.parametrize("rule", REDACTED_ROWS, ids=row_id)
def test_consent_lifts_the_redaction_of_that_field_only(rule: RedactionRule) -> None:
    result = redact(rule.role, Persona.ANONYMOUS, consent={rule.field})
    assert result.shown[rule.field] == CONTACT[rule.field]
    assert rule.name not in [record.name for record in result.redactions]
    others = [other for other in rules_for(rule.role) if not other.public and other != rule]
    for other in others:
        assert_redacted_as_the_row_says(result, other)


def test_organization_is_shown_to_the_public_only_with_consent() -> None:
    assert "organization" not in redact(REGISTRANT, Persona.ANONYMOUS).shown
    consented = redact(REGISTRANT, Persona.ANONYMOUS, consent={"organization", "country"})
    assert consented.shown["organization"] == "Example GmbH"
    assert consented.shown["country"] == "DE"


def test_consent_does_not_publish_a_field_the_tech_contact_has_no_place_for() -> None:
    result = redact(TECHNICAL, Persona.ANONYMOUS, consent={"street"})
    assert "street" not in result.shown


def test_missing_optional_fields_are_still_recorded_as_redacted() -> None:
    # Otherwise the records would tell the public the registrant has no organization or fax.
    contact = {**CONTACT, "organization": None}
    del contact["fax"]
    result = redact(REGISTRANT, Persona.ANONYMOUS, contact)
    only_record(result, "Registrant Organization")
    only_record(result, "Registrant Fax")


# The email and the contact URI


@pytest.mark.parametrize("role", [REGISTRANT, TECHNICAL])
def test_a_redacted_email_is_replaced_by_the_contact_form(role: ContactRole) -> None:
    result = redact(role, Persona.ANONYMOUS)
    assert "email" not in result.shown
    assert result.contact_uri == FORM
    record = only_record(result, f"{'Registrant' if role is REGISTRANT else 'Tech'} Email")
    assert record.method is RedactionMethod.REPLACEMENT_VALUE
    assert record.replacement_path is not None
    assert record.replacement_path.endswith("[?(@[0]=='contact-uri')]")


def test_a_consented_email_is_shown_and_not_replaced() -> None:
    result = redact(REGISTRANT, Persona.ANONYMOUS, consent={"email"})
    assert result.shown["email"] == "jane@example.net"
    assert result.contact_uri is None


def test_a_redaction_renders_as_an_rfc_9537_member() -> None:
    record = only_record(redact(REGISTRANT, Persona.ANONYMOUS), "Registrant Email")
    assert record.as_rdap() == {
        "name": {"type": "Registrant Email"},
        "prePath": REGISTRANT_CARD + "[?(@[0]=='email')]",
        "replacementPath": REGISTRANT_CARD + "[?(@[0]=='contact-uri')]",
        "pathLang": "jsonpath",
        "method": "replacementValue",
        "reason": {"description": "Server policy"},
    }
    name = only_record(redact(REGISTRANT, Persona.ANONYMOUS), "Registrant Name").as_rdap()
    assert name["postPath"] == REGISTRANT_CARD + "[?(@[0]=='fn')][3]"
    assert name["method"] == "emptyValue"
    assert "prePath" not in name and "replacementPath" not in name


# Disclosed


def opened(role: ContactRole) -> dict[ContactRole, frozenset[str]]:
    """An approval of every field the role's contact redacts."""
    return {role: frozenset(rule.field for rule in REDACTED_ROWS if rule.role is role)}


@pytest.mark.parametrize("rule", REDACTION_TABLE, ids=row_id)
def test_disclosed_sees_each_field_of_a_covered_contact(rule: RedactionRule) -> None:
    result = redact(rule.role, Persona.DISCLOSED, disclosed=opened(rule.role))
    assert result.shown[rule.field] == CONTACT[rule.field]
    assert result.redactions == ()
    assert result.contact_uri is None


@pytest.mark.parametrize("rule", REDACTED_ROWS, ids=row_id)
def test_disclosed_gets_a_contact_the_approval_does_not_cover_redacted(
        rule: RedactionRule) -> None:
    other = TECHNICAL if rule.role is REGISTRANT else REGISTRANT
    assert_redacted_as_the_row_says(
        redact(rule.role, Persona.DISCLOSED, disclosed=opened(other)), rule)


@pytest.mark.parametrize("rule", REDACTED_ROWS, ids=row_id)
def test_disclosed_gets_every_field_the_approval_does_not_name_redacted(
        rule: RedactionRule) -> None:
    others = opened(rule.role)[rule.role] - {rule.field}
    result = redact(rule.role, Persona.DISCLOSED, disclosed={rule.role: others})
    assert_redacted_as_the_row_says(result, rule)
    assert set(result.shown) == others | {r.field for r in REDACTION_TABLE
                                          if r.role is rule.role and r.public}


def test_disclosure_of_the_registrant_leaves_the_tech_contact_redacted() -> None:
    covered = opened(REGISTRANT)
    registrant = redact(REGISTRANT, Persona.DISCLOSED, disclosed=covered)
    tech = redact(TECHNICAL, Persona.DISCLOSED, disclosed=covered)
    assert dict(registrant.shown) == {key: value for key, value in CONTACT.items()
                                      if key in {r.field for r in rules_for(REGISTRANT)}}
    assert dict(tech.shown) == {}
    assert tech.contact_uri == FORM


def test_disclosed_without_an_approval_reads_like_anonymous() -> None:
    assert redact(REGISTRANT, Persona.DISCLOSED) == redact(REGISTRANT, Persona.ANONYMOUS)


def test_disclosed_does_not_see_fields_the_contact_has_no_value_for() -> None:
    result = redact(REGISTRANT, Persona.DISCLOSED, {**CONTACT, "fax": None},
                    disclosed=opened(REGISTRANT))
    assert "fax" not in result.shown


# Staff


@pytest.mark.parametrize("rule", REDACTION_TABLE, ids=row_id)
def test_staff_sees_each_row(rule: RedactionRule) -> None:
    result = redact(rule.role, Persona.STAFF)
    assert result.shown[rule.field] == CONTACT[rule.field]
    assert result.redactions == ()


@pytest.mark.parametrize("role", [REGISTRANT, TECHNICAL])
def test_staff_sees_every_field_and_gets_no_records_or_contact_form(role: ContactRole) -> None:
    result = redact(role, Persona.STAFF)
    assert dict(result.shown) == CONTACT
    assert result.redactions == ()
    assert result.contact_uri is None


def test_personas_and_roles_may_be_given_as_their_text() -> None:
    assert redact_contact(CONTACT, "technical", "staff", contact_uri=FORM) == redact(
        TECHNICAL, Persona.STAFF)


def test_the_result_cannot_be_changed() -> None:
    result = redact(REGISTRANT, Persona.STAFF)
    with pytest.raises(TypeError):
        result.shown["email"] = "someone@else.example"  # type: ignore[index]


# Bad input


def test_an_unknown_persona_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown persona 'public'"):
        redact_contact(CONTACT, REGISTRANT, "public", contact_uri=FORM)


def test_a_persona_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="persona"):
        redact_contact(CONTACT, REGISTRANT, 1, contact_uri=FORM)  # type: ignore[arg-type]


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role 'administrative'"):
        redact_contact(CONTACT, "administrative", Persona.ANONYMOUS, contact_uri=FORM)


def test_a_contact_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(TypeError, match="mapping"):
        redact_contact([("name", "Jane")], REGISTRANT, Persona.ANONYMOUS,  # type: ignore[arg-type]
                       contact_uri=FORM)


def test_a_consent_given_as_one_string_is_refused() -> None:
    with pytest.raises(TypeError, match="consent"):
        redact(REGISTRANT, Persona.ANONYMOUS, consent="email")


def test_a_consent_to_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="consent names unknown contact fields: org"):
        redact(REGISTRANT, Persona.ANONYMOUS, consent={"org"})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        redact_contact({**CONTACT, "handle": "C1-EX", "mail": "x"}, REGISTRANT,
                       Persona.ANONYMOUS, contact_uri="ftp://registrar.example/form",
                       disclosed=opened(REGISTRANT))
    message = str(raised.value)
    for expected in ("'handle'", "'mail'", "disclosed persona", "https"):
        assert expected in message


@pytest.mark.parametrize("uri", ["mailto:abuse@registrar.example", "https:///form", ""])
def test_a_contact_uri_that_is_not_an_https_web_form_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="contact_uri"):
        redact_contact(CONTACT, REGISTRANT, Persona.ANONYMOUS, contact_uri=uri)


def test_disclosed_roles_must_be_roles_and_fields_contact_fields() -> None:
    with pytest.raises(ValueError, match="unknown disclosed role 'admin'"):
        redact(REGISTRANT, Persona.DISCLOSED, disclosed={"admin": {"name"}})
    with pytest.raises(ValueError, match="disclosed names unknown contact fields: handle"):
        redact(REGISTRANT, Persona.DISCLOSED, disclosed={REGISTRANT: {"handle"}})


@pytest.mark.parametrize(("role", "name"), [(ContactRole.REGISTRANT, "Registry Registrant ID"),
                                            (ContactRole.TECHNICAL, "Registry Tech ID")])
def test_a_contact_handle_is_removed_for_everyone_but_staff(
        role: ContactRole, name: str) -> None:
    hidden = handle_redaction(role, Persona.ANONYMOUS)
    assert hidden is not None
    assert hidden.as_rdap() == {
        "name": {"type": name},
        "prePath": f"$.entities[?(@.roles[0]=='{role}')].handle",
        "pathLang": "jsonpath", "method": "removal", "reason": {"description": "Server policy"}}
    assert handle_redaction(role, Persona.STAFF) is None
    # A disclosure approves fields of a contact; the handle, which links every domain of one
    # registrant, is not one of them.
    assert handle_redaction(role, Persona.DISCLOSED) == hidden


def test_an_installation_served_over_plain_http_still_names_its_form() -> None:
    seen = redact_contact({"email": "a@example.net"}, ContactRole.TECHNICAL, Persona.ANONYMOUS,
                          contact_uri="http://127.0.0.1:8080/contact/x.test/technical")
    assert seen.contact_uri == "http://127.0.0.1:8080/contact/x.test/technical"
