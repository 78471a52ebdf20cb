"""The first check of every text field: present, and a string."""

from __future__ import annotations

from typing import Any

from regshield.errors import FieldError


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def text_value(value: Any, field: str, errors: list[FieldError], *,
               required: bool = True) -> str | None:
    """The value when it is a non-blank string; otherwise None, with `required` (when the field
    is required) or `not_text` added to `errors`."""
    if is_blank(value):
        if required:
            errors.append(FieldError(field, "required", "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, "not_text", "must be a string"))
        return None
    return value
