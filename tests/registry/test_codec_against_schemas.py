"""Everything the codec writes is valid against the packaged RFC schemas: the client and the
sandbox registry never put a document on the wire that a registry's validator would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from registry.test_codec import COMMANDS, RESPONSES, WHEN
from regshield.registry.codec import RawElement
from regshield.registry.commands import build_command, build_hello
from regshield.registry.responses import Greeting, build_greeting, encode_response
from regshield.registry.schemas import validate_epp


def _packaged_only(items: tuple[Any, ...]) -> bool:
    """Foreign extensions are refused by the strict schema on purpose (no schema is packaged)."""
    return not any(isinstance(item, RawElement) for item in items)


SCHEMA_COMMANDS = [(body, ext) for body, ext in COMMANDS if _packaged_only(ext)]
SCHEMA_RESPONSES = [r for r in RESPONSES
                    if _packaged_only(tuple(r.data)) and _packaged_only(tuple(r.extensions))]


def test_most_fixtures_are_checked_against_the_schemas() -> None:
    assert len(SCHEMA_COMMANDS) >= len(COMMANDS) - 2
    assert len(SCHEMA_RESPONSES) >= len(RESPONSES) - 2


@pytest.mark.parametrize(("body", "extensions"), SCHEMA_COMMANDS,
                         ids=[f"{type(b).__name__}-{i}" for i, (b, _) in
                              enumerate(SCHEMA_COMMANDS)])
def test_every_command_the_client_writes_is_schema_valid(body: Any, extensions: Any) -> None:
    build_command(body, extensions=extensions, cl_trid="ABC-12345", validate=validate_epp)


@pytest.mark.parametrize("response", SCHEMA_RESPONSES,
                         ids=[f"{r.code}-{i}" for i, r in enumerate(SCHEMA_RESPONSES)])
def test_every_response_the_registry_writes_is_schema_valid(response: Any) -> None:
    encode_response(response, validate=validate_epp)


def test_hello_and_greeting_are_schema_valid() -> None:
    build_hello(validate=validate_epp)
    build_greeting(Greeting("regshield sandbox", WHEN), validate=validate_epp)
