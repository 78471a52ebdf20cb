"""Hosted zones: the record sets a customer may edit, the whole-zone rules, the SOA serial.

A customer edits a zone one RRset at a time (RFC 2181 section 5: all records of one owner
name, class and type). `validate_rrset` checks one RRset as typed (owner relative to the zone,
`@` for the apex, or absolute with a trailing dot; a type mnemonic; a TTL; records in zone file
presentation format) and returns its canonical form, or raises one ValidationFailed naming
every reason. `zone_problems` applies the rules that need the whole zone: CNAME exclusivity,
the apex NS, delegations and glue, DS placement, one TTL per RRset. `validate_rrsets` does
both for a whole list. `next_serial` and `serial_gt` implement the SOA serial and its
sequence-space arithmetic (RFC 1982).

The signer owns DNSKEY, RRSIG, NSEC, NSEC3, NSEC3PARAM, CDS and CDNSKEY (regenerated on each
signing); the SOA changes only through `next_serial`. Neither can be edited here.

dnspython parses and canonicalises names and rdata; its objects stay inside this module
(STYLE.md, convention 7): `RRset` holds presentation text. Nothing here touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.NS import NS

from regshield.errors import FieldError, ValidationFailed
from regshield.rules.ds import ds_problems, validate_ds
from regshield.rules.names import MAX_LABEL, validate_domain_name
from regshield.rules.text import text_value

# A minute keeps resolvers from being hammered by a mistyped TTL; a week is the cap most
# resolvers apply anyway (RFC 8767 section 4 suggests 604800 as the maximum to honour).
MIN_TTL = 60
MAX_TTL = 7 * 86400
MAX_RECORDS = 100  # per RRset; a larger set belongs in a zone file import, not an edit
MAX_RECORD_TEXT = 8192  # presentation text of one record; TXT may hold several strings
MAX_RRSETS = 250_000  # per zone, in `validate_rrsets` (a zone file import)

# Types the signer regenerates on every signing (RFC 4034, RFC 5155, RFC 7344).
SIGNER_OWNED_TYPES = frozenset({"DNSKEY", "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "CDS",
                                "CDNSKEY"})
# Types a customer may edit. SOA changes only through the serial logic; DNAME (RFC 6672) and
# obsolete or experimental types are not offered.
EDITABLE_TYPES = frozenset({"A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS",
                            "PTR", "SRV", "SSHFP", "SVCB", "TLSA", "TXT"})
GLUE_TYPES = frozenset({"A", "AAAA"})

SERIAL_BITS = 32  # RFC 1035 section 3.3.13
SERIAL_MODULUS = 1 << SERIAL_BITS
SERIAL_HALF = 1 << (SERIAL_BITS - 1)  # RFC 1982 section 3.1: the largest step is HALF - 1
DAILY_CHANGES = 100  # "date" scheme: YYYYMMDDnn, nn from 00 to 99

SerialScheme = Literal["unixtime", "increment", "date"]
SERIAL_SCHEMES: tuple[SerialScheme, ...] = ("unixtime", "increment", "date")

# The dots UTS 46 section 2.3 treats as label separators, as rules/names.py does.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
# RFC 8552 section 2: an underscored label, such as `_dmarc`, `_443`, `_tcp`, `_acme-challenge`.
_UNDERSCORE_LABEL = re.compile(r"_[a-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is whitespace; the rest is not text


@dataclass(frozen=True)
class RRsetInput:
    """One RRset as a customer typed it; `validate_rrsets` checks a list of them."""

    owner: str  # `@`, relative to the zone (`www`, `_dmarc`, `*.dev`), or absolute (`a.b.`)
    type: str  # mnemonic: `A`, `MX`, ...
    ttl: int
    records: Sequence[str]  # presentation format, names relative to the zone unless dotted


@dataclass(frozen=True)
class RRset:
    """A checked RRset, in canonical form.

    `owner` is absolute, lower-case A-label form with the trailing dot. `records` are the
    canonical presentation text of each rdata (RFC 4034 section 6.2: names absolute and
    lower-cased where the type's names are canonicalised), in the order given.
    """

    owner: str
    type: str
    ttl: int
    records: tuple[str, ...]


def validate_rrset(zone: str, owner: Any, rtype: Any, ttl: Any, records: Any,
                   field_prefix: str = "") -> RRset:
    """Check one RRset of `zone` and return its canonical form, or raise one ValidationFailed.

    Fields are `owner`, `type`, `ttl`, `records` and `records.N`, each under `field_prefix`
    (`rrsets.3` gives `rrsets.3.owner`). The whole-zone rules are in `zone_problems`.
    """
    errors: list[FieldError] = []
    origin = _zone_origin(zone, errors)
    if origin is None:
        raise ValidationFailed(errors)
    rrset = _rrset(origin, owner, rtype, ttl, records, field_prefix, errors)
    if rrset is None:
        raise ValidationFailed(errors)
    return rrset


def validate_rrset_key(zone: str, owner: Any, rtype: Any) -> tuple[str, str]:
    """The canonical owner (absolute) and type mnemonic that name an RRset of `zone`, as a
    deletion names it; raises one ValidationFailed naming `owner` and `type`."""
    errors: list[FieldError] = []
    origin = _zone_origin(zone, errors)
    if origin is None:
        raise ValidationFailed(errors)
    owner_name = _owner(origin, owner, "owner", errors)
    type_name = _type(rtype, "type", errors)
    if errors:
        raise ValidationFailed(errors)
    assert owner_name is not None and type_name is not None
    return owner_name.to_text(), type_name


def validate_rrsets(zone: str, inputs: Sequence[RRsetInput],
                    field: str = "rrsets") -> tuple[RRset, ...]:
    """Check every RRset of a zone, then the whole-zone rules; one ValidationFailed for all.

    Each RRset's fields are named by its index (`rrsets.2.ttl`). The whole-zone rules run only
    once every RRset is well formed, so that one mistake is not reported twice.
    """
    errors: list[FieldError] = []
    origin = _zone_origin(zone, errors)
    if origin is None:
        raise ValidationFailed(errors)
    if len(inputs) > MAX_RRSETS:
        raise ValidationFailed([FieldError(field, "too_many",
                                           f"must have at most {MAX_RRSETS} RRsets, "
                                           f"not {len(inputs)}")])
    accepted: list[RRset] = []
    for index, item in enumerate(inputs):
        rrset = _rrset(origin, item.owner, item.type, item.ttl, item.records,
                       f"{field}.{index}", errors)
        if rrset is not None:
            accepted.append(rrset)
    if not errors:
        errors.extend(zone_problems(zone, accepted, field))
    if errors:
        raise ValidationFailed(errors)
    return tuple(accepted)


def zone_problems(zone: str, rrsets: Sequence[RRset], field: str = "rrsets") -> list[FieldError]:
    """What the whole zone breaks, given every RRset; each error names `rrsets.N` (or `rrsets`).

    - One RRset per owner and type, so one TTL per RRset (RFC 2181 section 5.2).
    - A name with a CNAME has no other data (RFC 1034 section 3.6.2, RFC 2181 section 10.1),
      except the DNSSEC records the signer adds (RFC 4035 section 2.5); the apex never has a
      CNAME, since it holds the SOA and NS (RFC 1912 section 2.4).
    - The apex has an NS RRset (RFC 1034 section 4.2.1).
    - An NS RRset below the apex is a delegation: at the cut only NS, DS and glue are data of
      this zone, and below it only glue, the A and AAAA of a nameserver named by an NS RRset
      of this zone (RFC 1034 section 4.2.1, RFC 9471 for sibling glue). Anything else would
      never be served, so it is refused rather than kept silently.
    - DS only at a delegation point (RFC 4035 section 2.4; the apex DS lives in the parent).
    """
    errors: list[FieldError] = []
    origin = _zone_origin(zone, errors)
    if origin is None:
        return errors
    names = [dns.name.from_text(rrset.owner) for rrset in rrsets]
    types_at: dict[dns.name.Name, set[str]] = {}
    first_index: dict[tuple[dns.name.Name, str], int] = {}
    for index, (rrset, name) in enumerate(zip(rrsets, names, strict=True)):
        item = f"{field}.{index}"
        if not name.is_subdomain(origin):
            errors.append(FieldError(f"{item}.owner", "out_of_zone",
                                     f"{rrset.owner} is not in the zone {origin}"))
        key = (name, rrset.type)
        if key in first_index:
            other = first_index[key]
            if rrsets[other].ttl != rrset.ttl:
                errors.append(FieldError(f"{item}.ttl", "ttl_mismatch",
                                         f"{rrset.owner} {rrset.type} has TTL {rrset.ttl} here "
                                         f"and {rrsets[other].ttl} in {field}.{other}; an "
                                         "RRset has one TTL (RFC 2181 section 5.2)"))
            else:
                errors.append(FieldError(item, "duplicate_rrset",
                                         f"repeats the {rrset.owner} {rrset.type} RRset of "
                                         f"{field}.{other}; put all its records in one RRset"))
        else:
            first_index[key] = index
        types_at.setdefault(name, set()).add(rrset.type)

    if "NS" not in types_at.get(origin, set()):
        errors.append(FieldError(field, "apex_ns_missing",
                                 f"the apex {origin} needs an NS RRset naming the zone's "
                                 "nameservers (RFC 1034 section 4.2.1)"))
    cuts = {name for name, types in types_at.items() if "NS" in types and name != origin}
    nameservers = {target for rrset, name in zip(rrsets, names, strict=True)
                   if rrset.type == "NS" for target in _ns_targets(rrset)}

    for index, (rrset, name) in enumerate(zip(rrsets, names, strict=True)):
        item = f"{field}.{index}"
        if rrset.type == "CNAME":
            if name == origin:
                errors.append(FieldError(f"{item}.owner", "cname_at_apex",
                                         "the apex holds the SOA and NS records, so it cannot "
                                         "have a CNAME (RFC 1034 section 3.6.2, RFC 1912 "
                                         "section 2.4)"))
            others = sorted(types_at[name] - {"CNAME"} - SIGNER_OWNED_TYPES)
            if others:
                errors.append(FieldError(f"{item}.type", "cname_and_other_data",
                                         f"{rrset.owner} has a CNAME and {', '.join(others)}; a "
                                         "name with a CNAME has no other data (RFC 1034 section "
                                         "3.6.2, RFC 2181 section 10.1)"))
        if rrset.type == "DS" and name not in cuts:
            errors.append(FieldError(f"{item}.type", "ds_not_at_delegation",
                                     f"{rrset.owner} is not a delegation (no NS RRset below the "
                                     "apex); a DS belongs only at a delegation point "
                                     "(RFC 4035 section 2.4)"))
        cut = _enclosing_cut(name, cuts)
        if cut is None or rrset.type in SIGNER_OWNED_TYPES:
            continue
        is_glue = rrset.type in GLUE_TYPES and name in nameservers
        if name == cut:
            if rrset.type not in {"NS", "DS"} and not is_glue:
                errors.append(FieldError(f"{item}.type", "at_delegation",
                                         f"{rrset.owner} is delegated; only NS, DS and glue "
                                         f"belong at a delegation point, not {rrset.type} "
                                         "(RFC 1034 section 4.2.1)"))
        elif not is_glue:
            what = ("an A or AAAA record no NS RRset of this zone names"
                    if rrset.type in GLUE_TYPES else f"{rrset.type} data")
            errors.append(FieldError(f"{item}.owner", "below_delegation",
                                     f"{rrset.owner} lies below the delegation {cut}, where "
                                     f"only glue is kept, not {what} (RFC 1034 section 4.2.1)"))
    return errors


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982 section 3.2: is serial `a` greater than `b` in 32-bit sequence space?

    Neither is greater when they are exactly 2^31 apart (the comparison is undefined there).
    """
    _check_serial(a)
    _check_serial(b)
    return (a < b and b - a > SERIAL_HALF) or (a > b and a - b < SERIAL_HALF)


def serial_add(serial: int, step: int) -> int:
    """RFC 1982 section 3.1: `serial` plus `step` (0 to 2^31 - 1), wrapping at 2^32."""
    _check_serial(serial)
    if not 0 <= step < SERIAL_HALF:
        raise ValueError(f"a serial step is 0 to {SERIAL_HALF - 1}, not {step}")
    return (serial + step) % SERIAL_MODULUS


def next_serial(current: int, scheme: SerialScheme, now: datetime) -> int:
    """The SOA serial after `current`, always greater in sequence space (RFC 1982).

    Secondaries only transfer a zone whose serial is greater (RFC 1034 section 4.3.5), so the
    serial never goes backwards:
    - `increment`: `current` + 1, wrapping from 2^32 - 1 to 0.
    - `unixtime`: the seconds since 1970 at `now`, or `current` + 1 when that is not greater
      (several changes in one second, or a clock behind the last serial).
    - `date`: `YYYYMMDD00` for `now` in UTC (RFC 1912 section 2.2), or `current` + 1 when that
      is not greater; after `nn` = 99 this carries into the next day's number, and the serial
      keeps counting until the date catches up.
    `now` must be timezone-aware (STYLE.md, convention 5).
    """
    _check_serial(current)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if scheme == "increment":
        return serial_add(current, 1)
    if scheme == "unixtime":
        candidate = int(now.timestamp()) % SERIAL_MODULUS
    elif scheme == "date":
        day = now.astimezone(UTC)
        candidate = (day.year * 10000 + day.month * 100 + day.day) * DAILY_CHANGES
        candidate %= SERIAL_MODULUS
    else:
        raise ValueError(f"unknown serial scheme {scheme!r}; one of {', '.join(SERIAL_SCHEMES)}")
    return candidate if serial_gt(candidate, current) else serial_add(current, 1)


def _check_serial(serial: int) -> None:
    if isinstance(serial, bool) or not isinstance(serial, int) \
            or not 0 <= serial < SERIAL_MODULUS:
        raise ValueError(f"a serial is an integer from 0 to {SERIAL_MODULUS - 1}, not {serial!r}")


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _zone_origin(zone: str, errors: list[FieldError]) -> dns.name.Name | None:
    name = validate_domain_name(zone, "zone", errors, min_labels=1)
    return None if name is None else dns.name.from_text(name.ascii + ".")


def _rrset(origin: dns.name.Name, owner: Any, rtype: Any, ttl: Any, records: Any,
           prefix: str, errors: list[FieldError]) -> RRset | None:
    found: list[FieldError] = []
    owner_name = _owner(origin, owner, _field(prefix, "owner"), found)
    type_name = _type(rtype, _field(prefix, "type"), found)
    checked_ttl = _ttl(ttl, _field(prefix, "ttl"), found)
    if owner_name is not None and type_name is not None:
        _check_owner_for_type(origin, owner_name, type_name, _field(prefix, "owner"), found)
    texts = _records(origin, type_name, records, _field(prefix, "records"), found)
    errors.extend(found)
    if found:
        return None
    assert owner_name is not None and type_name is not None and checked_ttl is not None
    return RRset(owner=owner_name.to_text(), type=type_name, ttl=checked_ttl, records=texts)


def _owner(origin: dns.name.Name, value: Any, field: str,
           errors: list[FieldError]) -> dns.name.Name | None:
    """The absolute owner name: `@`, relative to `origin`, or absolute with a trailing dot."""
    text = text_value(value, field, errors)
    if text is None:
        return None
    text = text.strip().translate(_DOTS)
    zone_text = origin.to_text(omit_final_dot=True)
    if text == "@":
        return origin
    absolute = text[:-1] if text.endswith(".") else f"{text}.{zone_text}"
    labels = absolute.split(".")
    # Wildcard and underscore labels are checked here and stand in as plain letters for the
    # names.py check, which then judges every other label and the total length.
    stand_ins: dict[int, str] = {}
    ok = True
    for index, label in enumerate(labels):
        if "*" in label:
            if label != "*" or index != 0:
                errors.append(FieldError(field, "wildcard_position",
                                         "a wildcard is the whole leftmost label, '*' "
                                         "(RFC 4592 section 2.1.1)"))
                ok = False
            stand_ins[index] = "*"
        elif label.startswith("_"):
            lowered = label.lower()
            if not _UNDERSCORE_LABEL.fullmatch(lowered):
                errors.append(FieldError(field, "invalid_underscore_label",
                                         f"label {label[:40]!r} may hold only letters, digits, "
                                         "hyphens and underscores after its leading underscore "
                                         "(RFC 8552 section 2)"))
                ok = False
            elif len(lowered) > MAX_LABEL:
                errors.append(FieldError(field, "label_too_long",
                                         f"label {label[:40]!r} is {len(label)} characters long; "
                                         f"a label has at most {MAX_LABEL}"))
                ok = False
            stand_ins[index] = lowered
    plain = ".".join("a" * max(1, min(len(label), MAX_LABEL)) if index in stand_ins else label
                     for index, label in enumerate(labels))
    checked = validate_domain_name(plain, field, errors, min_labels=1)
    if checked is None or not ok:
        return None
    final = [stand_ins.get(index, label) for index, label in enumerate(checked.labels)]
    name = dns.name.from_text(".".join(final) + ".")
    if not name.is_subdomain(origin):
        errors.append(FieldError(field, "out_of_zone",
                                 f"{name} is not in the zone {origin}; a zone holds only names "
                                 "at or below its apex (RFC 1034 section 4.2)"))
        return None
    return name


def _type(value: Any, field: str, errors: list[FieldError]) -> str | None:
    text = text_value(value, field, errors)
    if text is None:
        return None
    mnemonic = text.strip().upper()
    try:
        number = dns.rdatatype.from_text(mnemonic)
    except (dns.exception.DNSException, ValueError):
        errors.append(FieldError(field, "unknown_type",
                                 f"{text[:40]!r} is not a DNS record type; one of "
                                 f"{', '.join(sorted(EDITABLE_TYPES))}"))
        return None
    mnemonic = dns.rdatatype.to_text(number)  # TYPE1 -> A, as RFC 3597 allows both
    if mnemonic in SIGNER_OWNED_TYPES:
        errors.append(FieldError(field, "signer_owned",
                                 f"{mnemonic} records are made by the signer on every signing "
                                 "and cannot be edited"))
        return None
    if mnemonic == "SOA":
        errors.append(FieldError(field, "soa_managed",
                                 "the SOA record is managed by the platform; its serial "
                                 "advances on every change"))
        return None
    if mnemonic not in EDITABLE_TYPES:
        errors.append(FieldError(field, "type_not_allowed",
                                 f"{mnemonic} records cannot be edited here; one of "
                                 f"{', '.join(sorted(EDITABLE_TYPES))}"))
        return None
    return mnemonic


def _ttl(value: Any, field: str, errors: list[FieldError]) -> int | None:
    if value is None:
        errors.append(FieldError(field, "required", "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError(field, "not_integer", "must be a whole number of seconds"))
        return None
    if not MIN_TTL <= value <= MAX_TTL:
        errors.append(FieldError(field, "ttl_out_of_range",
                                 f"must be from {MIN_TTL} to {MAX_TTL} seconds, not {value}"))
        return None
    return value


def _check_owner_for_type(origin: dns.name.Name, owner: dns.name.Name, type_name: str,
                          field: str, errors: list[FieldError]) -> None:
    if type_name in {"NS", "DS"} and owner.is_wild():
        errors.append(FieldError(field, "wildcard_delegation",
                                 f"a wildcard owner cannot hold {type_name}: a delegation "
                                 "has a name of its own (RFC 4592 section 4.2)"))
    if type_name == "DS" and owner == origin:
        errors.append(FieldError(field, "ds_at_apex",
                                 "the DS of this zone is published by its parent; here a DS "
                                 "belongs at a delegation point (RFC 4035 section 2.4)"))


def _records(origin: dns.name.Name, type_name: str | None, values: Any, field: str,
             errors: list[FieldError]) -> tuple[str, ...]:
    if values is None or (isinstance(values, Sequence) and not isinstance(values, str | bytes)
                          and len(values) == 0):
        errors.append(FieldError(field, "required", "must have at least one record"))
        return ()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        errors.append(FieldError(field, "not_list", "must be a list of records"))
        return ()
    if len(values) > MAX_RECORDS:
        # Refused before any record is parsed: a long list must not cost parsing work.
        errors.append(FieldError(field, "too_many",
                                 f"must have at most {MAX_RECORDS} records, not {len(values)}"))
        return ()
    if type_name == "CNAME" and len(values) > 1:
        errors.append(FieldError(field, "cname_single",
                                 "a CNAME RRset has exactly one record: a name is an alias of "
                                 "one name (RFC 2181 section 10.1)"))
    rdtype = None if type_name is None else dns.rdatatype.from_text(type_name)
    accepted: list[str] = []
    first_index: dict[dns.rdata.Rdata, int] = {}
    for index, value in enumerate(values):
        item = f"{field}.{index}"
        text = _record_text(value, item, errors)
        if text is None or rdtype is None:
            continue  # without a known type a record cannot be parsed
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=origin,
                                        relativize=False)
            # RFC 4034 section 6.2: names absolute and, in the types listed there, lower case.
            wire = rdata.to_digestable(origin)
            canonical = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, wire, 0, len(wire))
        except (dns.exception.DNSException, ValueError, TypeError) as exc:
            errors.append(FieldError(item, "invalid_record",
                                     f"is not a valid {type_name} record: {_message(exc)}"))
            continue
        if type_name == "DS":
            checked = validate_ds(canonical.to_text(), item, errors)
            if checked is None:
                continue
            problems = ds_problems(checked, item)
            if problems:
                errors.extend(problems)
                continue
        if canonical in first_index:
            errors.append(FieldError(item, "duplicate",
                                     f"repeats {field}.{first_index[canonical]}"))
            continue
        first_index[canonical] = index
        accepted.append(canonical.to_text())
    return tuple(accepted)


def _record_text(value: Any, field: str, errors: list[FieldError]) -> str | None:
    text = text_value(value, field, errors)
    if text is None:
        return None
    if len(text) > MAX_RECORD_TEXT:
        errors.append(FieldError(field, "too_long",
                                 f"must be at most {MAX_RECORD_TEXT} characters"))
        return None
    if _CONTROL.search(text):
        # A line break would end the record in a zone file and start another one.
        errors.append(FieldError(field, "control_characters",
                                 "must be one line without control characters; write a "
                                 "byte as \\DDD inside a quoted string (RFC 1035 section 5.1)"))
        return None
    if _has_comment(text):
        # dnspython, like every zone file reader, would drop the rest silently: `v=DMARC1;
        # p=none` would become `v=DMARC1`.
        errors.append(FieldError(field, "unquoted_semicolon",
                                 "has a ';' outside quotes, which starts a comment in zone "
                                 "file syntax (RFC 1035 section 5.1); put the text in quotes"))
        return None
    return text.strip()


def _has_comment(text: str) -> bool:
    """Whether `text` has a `;` outside a quoted string, honouring backslash escapes."""
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return True
    return False


def _message(exc: Exception) -> str:
    message = str(exc).strip() or type(exc).__name__
    return message[:200]


def _ns_targets(rrset: RRset) -> set[dns.name.Name]:
    targets: set[dns.name.Name] = set()
    for text in rrset.records:
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NS, text)
        except (dns.exception.DNSException, ValueError):
            continue  # a malformed record was refused by validate_rrset
        if isinstance(rdata, NS):
            targets.add(rdata.target)
    return targets


def _enclosing_cut(name: dns.name.Name, cuts: set[dns.name.Name]) -> dns.name.Name | None:
    """The highest delegation point at or above `name`, if any (walking up its ancestors, so
    that a zone of many delegations is checked in linear time)."""
    if not cuts:
        return None
    found: dns.name.Name | None = None
    candidate = name
    while len(candidate) > 1:
        if candidate in cuts:
            found = candidate
        candidate = candidate.parent()
    return found


# --- who may host what, and which changes are sensitive ---------------------------------------

# active: served | unverified: stored, not served, until proof of control | suspended: the
# name was registered here by another account after the zone was made (kept, not served).
ZONE_STATES = ("active", "unverified", "suspended")
CHALLENGE_LABEL = "_regshield-challenge"
# The octodns safety rule: an import or change that replaces more than this fraction of a
# zone's RRsets is refused without `force` (and with it, needs a step-up). Like octodns, it
# applies from this many RRsets on: a zone of a few records is replaced whole in normal use.
REPLACE_THRESHOLD = 0.30
REPLACE_MIN_RRSETS = 10


def challenge_owner(zone: str) -> str:
    """Where the proof-of-control TXT record lives: `_regshield-challenge.<zone>`."""
    return f"{CHALLENGE_LABEL}.{zone.rstrip('.')}."


def nameserver_domains(nameservers: Sequence[str]) -> set[str]:
    """The domains of the registrar's own nameservers (`ns1.regshield.test.` ->
    `regshield.test.`), absolute and lower case."""
    found = set()
    for host in nameservers:
        labels = host.rstrip(".").lower().split(".")
        if len(labels) > 2:
            labels = labels[1:]
        found.add(".".join(labels) + ".")
    return found


def reserved_for_registrar(zone: str, nameservers: Sequence[str]) -> bool:
    """Whether `zone` (absolute, lower case) is at, above or below the domain of one of the
    registrar's own nameservers: whoever hosted it could answer for every zone they serve."""
    zone = zone.lower()
    return any(zone == domain or zone.endswith(f".{domain}") or domain.endswith(f".{zone}")
               for domain in nameserver_domains(nameservers))


def replaced_fraction(before: dict[tuple[str, str], RRset],
                      after: dict[tuple[str, str], RRset]) -> float:
    """The fraction of the zone's RRsets (`before`) that `after` changes or removes; 0 below
    REPLACE_MIN_RRSETS RRsets."""
    if len(before) < REPLACE_MIN_RRSETS:
        return 0.0
    replaced = sum(1 for key, rrset in before.items()
                   if key not in after or after[key].ttl != rrset.ttl
                   or list(after[key].records) != list(rrset.records))
    return replaced / len(before)


def apex_types_changed(zone: str, before: dict[tuple[str, str], RRset],
                       after: dict[tuple[str, str], RRset]) -> list[str]:
    """The types of the apex RRsets that differ between `before` and `after`, sorted."""
    apex = zone.lower()
    keys = {key for key in (*before, *after) if key[0] == apex}
    return sorted(key[1] for key in keys
                  if (before.get(key) is None) != (after.get(key) is None)
                  or (before[key].ttl, list(before[key].records))
                  != (after[key].ttl, list(after[key].records)))
