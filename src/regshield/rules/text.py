"""The first checks of every text field: present, a string, and text that XML 1.0 can carry.

Every text that may reach a registry travels in an EPP document, and XML 1.0 has no way to
write most control characters (not even escaped): lxml refuses to build such a document. The
check is made here, while the flow validates, so that nothing is written for a value that
could never be sent (`xml_text_problem`, `check_xml_text`)."""

from __future__ import annotations

import re
from typing import Any

from regshield.errors import FieldError

# Anything outside XML 1.0's Char production (section 2.2): C0 controls other than tab, line
# feed and carriage return, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def xml_text_problem(value: str) -> str | None:
    """Why `value` cannot be carried in an EPP (XML 1.0) document, or None when it can. Names
    the first offending character by its code point, never the value."""
    found = _NOT_XML_CHAR.search(value)
    if found is None:
        return None
    return (f"holds a character that EPP (XML 1.0) cannot carry: U+{ord(found.group()):04X} "
            f"at position {found.start() + 1}")


def check_xml_text(value: str, field: str, errors: list[FieldError]) -> bool:
    """Whether `value` can be carried in XML; otherwise a `not_xml_text` error on `field`."""
    problem = xml_text_problem(value)
    if problem is not None:
        errors.append(FieldError(field, "not_xml_text", problem))
    return problem is None


def text_value(value: Any, field: str, errors: list[FieldError], *,
               required: bool = True) -> str | None:
    """The value when it is a non-blank string; otherwise None, with `required` (when the field
    is required) or `not_text` added to `errors`. Whether XML can carry it is the caller's
    next check (`check_xml_text`, or a stricter one of its own such as contacts' refusal of
    every control character)."""
    if is_blank(value):
        if required:
            errors.append(FieldError(field, "required", "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, "not_text", "must be a string"))
        return None
    return value
