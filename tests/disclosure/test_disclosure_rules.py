"""The disclosure rules on their own: deadlines on the business-day calendar, what a valid
request and decision are, and the states a request goes through."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from regshield.errors import ValidationFailed
from regshield.rules.disclosure import (
    DEFAULT_APPROVAL,
    BusinessCalendar,
    DisclosureRefused,
    DisclosureState,
    Purpose,
    ack_due,
    acknowledge,
    decide,
    decision_due,
    queue_order,
    receive,
    validate_decision,
    validate_request,
    withdraw,
)
from regshield.rules.redaction import ContactRole

FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REGISTRANT = frozenset({ContactRole.REGISTRANT})


def request_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "domain": "example.test", "requester_name": "Det. Alex Doe",
        "requester_email": "alex.doe@police.example", "requester_organization": "Example Police",
        "purpose": "law_enforcement", "legal_basis": "Art. 6(1)(c) GDPR; case 2026/1234",
        "roles": ["registrant"], "fields": ["name", "email"],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def errors_of(failed: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {error.field: error.code for error in failed.value.errors}


def test_a_friday_request_is_acknowledged_by_tuesday_at_the_same_hour() -> None:
    assert ack_due(FRIDAY_NOON) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_saturday_request_counts_from_monday_morning() -> None:
    saturday = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    assert ack_due(saturday) == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


def test_a_holiday_does_not_count_as_a_business_day() -> None:
    calendar = BusinessCalendar(holidays=frozenset({date(2026, 11, 30)}))
    assert ack_due(FRIDAY_NOON, calendar) == datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_decision_is_due_thirty_calendar_days_after_receipt() -> None:
    assert decision_due(FRIDAY_NOON) == datetime(2026, 12, 27, 12, 0, tzinfo=UTC)


def test_a_valid_request_is_normalized() -> None:
    checked = validate_request(request_body(domain="EXAMPLE.test.", roles=["registrant",
                                                                           "registrant"]))
    assert checked.domain.ascii == "example.test"
    assert checked.purpose is Purpose.LAW_ENFORCEMENT
    assert checked.roles == REGISTRANT
    assert checked.fields == ("name", "email")


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_request(request_body(domain="-bad-.test", requester_name=" ",
                                      requester_email="not an address", purpose="curiosity",
                                      legal_basis=..., roles=["admin"], fields=["password"],
                                      colour="blue"))
    assert errors_of(failed) == {
        "domain": errors_of(failed)["domain"], "requester_name": "required",
        "requester_email": "invalid_email", "purpose": "unknown_purpose",
        "legal_basis": "required", "roles.0": "unknown_role", "fields.0": "not_disclosable",
        "colour": "unknown_field"}


def test_purpose_other_needs_a_detail_and_tech_fields_follow_the_profile() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_request(request_body(purpose="other", roles=["technical"],
                                      fields=["name", "street"]))
    # The profile publishes no street of a tech contact, so none can be disclosed.
    assert errors_of(failed) == {"purpose_detail": "required", "fields.1": "not_disclosable"}


def received(requester: str | None = "usr_1",
             fields: tuple[str, ...] = ("name", "organization", "street")) -> Any:
    return receive("dsc_1", REGISTRANT, now=FRIDAY_NOON, requester_user=requester,
                   fields=fields)


def test_a_denial_without_rationale_is_refused_naming_the_rationale() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_decision({"decision": "denied"}, received(), now=FRIDAY_NOON)
    assert errors_of(failed) == {"rationale": "required"}


def test_an_anonymous_request_can_be_denied_but_not_approved() -> None:
    record = received(requester=None)
    with pytest.raises(ValidationFailed) as failed:
        validate_decision({"decision": "approved", "rationale": "ok"}, record, now=FRIDAY_NOON)
    assert errors_of(failed) == {"decision": "requester_not_authenticated"}
    denial = validate_decision({"decision": "denied", "rationale": "no legal basis shown"},
                               record, now=FRIDAY_NOON)
    assert decide(record, denial, by="user:x", now=FRIDAY_NOON).state is DisclosureState.DENIED


def test_an_approval_lasts_thirty_days_by_default_and_then_grants_nothing() -> None:
    record = acknowledge(received(), by="user:officer", now=FRIDAY_NOON)
    checked = validate_decision({"decision": "approved", "rationale": "lawful order"}, record,
                                now=FRIDAY_NOON)
    approved = decide(record, checked, by="user:officer", now=FRIDAY_NOON)
    assert approved.expires_at == FRIDAY_NOON + DEFAULT_APPROVAL
    assert approved.grants(FRIDAY_NOON + timedelta(days=29)) == {
        ContactRole.REGISTRANT: {"name", "organization", "street"}}
    assert approved.grants(FRIDAY_NOON + DEFAULT_APPROVAL) == {}
    assert approved.status(FRIDAY_NOON + DEFAULT_APPROVAL) == "expired"


def test_an_approval_expiry_must_be_ahead_and_roles_among_those_asked() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_decision({"decision": "approved", "rationale": "ok",
                           "expires_at": FRIDAY_NOON - timedelta(seconds=1),
                           "roles": ["technical"]}, received(), now=FRIDAY_NOON)
    assert errors_of(failed) == {"expires_at": "in_the_past", "roles": "not_asked"}


def test_an_approval_grants_the_fields_asked_for_and_never_a_field_not_asked() -> None:
    record = received(fields=("name", "organization", "street"))
    narrowed = validate_decision({"decision": "approved", "rationale": "ok",
                                  "fields": ["name"]}, record, now=FRIDAY_NOON)
    assert decide(record, narrowed, by="user:o", now=FRIDAY_NOON).grants(FRIDAY_NOON) == {
        ContactRole.REGISTRANT: {"name"}}
    with pytest.raises(ValidationFailed) as failed:
        validate_decision({"decision": "approved", "rationale": "ok",
                           "fields": ["name", "phone", "email"]}, record, now=FRIDAY_NOON)
    assert errors_of(failed) == {"fields.1": "not_asked", "fields.2": "not_asked"}
    whole = validate_decision({"decision": "approved", "rationale": "ok"}, record,
                              now=FRIDAY_NOON)
    granted = decide(record, whole, by="user:o", now=FRIDAY_NOON).grants(FRIDAY_NOON)
    assert granted == {ContactRole.REGISTRANT: {"name", "organization", "street"}}


def test_steps_out_of_order_are_refused() -> None:
    record = acknowledge(received(), by="user:officer", now=FRIDAY_NOON)
    with pytest.raises(DisclosureRefused):
        acknowledge(record, by="user:officer", now=FRIDAY_NOON)
    denial = validate_decision({"decision": "denied", "rationale": "no"}, record,
                               now=FRIDAY_NOON)
    denied = decide(record, denial, by="user:officer", now=FRIDAY_NOON)
    with pytest.raises(DisclosureRefused):
        decide(denied, denial, by="user:officer", now=FRIDAY_NOON)
    with pytest.raises(DisclosureRefused):
        withdraw(denied, by="user:requester", now=FRIDAY_NOON)


def test_the_queue_puts_overdue_acknowledgements_first_then_the_nearest_deadline() -> None:
    old = receive("dsc_old", REGISTRANT, now=FRIDAY_NOON, requester_user=None)
    acknowledged = acknowledge(receive("dsc_ack", REGISTRANT, now=FRIDAY_NOON,
                                       requester_user=None),
                               by="user:officer", now=FRIDAY_NOON)
    later = FRIDAY_NOON + timedelta(days=4)
    new = receive("dsc_new", REGISTRANT, now=later, requester_user=None)
    now = later + timedelta(hours=1)
    assert old.ack_overdue(now) and not new.ack_overdue(now)
    assert [r.public_id for r in queue_order([new, acknowledged, old], now)] == \
        ["dsc_old", "dsc_new", "dsc_ack"]
