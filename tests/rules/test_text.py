"""What XML 1.0 can carry: every text bound for an EPP document is checked against the Char
production before a flow writes anything."""

from __future__ import annotations

import pytest

from regshield.errors import FieldError
from regshield.registry.codec import CodecError, Secret
from regshield.registry.commands import DomainTransfer, build_command
from regshield.rules.text import check_xml_text, xml_text_problem


@pytest.mark.parametrize("text", ["plain", "tab\tline\nreturn\r", "Müller 東京 😀",
                                  "\ue000\ufffd\U0010ffff"])
def test_text_that_xml_carries_passes(text: str) -> None:
    assert xml_text_problem(text) is None
    build_command(DomainTransfer("a.test", op="request", auth_info=Secret(text)),
                  cl_trid="test-0001")


@pytest.mark.parametrize(("text", "named"), [
    ("a\u0001b", "U+0001 at position 2"), ("\u0000", "U+0000 at position 1"),
    ("ok\u001f", "U+001F at position 3"), ("\ud800", "U+D800"), ("x\ufffe", "U+FFFE"),
    ("\uffff", "U+FFFF")])
def test_text_that_xml_cannot_carry_is_refused_naming_the_character(text: str,
                                                                    named: str) -> None:
    errors: list[FieldError] = []

    assert check_xml_text(text, "auth_code", errors) is False

    [error] = errors
    assert (error.field, error.code) == ("auth_code", "not_xml_text")
    assert named in error.message and text not in error.message


def test_a_command_that_xml_cannot_carry_is_a_codec_error_not_a_value_error() -> None:
    with pytest.raises(CodecError, match="cannot be carried in XML"):
        build_command(DomainTransfer("a.test", op="request", auth_info=Secret("a\u0001b")),
                      cl_trid="test-0001")
