"""How the sandbox refuses a command: a `Refusal` carries the EPP result code and a message
that names the reason (never a secret). Shared by the session and the checks it delegates to."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

from regshield.registry.codec import ResultCode
from regshield.rules.ds import DsRecord

H = TypeVar("H", bound=Hashable)


class Refusal(Exception):
    """The command is refused with `code`; `message` says why (never a secret)."""

    def __init__(self, code: ResultCode, message: str | None = None) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.message = message or code.message


def changed(current: Iterable[H], added: Iterable[H], removed: Iterable[H],
            what: str, holder: str = "domain") -> set[H]:
    """`current` less `removed` plus `added`; removing what is not there, or adding what is,
    is refused (2306) rather than ignored, so that a client's view of the object (the
    `holder`: domain, host, contact) is never stale."""
    present = set(current)
    for item in removed:
        if item not in present:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"the {what} {_label(item)} is not on the {holder}")
        present.discard(item)
    for item in added:
        if item in present:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"the {what} {_label(item)} is already on the {holder}")
        present.add(item)
    return present


def _label(item: object) -> str:
    if isinstance(item, DsRecord):
        return item.to_text()
    return ":".join(item) if isinstance(item, tuple) else str(item)


__all__ = ["Refusal", "changed"]
