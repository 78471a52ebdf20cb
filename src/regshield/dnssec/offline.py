"""Offline signing of a zone file: master-file text in, signed master-file text out, fast.

This is the path behind `regshield zone sign`. It never builds dnspython RRsets for the common
record types: a line reader splits each entry into owner, TTL, type and rdata text; A, AAAA, NS,
CNAME, PTR, DNAME, MX and DS rdata are turned into canonical wire form (RFC 4034 §6.2) here,
other types through dnspython. The RRSIGs and the NSEC or NSEC3 chain follow the same rules as
`regshield.dnssec.signer.sign_zone`. The signed zone is written as presentation text: the
RRsets name by name in the order the file first names them, each followed by its RRSIGs, then
the NSEC or NSEC3 chain in its own order. A large zone is signed by forked worker processes:
they inherit the zone as read and start on its RRsets while the chain is being planned, and
send back only their text.
"""

from __future__ import annotations

import base64
import functools
import gc
import hashlib
import multiprocessing
import os
import socket
import struct
import time
from binascii import b2a_base64
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, NamedTuple

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from regshield.dnssec.keys import AnyKey, SigningKey, signer
from regshield.dnssec.signer import (
    DELEGATION,
    KSK_SIGNED_TYPES,
    SIGNED,
    UNSIGNED,
    NameKey,
    key_wire,
    signature_time,
)

# One RRset as read: type, TTL, and for each record its line number, its rdata text and the
# $ORIGIN its relative names are under (None: the zone's own name).
ParsedRRset = tuple[int, int, list[tuple[int, str, str | None]]]
# The names of a zone as read: canonical key -> (owner text, RRsets by type).
_Names = dict[NameKey, tuple[str, dict[int, ParsedRRset]]]

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_NS = dns.rdatatype.NS
_DS = dns.rdatatype.DS
_MX = dns.rdatatype.MX
_SOA = dns.rdatatype.SOA
_DNAME = dns.rdatatype.DNAME
_DNSKEY = dns.rdatatype.DNSKEY
_RRSIG = dns.rdatatype.RRSIG
_NSEC = dns.rdatatype.NSEC
_NSEC3 = dns.rdatatype.NSEC3
_NSEC3PARAM = dns.rdatatype.NSEC3PARAM
_NAME_TYPES = frozenset({_NS, dns.rdatatype.CNAME, dns.rdatatype.PTR, _DNAME})
_DS_DIGEST_SIZES = {1: 20, 2: 32, 4: 48}  # SHA-1, SHA-256 (RFC 4509), SHA-384 (RFC 6605)
_REBUILT = frozenset({_RRSIG, _NSEC, _NSEC3, _NSEC3PARAM})
_RR_HEAD = struct.Struct("!HHI")
_LENGTH = struct.Struct("!H")
_RRSIG_HEAD = struct.Struct("!HBBI")  # type covered, algorithm, labels, original TTL
_RRSIG_TAIL = struct.Struct("!IIH")  # expiration, inception, key tag
_PARALLEL_THRESHOLD = 5_000
"""Below this many names, forking costs more than it saves."""



class ZoneFileError(ValueError):
    """A zone file that cannot be signed; `line` is 0 when no single line is to blame."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(line, reason)
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


@dataclass(frozen=True)
class SigningSummary:
    """What signing a zone file made: records written, of them RRSIGs, and the time taken."""

    origin: str
    records: int
    signatures: int
    seconds: float


class _Zone(NamedTuple):
    """A zone read and ready to sign: its names in file order, with what decides how each is
    signed."""

    names: list[tuple[NameKey, tuple[str, dict[int, ParsedRRset]]]]
    apex: NameKey
    cuts: frozenset[NameKey]
    dnames: frozenset[NameKey]
    origin: dns.name.Name
    origin_text: str
    ksks: list[AnyKey]
    zsks: list[AnyKey]
    inception: int
    expiration: int
    denial_ttl: int
    opt_out: bool


# An NSEC to make: owner text, owner key, types, next owner text.
NsecLink = tuple[str, NameKey, tuple[int, ...], str]
# An NSEC3 to make: owner hash, next hash, types.
Nsec3Link = tuple[bytes, bytes, tuple[int, ...]]
# Signed text, records in it, RRSIGs among them.
_Part = tuple[str, int, int]

_zone: _Zone | None = None
"""The zone forked workers inherit; set only while they are being started and run."""


def sign_zone_text(
    text: str,
    keys: Sequence[AnyKey],
    inception: datetime,
    expiration: datetime,
    origin: str | None = None,
    nsec: Literal["nsec", "nsec3"] = "nsec",
    workers: int | None = None,
    opt_out: bool = False,
) -> tuple[str, SigningSummary]:
    """Sign master-file `text`; return the signed zone's text and a summary.

    `origin` is the zone's name when the file has no `$ORIGIN` before its first relative name.
    Existing RRSIG, NSEC, NSEC3 and NSEC3PARAM records are dropped and made again. `workers`
    caps the processes used (default: one per CPU). `opt_out` (NSEC3 only, RFC 5155 §6) leaves
    delegations without DS out of the chain and sets the Opt-Out flag, for zones of many
    insecure delegations; RFC 9276 §3.1 advises it only there. Raises `ZoneFileError` for a
    file that cannot be read as a zone, with the line at fault.
    """
    started = time.perf_counter()
    if nsec not in ("nsec", "nsec3"):
        raise ValueError(f"nsec must be 'nsec' or 'nsec3', not {nsec!r}")
    if not keys:
        raise ValueError("at least one signing key is needed")
    if opt_out and nsec != "nsec3":
        raise ValueError("opt-out is an NSEC3 feature")
    # The parsed zone is a few hundred thousand small acyclic objects: left on, the cyclic
    # collector walks all of them again and again while they are built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        origin_name, names = _read(text, origin)
        zone = _prepare(origin_name, names, keys, inception, expiration, nsec, opt_out)
        parts = _sign(zone, nsec, workers)
    finally:
        if collecting:
            gc.enable()
    signed = "".join(part for part, _, _ in parts)
    summary = SigningSummary(
        origin=zone.origin_text,
        records=sum(records for _, records, _ in parts),
        signatures=sum(signatures for _, _, signatures in parts),
        seconds=time.perf_counter() - started,
    )
    return signed, summary


# Reading


def _read(text: str, origin: str | None) -> tuple[dns.name.Name, _Names]:
    """The zone's origin and its names: canonical key -> (owner text, RRsets by type)."""
    try:
        origin_name = dns.name.from_text(origin) if origin else None
    except dns.exception.DNSException as exc:
        raise ZoneFileError(0, f"bad origin {origin!r}: {exc}") from None
    origin_text = origin_name.to_text() if origin_name else None
    relative_to: str | None = None
    default_ttl: int | None = None
    last_ttl: int | None = None
    owner: tuple[NameKey, str] | None = None
    names: _Names = {}
    owners: dict[str, tuple[NameKey, str]] = {}
    types: dict[str, int] = {}
    for number, line in _entries(text):
        if line[0] in " \t":
            rest = line
            if owner is None:
                raise ZoneFileError(number, "a record without an owner name")
        else:
            first, rest = _split(line)
            if first.startswith("$"):
                directive = first.upper()
                argument = rest.split()
                if directive == "$ORIGIN" and len(argument) == 1:
                    origin_name = _absolute_name(number, argument[0], origin_name)
                    origin_text = relative_to = origin_name.to_text()
                    owners.clear()
                elif directive == "$TTL" and len(argument) == 1:
                    default_ttl = _ttl(number, argument[0])
                elif directive in ("$ORIGIN", "$TTL"):
                    raise ZoneFileError(number, f"{directive} takes one value")
                else:
                    raise ZoneFileError(number, f"{first} is not supported here")
                continue
            owner = owners.get(first)
            if owner is None:
                owner = _owner(number, first, origin_text)
                owners[first] = owner
        ttl: int | None = None
        rdtype = 0
        parts = rest.split(None, 3)
        for position, token in enumerate(parts):
            if position == 3:
                break
            if token[0].isdigit():
                ttl = _ttl(number, token)
                continue
            upper = token.upper()
            if upper == "IN":
                continue
            if upper in ("CH", "HS", "CS", "NONE", "ANY") or upper.startswith("CLASS"):
                raise ZoneFileError(number, f"class {token} is not supported, only IN")
            known = types.get(upper)
            if known is None:
                try:
                    known = types[upper] = dns.rdatatype.from_text(upper)
                except dns.exception.DNSException:
                    raise ZoneFileError(number, f"unknown record type {token}") from None
            rdtype = known
            if position < 2 and ('"' in rest or "\\" in rest):
                # Quoted strings keep their spacing: the data is the rest of the entry as written.
                split = rest.split(None, position + 1)
                rest = split[-1] if len(split) > position + 1 else ""
            else:
                rest = " ".join(parts[position + 1:])
            break
        if not rdtype:
            raise ZoneFileError(number, "a record without a type")
        if rdtype in _REBUILT:
            continue
        if ttl is None:
            ttl = default_ttl if default_ttl is not None else last_ttl
        if ttl is None:
            raise ZoneFileError(number, "no TTL on the record and no $TTL before it")
        last_ttl = ttl
        rdata = rest.strip()
        if not rdata:
            raise ZoneFileError(number, f"a {_type_name(rdtype)} record without data")
        assert owner is not None
        key, owner_text = owner
        entry = names.get(key)
        if entry is None:
            entry = names[key] = (owner_text, {})
        existing = entry[1].get(rdtype)
        if existing is None:
            entry[1][rdtype] = (rdtype, ttl, [(number, rdata, relative_to)])
        else:
            # RFC 2181 §5.2: one TTL per RRset; the smallest wins, as dnspython does.
            entry[1][rdtype] = (
                rdtype, min(existing[1], ttl), [*existing[2], (number, rdata, relative_to)])
    if not names:
        raise ZoneFileError(0, "the file holds no records")
    if origin is not None:
        assert origin_name is not None
        return dns.name.from_text(origin), names
    # With no origin given, the zone is the owner of its SOA.
    soas = [key for key, (_, sets) in names.items() if _SOA in sets]
    if len(soas) != 1:
        raise ZoneFileError(0, "the file has no SOA record (or several) and no origin was given")
    return dns.name.Name((*reversed(soas[0]), b"")), names


def _entries(text: str) -> Iterator[tuple[int, str]]:
    """(line number, entry) with comments dropped and parenthesised continuations joined."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if '"' not in line and "(" not in line and ")" not in line and "\\" not in line:
            line = line.split(";", 1)[0].rstrip()
            if line.strip():
                yield index, line
            continue
        number = index
        out: list[str] = []
        depth = 0
        quoted = escaped = False
        while True:
            for character in line:
                if escaped:
                    escaped = False
                elif character == "\\":
                    escaped = True
                elif quoted:
                    quoted = character != '"'
                elif character == '"':
                    quoted = True
                elif character == ";":
                    break
                elif character == "(":
                    depth += 1
                    character = " "
                elif character == ")":
                    depth -= 1
                    if depth < 0:
                        raise ZoneFileError(index, "a ')' without its '('")
                    character = " "
                out.append(character)
            if quoted:
                raise ZoneFileError(index, "a quoted string is not closed on its line")
            if depth == 0:
                break
            if index >= len(lines):
                raise ZoneFileError(number, "a '(' is never closed")
            line = lines[index]
            index += 1
            out.append(" ")
        entry = "".join(out).rstrip()
        if entry.strip():
            yield number, entry


def _split(text: str) -> tuple[str, str]:
    """The first token of `text` and the rest."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _ttl(number: int, token: str) -> int:
    try:
        return dns.ttl.from_text(token)
    except dns.exception.DNSException:
        raise ZoneFileError(number, f"bad TTL {token!r}") from None


def _absolute_name(number: int, token: str, origin: dns.name.Name | None) -> dns.name.Name:
    try:
        return dns.name.from_text(token, origin if origin is not None else dns.name.root)
    except dns.exception.DNSException as exc:
        raise ZoneFileError(number, f"bad name {token!r}: {exc}") from None


def _owner(number: int, written: str, origin_text: str | None) -> tuple[NameKey, str]:
    """The canonical key and absolute text of an owner name as written."""
    if written == "@":
        if origin_text is None:
            raise ZoneFileError(number, "'@' with no $ORIGIN and no origin given")
        written = origin_text
    elif not written.endswith(".") or written.endswith("\\."):
        if origin_text is None:
            raise ZoneFileError(number, f"relative name {written!r} with no $ORIGIN")
        written = f"{written}.{origin_text}" if origin_text != "." else f"{written}."
    if "\\" in written or not written.isascii():
        name = _absolute_name(number, written, None)
        return tuple(label.lower() for label in reversed(name.labels[:-1])), name.to_text()
    labels = written.lower().encode("ascii").split(b".")[:-1]
    if (
        len(written) > 254
        or (written != "." and not all(labels))
        or (len(written) > 64 and any(len(label) > 63 for label in labels))
    ):
        raise ZoneFileError(number, f"bad name {written!r}")
    labels.reverse()
    return tuple(labels), written


# Planning: what is signed, and the denial chain


def _prepare(
    origin: dns.name.Name,
    names: _Names,
    keys: Sequence[AnyKey],
    inception: datetime,
    expiration: datetime,
    nsec: str,
    opt_out: bool = False,
) -> _Zone:
    """The zone as the workers sign it, once its apex is checked and completed."""
    apex = tuple(label.lower() for label in reversed(origin.labels[:-1]))
    origin_text = origin.to_text()
    size = len(apex)
    outside = [key for key in names if key[:size] != apex]
    if outside:
        raise ZoneFileError(0, f"{names[outside[0]][0]} is outside the zone {origin_text}")
    apex_sets = names.get(apex, (origin_text, {}))[1]
    soa = apex_sets.get(_SOA)
    if soa is None:
        raise ZoneFileError(0, f"the zone {origin_text} has no SOA record at its apex")
    if len(soa[2]) != 1:
        raise ZoneFileError(soa[2][1][0], "a zone has exactly one SOA record")
    try:
        minimum = dns.rdata.from_text("IN", "SOA", soa[2][0][1], origin=origin).minimum  # type: ignore[attr-defined]
    except dns.exception.DNSException as exc:
        raise ZoneFileError(soa[2][0][0], f"bad SOA: {exc}") from None
    existing = apex_sets.get(_DNSKEY)
    dnskeys: list[tuple[int, str, str | None]] = [
        (0, key.dnskey.to_text(), None) for key in keys]
    apex_sets[_DNSKEY] = (
        _DNSKEY,
        existing[1] if existing else soa[1],
        [*(existing[2] if existing else ()), *dnskeys],
    )
    if nsec == "nsec3":
        apex_sets[_NSEC3PARAM] = (_NSEC3PARAM, 0, [(0, "1 0 0 -", None)])
    # The apex first and its SOA first, as master files and zone transfers begin.
    ordered_apex = {_SOA: soa, **{t: rrset for t, rrset in apex_sets.items() if t != _SOA}}
    apex_entry = (names[apex][0] if apex in names else origin_text, ordered_apex)
    names.pop(apex, None)
    ksks = [key for key in keys if key.is_ksk]
    zsks = [key for key in keys if not key.is_ksk] or ksks
    return _Zone(
        names=[(apex, apex_entry), *names.items()],
        apex=apex,
        cuts=frozenset(key for key, (_, sets) in names.items() if _NS in sets and key != apex),
        dnames=frozenset(key for key, (_, sets) in names.items() if _DNAME in sets),
        origin=origin,
        origin_text=origin_text,
        ksks=ksks or zsks,
        zsks=zsks,
        inception=signature_time(inception),
        expiration=signature_time(expiration),
        denial_ttl=min(soa[1], minimum),
        opt_out=opt_out,
    )


def _mode(zone: _Zone, key: NameKey) -> int:
    """Whether the name is glue (or other occluded data), authoritative, or a zone cut."""
    apex = len(zone.apex)
    # Below a delegation or a DNAME (RFC 6672 §2.3) nothing is authoritative.
    for size in range(apex, len(key)):
        above = key[:size]
        if above in zone.dnames or (size > apex and above in zone.cuts):
            return UNSIGNED
    return DELEGATION if key in zone.cuts else SIGNED


def _links(zone: _Zone, nsec: str) -> list[NsecLink] | list[Nsec3Link]:
    """The denial chain: an NSEC per authoritative name in canonical order (RFC 4034 §4), or
    an NSEC3 per authoritative name and empty non-terminal in hash order (RFC 5155 §7.1)."""
    names = dict(zone.names)
    chain: list[tuple[NameKey, int]] = []
    # In canonical order a name's descendants follow it, so one pass finds what a cut or a
    # DNAME occludes (the same answer as `_mode`, without looking up every ancestor).
    occluder: NameKey | None = None
    for key in sorted(names):
        if occluder is not None and key[: len(occluder)] == occluder:
            continue
        occluder = key if key in zone.cuts or key in zone.dnames else None
        chain.append((key, DELEGATION if key in zone.cuts else SIGNED))
    if nsec == "nsec":
        return [
            (names[key][0], key, (*_chain_types(names[key][1], mode), _RRSIG, _NSEC),
             names[chain[(index + 1) % len(chain)][0]][0])
            for index, (key, mode) in enumerate(chain)
        ]
    types_at: dict[NameKey, tuple[int, ...]] = {}
    for key, mode in chain:
        types = _chain_types(names[key][1], mode)
        if zone.opt_out and mode == DELEGATION and _DS not in types:
            continue  # covered by an Opt-Out span instead (RFC 5155 §7.1)
        # An insecure delegation holds no signed RRset, so its bitmap has no RRSIG.
        types_at[key] = (*types, _RRSIG) if mode == SIGNED or _DS in types else types
        for size in range(len(zone.apex) + 1, len(key)):
            if key[:size] not in names:
                types_at.setdefault(key[:size], ())  # an empty non-terminal
    hashed = sorted(
        (hashlib.sha1(_owner_wire(key), usedforsecurity=False).digest(), types)
        for key, types in types_at.items()
    )
    return [
        (digest, hashed[(index + 1) % len(hashed)][0], types)
        for index, (digest, types) in enumerate(hashed)
    ]


def _chain_types(sets: dict[int, ParsedRRset], mode: int) -> tuple[int, ...]:
    """The types a denial record lists; at a zone cut only NS and DS (RFC 4035 §2.3)."""
    if mode == DELEGATION:
        return tuple(rdtype for rdtype in sets if rdtype in (_NS, _DS))
    return tuple(sets)


# Signing: what the workers run


def _sign(zone: _Zone, nsec: str, workers: int | None) -> list[_Part]:
    """Sign the zone's RRsets, then its chain, in forked processes when the zone is large.

    The workers start on the RRsets as soon as the file is read; the chain is planned
    meanwhile and handed to them after.
    """
    global _zone
    count = min(workers or os.cpu_count() or 1, len(zone.names) // _PARALLEL_THRESHOLD + 1)
    # A key held in an HSM signs through a token session, which a forked process cannot share.
    held = any(not isinstance(key, SigningKey) for key in [*zone.ksks, *zone.zsks])
    if count <= 1 or held or "fork" not in multiprocessing.get_all_start_methods():
        return [_sign_names(0, len(zone.names), zone), _sign_links(_links(zone, nsec), zone)]
    _zone = zone
    try:
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork")) as pool:
            names = [pool.submit(_sign_names, start, stop)
                     for start, stop in _runs(zone, count * 3)]
            links = _links(zone, nsec)
            size = len(links) // (count * 2) + 1
            chain = [pool.submit(_sign_links, links[start:start + size])
                     for start in range(0, len(links), size)]
            try:
                return [future.result() for future in (*names, *chain)]
            except ZoneFileError:
                pool.shutdown(cancel_futures=True)  # the file is refused: no point going on
                raise
    finally:
        _zone = None


def _runs(zone: _Zone, runs: int) -> list[tuple[int, int]]:
    """The names cut into `runs` runs of about equal work (an RRSIG per RRset)."""
    total = sum(len(sets) for _, (_, sets) in zone.names)
    bounds: list[tuple[int, int]] = []
    start = done = 0
    for index, (_, (_, sets)) in enumerate(zone.names):
        done += len(sets)
        if done * runs >= total * (len(bounds) + 1):
            bounds.append((start, index + 1))
            start = index + 1
    if start < len(zone.names):
        bounds.append((start, len(zone.names)))
    return bounds


class _Writer:
    """Writes RRsets and their RRSIGs as presentation text, signing with the zone's keys.

    The signatures are made together at the end (`part`): made one by one between the text
    of each RRset, each cost about 40% more, OpenSSL's tables no longer in the CPU's cache.
    """

    def __init__(self, zone: _Zone) -> None:
        self.zone = zone
        self.out: list[str] = []
        # The RRSIGs to make: where each goes in `out` (its text so far there), the signing
        # function and the data signed.
        self.unsigned: list[tuple[int, Callable[[bytes], bytes], bytes]] = []
        self.records = 0
        self.signer_wire = key_wire(zone.apex)
        self.type_names: dict[int, str] = {}
        self.bitmaps: dict[tuple[int, ...], tuple[bytes, str]] = {}
        times = f"{_time_text(zone.expiration)} {_time_text(zone.inception)}"
        # Per key: the signing function, and what the RRSIG fields after the labels and the
        # original TTL hold, in wire (after the type covered) and in text.
        self.ksks = [self._signing(key, times) for key in zone.ksks]
        self.zsks = [self._signing(key, times) for key in zone.zsks]

    def _signing(
        self, key: AnyKey, times: str
    ) -> tuple[Callable[[bytes], bytes], int, bytes, str]:
        zone = self.zone
        fields = _RRSIG_TAIL.pack(zone.expiration, zone.inception, key.key_tag)
        return (signer(key), key.algorithm, fields + self.signer_wire,
                f" {times} {key.key_tag} {zone.origin_text} ")

    def rrset(
        self,
        owner: str,
        owner_wire: bytes,
        labels: int,
        rdtype: int,
        ttl: int,
        rdatas: list[tuple[bytes, str]],
        signed: bool,
    ) -> None:
        """One RRset: `rdatas` are (canonical wire, text) in canonical order (RFC 4034 §6.3)."""
        type_name = self.type_names.get(rdtype) or self.type_names.setdefault(
            rdtype, _type_name(rdtype))
        out = self.out
        if len(rdatas) == 1:
            out.append(f"{owner}\t{ttl}\tIN\t{type_name}\t{rdatas[0][1]}\n")
        else:
            head = f"{owner}\t{ttl}\tIN\t{type_name}\t"
            out.extend(f"{head}{shown}\n" for _, shown in rdatas)
        self.records += len(rdatas)
        if not signed:
            return
        header = owner_wire + _RR_HEAD.pack(rdtype, 1, ttl)
        if len(rdatas) == 1:
            wire = rdatas[0][0]
            rrset_wire = header + _LENGTH.pack(len(wire)) + wire
        else:
            rrset_wire = b"".join([header + _LENGTH.pack(len(wire)) + wire
                                   for wire, _ in rdatas])
        # RFC 7344 section 4.1: CDS and CDNSKEY are signed by the KSKs, like the DNSKEY RRset.
        unsigned = self.unsigned
        for sign, algorithm, fields, text in (self.ksks if rdtype in KSK_SIGNED_TYPES
                                              else self.zsks):
            unsigned.append((len(out), sign, _RRSIG_HEAD.pack(rdtype, algorithm, labels, ttl)
                             + fields + rrset_wire))
            out.append(
                f"{owner}\t{ttl}\tIN\tRRSIG\t{type_name} {algorithm} {labels} {ttl}{text}")

    def bitmap(self, types: tuple[int, ...]) -> tuple[bytes, str]:
        """The NSEC and NSEC3 type bitmap field (RFC 4034 §4.1.2) and its text; most names
        share one of a few type sets, so each is built once."""
        found = self.bitmaps.get(types)
        if found is None:
            found = self.bitmaps[types] = _bitmap(types)
        return found

    def part(self) -> _Part:
        """The text written, with every RRSIG made; the records in it; the RRSIGs."""
        out = self.out
        for index, sign, data in self.unsigned:
            out[index] += b2a_base64(sign(data), newline=False).decode("ascii") + "\n"
        signatures = len(self.unsigned)
        self.unsigned.clear()
        return "".join(out), self.records + signatures, signatures


def _sign_names(start: int, stop: int, zone: _Zone | None = None) -> _Part:
    """The RRsets of names `start` to `stop` of `zone` (in a worker, the inherited one)."""
    zone = zone or _zone
    assert zone is not None
    writer = _Writer(zone)
    origins: dict[str, dns.name.Name] = {}
    # The wire form of each name written, kept for the names below it (glue follows its
    # delegation in most files).
    wires: dict[NameKey, bytes] = {}
    for key, (owner, sets) in zone.names[start:stop]:
        mode = _mode(zone, key)
        owner_wire = wires[key] = _owner_wire(key, wires)
        labels = len(key) - (1 if key and key[-1] == b"*" else 0)
        for rdtype, ttl, records in sets.values():
            rdatas: dict[bytes, str] = {}
            for number, text, relative_to in records:
                if relative_to is None:
                    wire, shown = _rdata(number, rdtype, text, zone.origin, zone.origin_text)
                else:
                    under = origins.get(relative_to) or origins.setdefault(
                        relative_to, dns.name.from_text(relative_to))
                    wire, shown = _rdata(number, rdtype, text, under, relative_to)
                rdatas.setdefault(wire, shown)
            signed = mode == SIGNED or (mode == DELEGATION and rdtype == _DS)
            ordered = sorted(rdatas.items()) if len(rdatas) > 1 else list(rdatas.items())
            writer.rrset(owner, owner_wire, labels, rdtype, ttl, ordered, signed)
    return writer.part()


def _sign_links(links: list[NsecLink] | list[Nsec3Link], zone: _Zone | None = None) -> _Part:
    """The NSEC or NSEC3 records of `links`, signed."""
    zone = zone or _zone
    assert zone is not None
    writer = _Writer(zone)
    suffix = "." + zone.origin_text if zone.origin_text != "." else "."
    next_label = ""
    flags = 1 if zone.opt_out else 0  # the Opt-Out bit (RFC 5155 §3.1.2.1)
    for link in links:
        if len(link) == 4:
            owner, key, types, next_text = link
            bitmap, types_text = writer.bitmap(types)
            labels = len(key) - (1 if key and key[-1] == b"*" else 0)
            writer.rrset(owner, _owner_wire(key), labels, _NSEC, zone.denial_ttl,
                         [(_name_wire(next_text) + bitmap, f"{next_text} {types_text}")], True)
        else:
            digest, following, types = link
            bitmap, types_text = writer.bitmap(types)
            # Each hash is the next one's successor: its label is made once, when it is next.
            label = next_label or _hash_label(digest)
            next_label = _hash_label(following)
            # RFC 9276 parameters: SHA-1, no extra iterations, no salt.
            wire = bytes((1, flags)) + b"\x00\x00\x00\x14" + following + bitmap
            writer.rrset(f"{label}{suffix}",
                         bytes((len(label),)) + label.encode("ascii") + writer.signer_wire,
                         len(zone.apex) + 1, _NSEC3, zone.denial_ttl,
                         [(wire, f"1 {flags} 0 - {next_label} {types_text}".rstrip())], True)
    return writer.part()


def _hash_label(digest: bytes) -> str:
    """The owner label of an NSEC3: the hash in lower-case base32hex (RFC 5155 §3.3)."""
    return base64.b32hexencode(digest).decode("ascii").lower()


def _rdata(
    number: int, rdtype: int, text: str, origin: dns.name.Name, origin_text: str
) -> tuple[bytes, str]:
    """The canonical wire form (RFC 4034 §6.2) and presentation text of one record's data."""
    try:
        if rdtype == _A:
            return socket.inet_pton(socket.AF_INET, text), text
        if rdtype == _AAAA:
            wire = socket.inet_pton(socket.AF_INET6, text)
            return wire, socket.inet_ntop(socket.AF_INET6, wire)
        if rdtype in _NAME_TYPES and " " not in text and "\t" not in text and "\\" not in text:
            shown = _name_text(text, origin_text)
            return _text_wire(shown.lower()), shown
        if rdtype == _MX and "\\" not in text:
            preference, exchange = text.split()
            shown = _name_text(exchange, origin_text)
            return struct.pack("!H", int(preference)) + _text_wire(shown.lower()), (
                f"{int(preference)} {shown}")
        if rdtype == _DS:
            tag, algorithm, digest_type, *digest = text.split()
            value = bytes.fromhex("".join(digest))
            if len(value) != _DS_DIGEST_SIZES.get(int(digest_type), len(value)) or not value:
                raise ValueError("the digest length does not match its type")
            return struct.pack("!HBB", int(tag), int(algorithm), int(digest_type)) + value, (
                f"{int(tag)} {int(algorithm)} {int(digest_type)} {value.hex().upper()}")
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype), text, origin=origin,
            relativize=False)
        return rdata.to_digestable(origin), rdata.to_text()
    except (OSError, ValueError, struct.error, dns.exception.DNSException) as exc:
        reason = str(exc) or type(exc).__name__
        raise ZoneFileError(
            number, f"bad {_type_name(rdtype)} data {text!r}: {reason}") from None


def _name_text(written: str, origin_text: str) -> str:
    if written == "@":
        return origin_text
    if written.endswith("."):
        shown = written
    else:
        shown = f"{written}.{origin_text}" if origin_text != "." else f"{written}."
    if shown == ".":
        return shown
    if (
        not shown.isascii()
        or len(shown) > 254
        or ".." in shown
        or shown.startswith(".")
        or (len(written) > 63 and any(len(label) > 63 for label in shown.split(".")))
    ):
        raise ValueError(f"bad name {written!r}")
    return shown


def _text_wire(text: str) -> bytes:
    """The wire form of an absolute name written in plain ASCII (no escapes)."""
    if text == ".":
        return b"\x00"
    first, _, rest = text.partition(".")
    label = first.encode("ascii")
    return bytes((len(label),)) + label + _suffix_wire(rest)


@functools.lru_cache(maxsize=4096)
def _suffix_wire(text: str) -> bytes:
    """`_text_wire` of a parent name ("" for the root): most names of a zone share a few."""
    return b"".join(
        bytes((len(label),)) + label for label in text.encode("ascii").split(b".")[:-1]
    ) + b"\x00"


def _owner_wire(key: NameKey, known: Mapping[NameKey, bytes] = MappingProxyType({})) -> bytes:
    """`key_wire`, the parent's part looked up (in `known`, then in a small cache) rather
    than built for every name."""
    if not key:
        return b"\x00"
    parent = key[:-1]
    return bytes((len(key[-1]),)) + key[-1] + (known.get(parent) or _parent_wire(parent))


_parent_wire = functools.lru_cache(maxsize=4096)(key_wire)


def _name_wire(text: str) -> bytes:
    """The wire form of an absolute name, keeping its case."""
    if "\\" in text or not text.isascii():
        wire = dns.name.from_text(text).to_wire()
        assert wire is not None
        return wire
    return _text_wire(text)


def _bitmap(types: tuple[int, ...]) -> tuple[bytes, str]:
    windows: dict[int, bytearray] = {}
    for rdtype in types:
        bits = windows.setdefault(rdtype >> 8, bytearray(32))
        bits[(rdtype & 0xFF) >> 3] |= 0x80 >> (rdtype & 0x07)
    wire = b""
    for window in sorted(windows):
        bits = windows[window].rstrip(b"\x00")
        wire += bytes((window, len(bits))) + bits
    return wire, " ".join(_type_name(rdtype) for rdtype in sorted(set(types)))


def _type_name(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


def _time_text(value: int) -> str:
    """An RRSIG time in its YYYYMMDDHHmmSS presentation form (RFC 4034 §3.2)."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y%m%d%H%M%S")
