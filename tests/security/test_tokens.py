"""Bearer credentials: prefixed, random, stored only as digests."""

from __future__ import annotations

import hashlib

from regshield.security.tokens import (
    API_TOKEN_PREFIX,
    SESSION_PREFIX,
    digest,
    new_credential,
    new_public_id,
)


def test_api_tokens_and_console_sessions_have_prefixes_that_tell_them_apart() -> None:
    token, _ = new_credential(API_TOKEN_PREFIX)
    session, _ = new_credential(SESSION_PREFIX)
    assert token.startswith("rs_") and not token.startswith("rss_")
    assert session.startswith("rss_")
    assert not session.startswith(API_TOKEN_PREFIX)


def test_credential_carries_256_random_bits() -> None:
    value, _ = new_credential(API_TOKEN_PREFIX)
    # token_urlsafe(32): 32 bytes -> 43 base64url characters.
    assert len(value) - len(API_TOKEN_PREFIX) >= 43


def test_each_credential_is_new() -> None:
    values = {new_credential(API_TOKEN_PREFIX)[0] for _ in range(100)}
    assert len(values) == 100


def test_digest_is_the_sha256_of_the_value_and_does_not_contain_it() -> None:
    value, stored = new_credential(API_TOKEN_PREFIX)
    assert stored == digest(value) == hashlib.sha256(value.encode()).hexdigest()
    assert value not in stored
    assert digest(value + "x") != stored


def test_public_ids_are_prefixed_and_not_sequential() -> None:
    first, second = new_public_id("tok"), new_public_id("tok")
    assert first.startswith("tok_") and second.startswith("tok_")
    assert first != second
