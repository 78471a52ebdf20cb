"""TOTP codes (RFC 6238) with a drift window and replay protection; recovery codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp

from regshield.security.totp import (
    RECOVERY_ALPHABET,
    STEP_SECONDS,
    TotpOutcome,
    check_code,
    code_at,
    looks_like_recovery_code,
    new_recovery_code,
    new_secret,
    normalize_recovery_code,
    provisioning_uri,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 27, 12, 0, 10, tzinfo=UTC)
STEP = timedelta(seconds=STEP_SECONDS)


def counter_of(moment: datetime) -> int:
    return int(moment.timestamp()) // STEP_SECONDS


def test_current_code_is_accepted_and_reports_its_time_step() -> None:
    check = check_code(SECRET, code_at(SECRET, NOW), NOW, None)
    assert check.outcome is TotpOutcome.ACCEPTED
    assert check.counter == counter_of(NOW)


def test_code_matches_what_an_authenticator_app_shows() -> None:
    assert code_at(SECRET, NOW) == pyotp.TOTP(SECRET).at(NOW)


def test_code_one_step_early_or_late_is_accepted_for_clock_drift() -> None:
    for offset in (-1, 1):
        code = code_at(SECRET, NOW + offset * STEP)
        check = check_code(SECRET, code, NOW, None)
        assert check.outcome is TotpOutcome.ACCEPTED
        assert check.counter == counter_of(NOW) + offset


def test_code_two_steps_away_is_refused() -> None:
    for offset in (-2, 2):
        code = code_at(SECRET, NOW + offset * STEP)
        if code in {code_at(SECRET, NOW + k * STEP) for k in (-1, 0, 1)}:
            continue  # a one-in-a-million collision with a code inside the window
        assert check_code(SECRET, code, NOW, None).outcome is TotpOutcome.INVALID


def test_totp_code_is_refused_when_replayed() -> None:
    code = code_at(SECRET, NOW)
    first = check_code(SECRET, code, NOW, None)
    again = check_code(SECRET, code, NOW, first.counter)
    assert again.outcome is TotpOutcome.REPLAYED


def test_code_older_than_the_last_accepted_one_is_refused_as_replay() -> None:
    last = counter_of(NOW)
    earlier = code_at(SECRET, NOW - STEP)
    assert check_code(SECRET, earlier, NOW, last).outcome is TotpOutcome.REPLAYED


def test_code_of_the_next_step_is_accepted_after_a_use() -> None:
    last = counter_of(NOW)
    later = NOW + STEP
    check = check_code(SECRET, code_at(SECRET, later), later, last)
    assert check.outcome is TotpOutcome.ACCEPTED
    assert check.counter == last + 1


def test_code_of_another_secret_is_refused() -> None:
    other = new_secret()
    code = code_at(other, NOW)
    if code in {code_at(SECRET, NOW + k * STEP) for k in (-1, 0, 1)}:
        return  # a one-in-a-million collision
    assert check_code(SECRET, code, NOW, None).outcome is TotpOutcome.INVALID


def test_spaces_in_a_typed_code_are_ignored() -> None:
    code = code_at(SECRET, NOW)
    typed = f" {code[:3]} {code[3:]} "
    assert check_code(SECRET, typed, NOW, None).outcome is TotpOutcome.ACCEPTED


def test_malformed_codes_are_invalid() -> None:
    code = code_at(SECRET, NOW)
    for typed in ("", code[:5], code + "0", "12345a", "abcdef", "١٢٣٤٥٦"):
        assert check_code(SECRET, typed, NOW, None).outcome is TotpOutcome.INVALID, typed


def test_new_secrets_are_base32_with_160_bits_or_more_and_differ() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(first) * 5 >= 160
    pyotp.TOTP(first).now()  # decodes as base32


def test_provisioning_uri_names_issuer_and_account_and_carries_the_secret() -> None:
    uri = provisioning_uri(SECRET, "ada@example.net", "regshield")
    parsed = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/")
    assert parsed.secret == SECRET
    assert parsed.issuer == "regshield"
    assert parsed.name == "ada@example.net"


def test_recovery_codes_are_four_groups_of_four_unambiguous_characters() -> None:
    code = new_recovery_code()
    groups = code.split("-")
    assert [len(g) for g in groups] == [4, 4, 4, 4]
    assert set("".join(groups)) <= set(RECOVERY_ALPHABET)
    assert not set("0o1li") & set(RECOVERY_ALPHABET)


def test_recovery_codes_are_unique() -> None:
    assert len({new_recovery_code() for _ in range(200)}) == 200


def test_recovery_code_is_normalized_regardless_of_case_spaces_and_dashes() -> None:
    code = new_recovery_code()
    plain = code.replace("-", "")
    assert normalize_recovery_code(code) == plain
    assert normalize_recovery_code(code.upper()) == plain
    assert normalize_recovery_code(" ".join(code.split("-"))) == plain
    assert normalize_recovery_code(plain) == plain


def test_recovery_code_is_told_apart_from_a_totp_code() -> None:
    assert looks_like_recovery_code(new_recovery_code())
    assert looks_like_recovery_code(new_recovery_code().upper())
    assert not looks_like_recovery_code(code_at(SECRET, NOW))
    assert not looks_like_recovery_code("234567")
    assert not looks_like_recovery_code(new_recovery_code()[:-1])
