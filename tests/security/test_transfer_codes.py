"""Transfer codes (security/transfer_codes.py): strong per RFC 9154, stored only salted and
hashed, short-lived per the Transfer Policy in force."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from regshield.policy.transfer import POLICY_2016, transfer_policy
from regshield.security.transfer_codes import (
    CHARACTER_CLASSES,
    TRANSFER_CODE_ALPHABET,
    TRANSFER_CODE_ENTROPY_BITS,
    TRANSFER_CODE_LENGTH,
    codes_with_every_class,
    entropy_bits,
    new_transfer_code,
    transfer_code_expiry,
    transfer_code_hash,
    verify_transfer_code,
)

DRAWS = 5000


@pytest.fixture(scope="module")
def drawn() -> list[str]:
    return [new_transfer_code() for _ in range(DRAWS)]


def test_entropy_is_length_times_log2_of_the_alphabet() -> None:
    # RFC 9154 §4.1's example: 20 characters from the 94 printable ASCII characters.
    assert entropy_bits(94, 20) == pytest.approx(131.09, abs=0.01)
    assert entropy_bits(94, 19) < 128 <= entropy_bits(94, 20)
    assert entropy_bits(64, 22) == 132
    assert entropy_bits(2, 128) == 128


def test_transfer_codes_carry_at_least_128_bits_of_entropy() -> None:
    assert TRANSFER_CODE_ENTROPY_BITS >= 128
    # Requiring every kind of character costs less than a bit of the unconstrained figure.
    unconstrained = entropy_bits(len(TRANSFER_CODE_ALPHABET), TRANSFER_CODE_LENGTH)
    assert unconstrained - 1 < TRANSFER_CODE_ENTROPY_BITS < unconstrained


def test_counting_codes_with_every_class_matches_enumeration() -> None:
    classes = ("ab", "0", "-")
    every = [a + b + c for a in "ab0-" for b in "ab0-" for c in "ab0-"
             if all(any(ch in kind for ch in a + b + c) for kind in classes)]
    assert codes_with_every_class(classes, 3) == len(every) == 12
    assert math.log2(codes_with_every_class(("ab",), 4)) == 4


def test_transfer_codes_use_only_the_documented_alphabet(drawn: list[str]) -> None:
    assert len(set(TRANSFER_CODE_ALPHABET)) == len(TRANSFER_CODE_ALPHABET) >= 64
    assert all(len(code) == TRANSFER_CODE_LENGTH for code in drawn)
    assert set("".join(drawn)) <= set(TRANSFER_CODE_ALPHABET)


def test_the_alphabet_needs_no_escaping_in_xml_urls_or_a_shell() -> None:
    assert TRANSFER_CODE_ALPHABET.isascii() and TRANSFER_CODE_ALPHABET.isprintable()
    assert not set(TRANSFER_CODE_ALPHABET) & set(" \t<>&\"'\\`$%/;|")


def test_transfer_codes_fit_what_strict_registries_accept(drawn: list[str]) -> None:
    # Identity Digital: 8 to 32 characters with a letter, a digit and a special character.
    assert 8 <= TRANSFER_CODE_LENGTH <= 32
    for code in drawn:
        assert all(any(ch in kind for ch in code) for kind in CHARACTER_CLASSES), code


def test_every_symbol_of_the_alphabet_is_drawn(drawn: list[str]) -> None:
    # 120,000 characters over 70 symbols: a symbol missing means a biased generator.
    assert set("".join(drawn)) == set(TRANSFER_CODE_ALPHABET)


def test_each_transfer_code_is_new(drawn: list[str]) -> None:
    assert len(set(drawn)) == DRAWS


def test_a_stored_hash_verifies_its_code_and_no_other() -> None:
    code = new_transfer_code()
    stored = transfer_code_hash(code)
    assert verify_transfer_code(code, stored)
    assert not verify_transfer_code(new_transfer_code(), stored)
    assert not verify_transfer_code(code[:-1], stored)
    assert not verify_transfer_code(code.swapcase(), stored)
    assert not verify_transfer_code("", stored)


def test_a_pasted_code_with_surrounding_whitespace_verifies() -> None:
    code = new_transfer_code()
    assert verify_transfer_code(f"  {code}\n", transfer_code_hash(code))


def test_the_stored_hash_is_a_salted_sha256_and_does_not_contain_the_code() -> None:
    code = new_transfer_code()
    stored = transfer_code_hash(code)
    scheme, salt, digest = stored.split("$")
    assert scheme == "sha256"
    assert len(bytes.fromhex(salt)) == 16  # RFC 9154 §4.3: a salt of at least 128 bits
    assert digest == hashlib.sha256(bytes.fromhex(salt) + code.encode()).hexdigest()
    assert code not in stored


def test_hashing_the_same_code_twice_gives_different_hashes() -> None:
    code = new_transfer_code()
    first, second = transfer_code_hash(code), transfer_code_hash(code)
    assert first != second
    assert verify_transfer_code(code, first) and verify_transfer_code(code, second)


@pytest.mark.parametrize("stored", [
    "",
    "plaintext-code",
    "md5$00112233445566778899aabbccddeeff$" + "0" * 64,
    "sha256$0011$" + "0" * 64,
    "sha256$00112233445566778899aabbccddeeff$" + "0" * 63,
    "sha256$00112233445566778899aabbccddeeff$" + "z" * 64,
])
def test_a_corrupt_stored_hash_is_an_error_not_a_wrong_code(stored: str) -> None:
    with pytest.raises(ValueError, match="not a transfer code hash"):
        verify_transfer_code(new_transfer_code(), stored)


def test_a_transfer_code_expires_14_days_after_issue() -> None:
    issued = datetime(2026, 11, 27, 15, 4, 5, tzinfo=UTC)
    policy = transfer_policy(issued, None)
    assert transfer_code_expiry(issued, policy) == datetime(2026, 12, 11, 15, 4, 5, tzinfo=UTC)


def test_the_expiry_follows_the_policy_ttl() -> None:
    issued = datetime(2026, 11, 27, tzinfo=UTC)
    shorter = replace(POLICY_2016, transfer_code_ttl=timedelta(days=7))
    assert transfer_code_expiry(issued, shorter) == issued + timedelta(days=7)


def test_a_naive_issue_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        transfer_code_expiry(datetime(2026, 11, 27), POLICY_2016)
