"""Domain and host names as regshield accepts them: IDNA 2008 with UTS 46 mapping, LDH labels.

A name arrives as a person or a client typed it: U-labels (`bücher.example`), A-labels
(`xn--bcher-kva.example`), any case, full-width dots, perhaps one trailing dot. This module
turns it into one canonical `DomainName` (lower-case A-label form for registries and the DNS,
U-label form for people) or refuses it, naming every reason at once.

Rules, label by label (a label is what lies between dots):
- UTS 46 mapping (case folding, width, NFC; UTS 46 section 4) with the STD3 rules on and
  transitional processing off, so `faß` stays `faß`; then the IDNA 2008 validity checks of
  the `idna` package (RFC 5891 section 4, RFC 5892 code point classes, CONTEXTJ/CONTEXTO),
  and the Bidi rule over the whole name once one label is right-to-left (RFC 5893).
- An `xn--` label must decode and re-encode to exactly itself (RFC 5891 section 5.3), so a
  "fake A-label" never aliases another name.
- Letters, digits and hyphens only (RFC 1035 section 2.3.1, RFC 1123 section 2.1), no hyphen
  first or last, no `--` in positions 3 and 4 except in an `xn--` label (RFC 5891 section
  4.2.3.1), 1 to 63 octets; the whole name at most 253 octets in A-label form, without the
  trailing dot (RFC 1035 section 2.3.4).
- The top-level label is not all digits (RFC 1123 section 2.1, RFC 3696 section 2), which also
  keeps IPv4 addresses out.

A name may mix A-labels and U-labels (`пример.xn--80akhbyknj4f`). UTS 46 processes every
label on its own, each label is checked on its own here, and the result is one canonical form
whichever way each label was written; refusing the mix would inconvenience people who paste a
name from a registry listing without making any name safer.

Input longer than `MAX_INPUT` characters is refused before any IDNA work.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import idna

from regshield.errors import FieldError, ValidationFailed
from regshield.rules.text import text_value

MAX_INPUT = 1000
MAX_NAME = 253
MAX_LABEL = 63
MAX_NAMESERVERS = 13
ACE_PREFIX = "xn--"

# UTS 46 section 2.3: full stop, ideographic, full-width and half-width ideographic full stops.
_LABEL_SEPARATORS = re.compile("[.\u3002\uff0e\uff61]")
_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_SHOWN_LABEL = 40


@dataclass(frozen=True)
class DomainName:
    """A checked name. `ascii` is what registries and the DNS see; `unicode` is for people."""

    ascii: str  # lower-case A-label form, no trailing dot
    unicode: str  # U-label form of every IDN label, the rest as in `ascii`

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels in A-label form, left to right."""
        return tuple(self.ascii.split("."))

    @property
    def tld(self) -> str:
        """The top-level label in A-label form (`xn--p1ai`, `com`)."""
        return self.labels[-1]

    @property
    def is_idn(self) -> bool:
        return any(label.startswith(ACE_PREFIX) for label in self.labels)

    def __str__(self) -> str:
        return self.ascii


def parse_domain_name(text: Any, field: str = "name", *, min_labels: int = 2) -> DomainName:
    """Check `text` and return its canonical form, or raise one ValidationFailed."""
    errors: list[FieldError] = []
    name = validate_domain_name(text, field, errors, min_labels=min_labels)
    if name is None:
        raise ValidationFailed(errors)
    return name


def parse_host_name(text: Any, field: str = "host") -> DomainName:
    """A nameserver host name (RFC 1123 section 2.1): the domain name rules, two labels or more.

    The same value may later name glue records, so nothing here depends on the registry.
    """
    return parse_domain_name(text, field, min_labels=2)


def parse_nameservers(values: Any, field: str = "nameservers", *,
                      max_count: int = MAX_NAMESERVERS) -> tuple[DomainName, ...]:
    """A list of host names, each error naming its index (`nameservers.2`); duplicates refused."""
    errors: list[FieldError] = []
    names = validate_nameservers(values, field, errors, max_count=max_count)
    if errors:
        raise ValidationFailed(errors)
    return names


def validate_domain_name(value: Any, field: str, errors: list[FieldError], *,
                         min_labels: int = 2) -> DomainName | None:
    """Like `parse_domain_name`, for flows that collect the errors of several fields.

    Appends every reason to `errors` and returns None when the name is refused.
    """
    if min_labels < 1:
        raise ValueError("min_labels must be at least 1")
    found: list[FieldError] = []
    name = _domain_name(value, field, found, min_labels)
    errors.extend(found)
    return None if found else name


def validate_nameservers(values: Any, field: str, errors: list[FieldError], *,
                         max_count: int = MAX_NAMESERVERS) -> tuple[DomainName, ...]:
    """Like `parse_nameservers`, appending to `errors`; returns the names that were accepted."""
    if values is None:
        return ()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        errors.append(FieldError(field, "not_list", "must be a list of host names"))
        return ()
    if len(values) > max_count:
        # Refused before any name is parsed: a long list must not cost IDNA work.
        errors.append(FieldError(field, "too_many",
                                 f"must have at most {max_count} nameservers, not {len(values)}"))
        return ()
    accepted: list[DomainName] = []
    first_index: dict[str, int] = {}
    for index, value in enumerate(values):
        item = f"{field}.{index}"
        name = validate_domain_name(value, item, errors, min_labels=2)
        if name is None:
            continue
        if name.ascii in first_index:
            errors.append(FieldError(item, "duplicate",
                                     f"repeats {field}.{first_index[name.ascii]} ({name.ascii})"))
            continue
        first_index[name.ascii] = index
        accepted.append(name)
    return tuple(accepted)


@dataclass(frozen=True)
class _Label:
    ascii: str
    unicode: str


def _domain_name(value: Any, field: str, errors: list[FieldError],
                 min_labels: int) -> DomainName | None:
    value = text_value(value, field, errors)
    if value is None:
        return None
    if len(value) > MAX_INPUT:
        errors.append(FieldError(field, "too_long",
                                 f"must be at most {MAX_NAME} characters in ASCII form"))
        return None
    text = _LABEL_SEPARATORS.sub(".", value.strip())
    if text.endswith("."):
        text = text[:-1]  # one trailing dot: the fully qualified form
    # Split before mapping: under the STD3 rules no other code point maps to a dot.
    raw_labels = text.split(".") if text else []
    if len(raw_labels) < min_labels:
        example = ".".join(["example"] * (min_labels - 1) + ["com"])
        plural = "label" if min_labels == 1 else "labels"
        errors.append(FieldError(field, "too_few_labels",
                                 f"must have at least {min_labels} {plural} (such as {example})"))
        if not raw_labels:
            return None
    labels = [_label(raw, field, errors) for raw in raw_labels]
    # A refused label counts with its raw length: the total is then a lower bound.
    length = len(raw_labels) - 1 + sum(len(label.ascii) if label else len(raw)
                                       for raw, label in zip(raw_labels, labels, strict=True))
    if length > MAX_NAME:
        errors.append(FieldError(field, "too_long",
                                 f"is {length} characters long in ASCII form; "
                                 f"a name has at most {MAX_NAME}"))
    top = labels[-1]
    if top is not None and top.ascii.isdigit():
        errors.append(FieldError(field, "numeric_tld",
                                 "must not end in an all-numeric label "
                                 "(an IP address is not a domain name)"))
    if errors or any(label is None for label in labels):
        return None
    checked = [label for label in labels if label is not None]
    _check_bidi_domain(checked, field, errors)
    if errors:
        return None
    return DomainName(ascii=".".join(label.ascii for label in checked),
                      unicode=".".join(label.unicode for label in checked))


def _label(raw: str, field: str, errors: list[FieldError]) -> _Label | None:
    if not raw:
        errors.append(FieldError(field, "empty_label",
                                 "has an empty label (a leading dot or two dots in a row)"))
        return None
    bad_ascii = sorted({ch for ch in raw if ch.isascii() and ch.lower() not in _LDH})
    if bad_ascii:
        errors.append(FieldError(field, "invalid_characters",
                                 f"label {_show(raw)} may hold only letters, digits and hyphens "
                                 f"(found {', '.join(repr(ch) for ch in bad_ascii)})"))
        return None
    if raw.isascii():
        return _ldh_label(raw.lower(), field, errors)
    try:
        # Case folding, width and compatibility mapping, NFC. Not transitional: deviations
        # (ß, ς, ZWJ, ZWNJ) are kept. That is idna's default and, since UTS 46 for Unicode
        # 15.1, its only mode, so the deprecated `transitional` argument is not passed.
        mapped = idna.uts46_remap(raw, std3_rules=True)
    except idna.IDNAError as exc:
        errors.append(FieldError(field, "invalid_u_label",
                                 f"label {_show(raw)} is not permitted by IDNA 2008: {exc}"))
        return None
    if not mapped:  # only code points that UTS 46 maps to nothing (soft hyphen, ZWSP)
        errors.append(FieldError(field, "empty_label",
                                 f"label {_show(raw)} is empty once mapped (UTS 46)"))
        return None
    if mapped.isascii():
        return _ldh_label(mapped, field, errors)  # full-width Latin and the like
    if not _hyphens_ok(mapped, field, errors):
        return None
    try:
        idna.check_label(mapped)
    except idna.IDNAError as exc:
        errors.append(FieldError(field, "invalid_u_label",
                                 f"label {_show(raw)} is not permitted by IDNA 2008: {exc}"))
        return None
    a_label = ACE_PREFIX + mapped.encode("punycode").decode("ascii")
    if len(a_label) > MAX_LABEL:
        errors.append(FieldError(field, "label_too_long",
                                 f"label {_show(raw)} is {len(a_label)} characters long as an "
                                 f"A-label; a label has at most {MAX_LABEL}"))
        return None
    return _Label(ascii=a_label, unicode=mapped)


def _ldh_label(label: str, field: str, errors: list[FieldError]) -> _Label | None:
    ok = _hyphens_ok(label, field, errors)
    if len(label) > MAX_LABEL:
        errors.append(FieldError(field, "label_too_long",
                                 f"label {_show(label)} is {len(label)} characters long; "
                                 f"a label has at most {MAX_LABEL}"))
        ok = False
    if not ok:
        return None
    if not label.startswith(ACE_PREFIX):
        return _Label(ascii=label, unicode=label)
    try:
        u_label = idna.ulabel(label)
        # Checked here as well so that an older idna without the RFC 5891 5.3 check is safe.
        canonical = idna.alabel(u_label).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        errors.append(FieldError(field, "invalid_a_label",
                                 f"label {_show(label)} is not a valid A-label: {exc}"))
        return None
    if canonical != label:
        errors.append(FieldError(field, "invalid_a_label",
                                 f"label {_show(label)} does not re-encode to itself "
                                 f"(its U-label encodes as {canonical})"))
        return None
    return _Label(ascii=label, unicode=u_label)


def _hyphens_ok(label: str, field: str, errors: list[FieldError]) -> bool:
    if label.startswith("-") or label.endswith("-"):
        errors.append(FieldError(field, "hyphen_position",
                                 f"label {_show(label)} must not start or end with a hyphen"))
        return False
    if label[2:4] == "--" and not (label.isascii() and label.startswith(ACE_PREFIX)):
        errors.append(FieldError(field, "hyphen_position",
                                 f"label {_show(label)} must not have '--' in positions 3 and 4 "
                                 f"(reserved for {ACE_PREFIX} A-labels)"))
        return False
    return True


def _check_bidi_domain(labels: list[_Label], field: str, errors: list[FieldError]) -> None:
    """RFC 5893 section 2: once one label is right-to-left, every label obeys the Bidi rule."""
    if not any(unicodedata.bidirectional(ch) in ("R", "AL", "AN")
               for label in labels for ch in label.unicode):
        return
    for label in labels:
        try:
            idna.check_bidi(label.unicode, check_ltr=True)
        except idna.IDNAError as exc:
            errors.append(FieldError(field, "bidi_rule",
                                     f"label {_show(label.unicode)} breaks the Bidi rule of a "
                                     f"name with right-to-left labels (RFC 5893): {exc}"))


def _show(label: str) -> str:
    if len(label) > _SHOWN_LABEL:
        label = label[:_SHOWN_LABEL] + "…"
    return repr(label)
