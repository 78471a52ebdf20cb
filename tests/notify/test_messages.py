"""Composing notices: each kind of change says what changed, when, through which channel and
from where, by whom, the reference to quote and where to report it; nothing about the
recipient but the address it goes to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from regshield.notify.messages import (
    TEMPLATES,
    Change,
    Letterhead,
    Notice,
    compose,
    detail_problems,
)

OCCURRED = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
LETTERHEAD = Letterhead("Example Registrar", "notices@registrar.test", "abuse@registrar.test")
RECIPIENT = "jane@example.net"

# For each kind: details, and what the body must say about them.
SAMPLES: dict[Change, tuple[dict[str, Any], list[str]]] = {
    Change.NAMESERVERS: (
        {"before": ["ns1.old.test", "ns2.old.test"], "after": ["ns1.evil.test"]},
        ["nameservers", "ns1.old.test, ns2.old.test", "ns1.evil.test"]),
    Change.DS_RECORDS: (
        {"before": ["12345 13 2 " + "AB" * 32], "after": []},
        ["DS records", "12345 13 2 " + "AB" * 32, "(none)", "DNSSEC validation"]),
    Change.REGISTRANT: (
        {"before": "RS-AAAAAAAAAA", "after": "RS-BBBBBBBBBB"},
        ["registrant", "RS-AAAAAAAAAA", "RS-BBBBBBBBBB"]),
    Change.REGISTRANT_DATA: (
        {"contact": "RS-AAAAAAAAAA", "fields": ["email", "name"],
         "domains": ["example.test", "example.org"],
         "transfer_lock_until": "2027-01-26T12:00:05+00:00", "opted_out": False},
        ["change of registrant", "contact RS-AAAAAAAAAA", "example.test, example.org",
         "email, name", "previous and new email address",
         "transferred to another registrar until 2027-01-26 12:00:05 UTC"]),
    Change.CONTACT: (
        {"contact": "RS-AAAAAAAAAA", "fields": ["email", "phone"]},
        ["contact RS-AAAAAAAAAA", "email, phone"]),
    Change.REGISTRAR_LOCK: ({"locked": False}, ["registrar lock was turned off"]),
    Change.REGISTRY_LOCK: ({"locked": True}, ["Registry lock was turned on"]),
    Change.TRANSFER_CODE: (
        {"expires_at": "2026-12-11T12:00:05+00:00"},
        ["transfer authorization code", "2026-12-11 12:00:05 UTC"]),
    Change.TRANSFER_REQUESTED: (
        {"completes_at": "2026-12-02T13:00:05+01:00", "gaining_registrar": "Other Registrar"},
        ["transfer", "Other Registrar", "completes on 2026-12-02 12:00:05 UTC"]),
    Change.TRANSFER_APPROVED: (
        {"completes_at": "2026-12-02T12:00:05+00:00"},
        ["approved", "completes on 2026-12-02 12:00:05 UTC"]),
    Change.SECOND_FACTOR: ({"user": "usr_owner", "enabled": False},
                           ["Two-factor authentication", "turned off", "usr_owner"]),
    Change.PASSWORD_CHANGED: ({"user": "usr_owner"}, ["password of user usr_owner"]),
    Change.RECOVERY_CODES: ({"user": "usr_owner"}, ["new recovery codes", "usr_owner"]),
    Change.API_TOKEN: ({"user": "usr_owner", "token": "tok_1", "scopes": ["*"],
                        "expires_at": "2027-02-25T12:00:00+00:00"},
                       ["new API token tok_1", "usr_owner", "2027-02-25 12:00:00 UTC"]),
    Change.LOGIN_ADDRESS: ({"user": "usr_owner", "method": "password+totp"},
                           ["usr_owner signed in", "not used for this user before"]),
    Change.ACCURACY_VERIFICATION: (
        {"contact": "RS-AAAAAAAAAA", "domains": ["example.test"],
         "deadline": "2026-12-12T12:00:05+00:00"},
        ["verification link", "RS-AAAAAAAAAA", "example.test", "2026-12-12 12:00:05 UTC"]),
    Change.ACCURACY_REMINDER: (
        {"contact": "RS-AAAAAAAAAA", "domains": ["example.test"],
         "deadline": "2026-12-12T12:00:05+00:00"},
        ["reminder", "RS-AAAAAAAAAA", "2026-12-12 12:00:05 UTC"]),
    Change.ACCURACY_SUSPENDED: ({"contact": "RS-AAAAAAAAAA"},
                                ["suspended", "clientHold", "RS-AAAAAAAAAA"]),
    Change.ACCURACY_LIFTED: ({"contact": "RS-AAAAAAAAAA"}, ["lifted", "RS-AAAAAAAAAA"]),
    Change.ZONE_APEX: ({"zone": "example.test.", "action": "changed", "types": ["NS"]},
                       ["apex", "example.test.", "NS"]),
    Change.ZONE_SUSPENDED: ({"zone": "example.test."},
                            ["suspended", "example.test.", "another account"]),
    Change.ZONE_DS_HELD: ({"zone": "example.test.", "ds": ["12345 13 2 " + "ab" * 32]},
                          ["did not put there", "12345 13 2", "/ds/takeover"]),
}


def notice(change: Change, details: dict[str, Any] | None = None, *,
           domain: str | None = "example.test", **changes: Any) -> Notice:
    values: dict[str, Any] = {
        "change": change, "details": SAMPLES[change][0] if details is None else details,
        "domain": domain if TEMPLATES[change].about_domain else None,
        "actor": "user:usr_actor", "channel": "api", "source_address": "192.0.2.10",
        "request_id": "req_0123456789abcdef", "occurred_at": OCCURRED,
        "event": "domains:domain:updated",
    }
    values.update(changes)
    return Notice(**values)


def test_every_kind_of_change_has_a_sample() -> None:
    assert set(SAMPLES) == set(Change) == set(TEMPLATES)


@pytest.mark.parametrize("change", list(Change))
def test_notice_says_what_changed_when_from_where_by_whom_and_how_to_report(
        change: Change) -> None:
    message = compose(notice(change), RECIPIENT, LETTERHEAD, sent_at=OCCURRED, event_seq=42)
    text = message.get_content()

    for expected in SAMPLES[change][1]:
        assert expected.lower() in text.lower()
    assert "2026-11-27 12:00:05 UTC" in text
    assert "the API, from address 192.0.2.10" in text
    assert "user usr_actor" in text
    assert "request req_0123456789abcdef, event #42" in text
    assert "abuse@registrar.test" in text and "did not" in text
    if TEMPLATES[change].about_domain:
        assert "example.test" in text and message["Subject"].endswith(": example.test")
    assert message["Subject"].startswith("[Example Registrar] ")


@pytest.mark.parametrize("change", list(Change))
def test_notice_holds_nothing_about_the_recipient_but_the_to_header(change: Change) -> None:
    message = compose(notice(change), RECIPIENT, LETTERHEAD, sent_at=OCCURRED)

    assert message["To"] == RECIPIENT
    assert RECIPIENT not in message.get_content()
    assert "jane" not in message.get_content().lower()
    for header, value in message.items():
        if header != "To":
            assert RECIPIENT not in str(value)


def test_notice_is_plain_text_marked_automatic_with_reply_to_the_report_address() -> None:
    message = compose(notice(Change.NAMESERVERS), RECIPIENT, LETTERHEAD, sent_at=OCCURRED)

    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Reply-To"] == "abuse@registrar.test"
    assert message["From"] == "Example Registrar <notices@registrar.test>"
    assert message["Date"] == "Fri, 27 Nov 2026 12:00:05 +0000"
    assert message["Message-ID"].endswith("@registrar.test>")


def test_message_id_is_the_same_on_every_attempt_and_differs_per_recipient() -> None:
    first = compose(notice(Change.NAMESERVERS), RECIPIENT, LETTERHEAD, sent_at=OCCURRED)
    again = compose(notice(Change.NAMESERVERS), RECIPIENT.upper(), LETTERHEAD,
                    sent_at=OCCURRED + timedelta(hours=1))
    other = compose(notice(Change.NAMESERVERS), "joe@example.net", LETTERHEAD, sent_at=OCCURRED)
    later_change = compose(notice(Change.NAMESERVERS, request_id="req_fedcba9876543210"),
                           RECIPIENT, LETTERHEAD, sent_at=OCCURRED)

    assert first["Message-ID"] == again["Message-ID"]
    assert len({first["Message-ID"], other["Message-ID"], later_change["Message-ID"]}) == 3


def test_without_a_report_address_the_notice_names_the_registrar_to_contact() -> None:
    letterhead = Letterhead("Example Registrar", "notices@registrar.test")
    message = compose(notice(Change.REGISTRAR_LOCK), RECIPIENT, letterhead, sent_at=OCCURRED)

    assert message["Reply-To"] is None
    assert "contact Example Registrar, quoting the reference" in message.get_content()


def test_a_change_made_from_the_command_line_names_no_address() -> None:
    message = compose(notice(Change.REGISTRY_LOCK, channel="cli", source_address=None,
                             actor="system:cli"), RECIPIENT, LETTERHEAD, sent_at=OCCURRED)

    assert "Through:    the command line\n" in message.get_content()
    assert "By:         regshield (cli)" in message.get_content()


def test_payload_round_trips_and_its_key_is_stable() -> None:
    original = notice(Change.TRANSFER_REQUESTED)
    again = Notice.from_payload(original.as_payload())

    assert again == original
    assert again.key == original.key
    assert notice(Change.TRANSFER_REQUESTED, domain="other.test").key != original.key


def test_details_are_checked_with_every_reason_named() -> None:
    problems = detail_problems(Change.NAMESERVERS, None, {
        "before": ["ns1.example.test"], "owner": "x", "after": ["hostmaster@example.test"]})

    assert problems == [
        "details.owner is not a detail of nameservers",
        "details.after must be short text, numbers or booleans, and never an email address",
        "a notice of nameservers names its domain",
    ]


def test_times_in_details_need_a_zone() -> None:
    assert detail_problems(Change.TRANSFER_APPROVED, "example.test",
                           {"completes_at": "2026-12-02T12:00:00"}) == [
        "details.completes_at must be an ISO 8601 time with a zone"]


def test_a_malformed_payload_is_refused_as_such() -> None:
    payload = notice(Change.NAMESERVERS).as_payload()
    del payload["request_id"]
    with pytest.raises(ValueError, match="malformed notice payload"):
        Notice.from_payload(payload)
    with pytest.raises(ValueError, match="unknown"):
        Notice.from_payload({**notice(Change.NAMESERVERS).as_payload(), "change": "unknown"})


def test_a_line_break_in_a_value_cannot_add_a_header() -> None:
    assert detail_problems(Change.NAMESERVERS, "example.test\nBcc: x",
                           {"before": [], "after": ["ns1.test\r\nBcc: y"]}) != []
