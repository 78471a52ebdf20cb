"""The DS records the sandbox keeps for a domain (RFC 5910, DS data interface only): what a
create or an update may set, and the secDNS:infData an info shows. Key data (the other
interface) is refused with 2306, as RFC 5910 section 4 has a DS-only server answer it.

The registry applies the DS policy of `rules/ds.py` (known algorithms and digest types, digest
lengths, nothing that must no longer be used), as gTLD registries refuse such records too.
`maxSigLife` and `urgent` are not served: RFC 5910 section 4 answers them with 2102.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from regshield.errors import FieldError
from regshield.registry.codec import KeyData, ResultCode
from regshield.registry.commands import SecDnsCreate, SecDnsUpdate
from regshield.registry.responses import SecDnsInfo
from regshield.registry.sandbox.refusals import Refusal, changed
from regshield.rules.ds import DsRecord, ds_problems, validate_ds

# Two keys in a rollover, each with two digest types, is 4; twice that leaves room and still
# keeps one domain's delegation from growing without bound.
MAX_DS_RECORDS = 8


def ds_rows(records: Iterable[DsRecord]) -> list[dict[str, Any]]:
    """Records as the JSON column keeps them, in a stable order."""
    return [record.as_dict() for record in sorted(records, key=_order)]


def stored_ds(rows: Iterable[dict[str, Any]]) -> tuple[DsRecord, ...]:
    return tuple(DsRecord(**row) for row in rows)


def ds_info(rows: list[dict[str, Any]]) -> SecDnsInfo | None:
    """The secDNS:infData of a domain, or None when it has no DS record (RFC 5910 has no
    empty infData)."""
    return SecDnsInfo(stored_ds(rows)) if rows else None


def created_ds(extension: SecDnsCreate | None) -> list[dict[str, Any]]:
    """The DS rows of a new domain. Raises Refusal: 2102 maxSigLife, 2306 a record listed
    twice, one the DS policy refuses, more than MAX_DS_RECORDS."""
    if extension is None:
        return []
    _check_interface(extension.keys)
    _check_options(extension.max_sig_life, urgent=False)
    if len(set(extension.ds)) != len(extension.ds):
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "secDNS:dsData: a DS record is listed twice")
    return _checked(extension.ds)


def updated_ds(rows: list[dict[str, Any]], extension: SecDnsUpdate) -> list[dict[str, Any]]:
    """The DS rows after an update: removals first (all, or those listed), then additions.
    Raises Refusal: 2102 maxSigLife or urgent, 2306 removing a record that is not there,
    adding one that is, one the DS policy refuses, more than MAX_DS_RECORDS."""
    _check_interface((*extension.add_keys, *extension.remove_keys))
    _check_options(extension.max_sig_life, urgent=extension.urgent)
    current = () if extension.remove_all else stored_ds(rows)
    return _checked(changed(current, extension.add, extension.remove, "DS record"),
                    new=extension.add)


def _check_interface(keys: tuple[KeyData, ...]) -> None:
    if keys:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "secDNS:keyData: the key data interface is not supported by this "
                      "registry; send secDNS:dsData")


def _check_options(max_sig_life: int | None, *, urgent: bool) -> None:
    if max_sig_life is not None:
        raise Refusal(ResultCode.UNIMPLEMENTED_OPTION,
                      "secDNS:maxSigLife is not supported by this registry")
    if urgent:
        raise Refusal(ResultCode.UNIMPLEMENTED_OPTION,
                      "secDNS:update urgent is not supported by this registry")


def _checked(records: Iterable[DsRecord], new: Iterable[DsRecord] | None = None
             ) -> list[dict[str, Any]]:
    """The rows of `records`, once the ones that are new pass the DS policy and the count is
    within MAX_DS_RECORDS. Records already on the domain are not judged again."""
    kept = tuple(records)
    for index, record in enumerate(kept if new is None else tuple(new)):
        problem = _policy_problem(record, f"secDNS:dsData.{index}")
        if problem is not None:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"{problem.field}: {problem.message}")
    if len(kept) > MAX_DS_RECORDS:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"a domain has at most {MAX_DS_RECORDS} DS records, not {len(kept)}")
    return ds_rows(kept)


def _policy_problem(record: DsRecord, field: str) -> FieldError | None:
    errors: list[FieldError] = []
    if validate_ds(record.as_dict(), field, errors) is None:
        return errors[0]
    problems = ds_problems(record, field)
    return problems[0] if problems else None


def _order(record: DsRecord) -> tuple[int, int, int, str]:
    return (record.key_tag, record.algorithm, record.digest_type, record.digest)


__all__ = ["MAX_DS_RECORDS", "created_ds", "ds_info", "ds_rows", "stored_ds", "updated_ds"]
