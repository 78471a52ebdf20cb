"""What an authoritative answer holds: the lookup of one question in one zone snapshot.

`ZoneIndex` is built once per `ServedZone` and answers (name, type, DNSSEC OK) with the
sections an authoritative server returns (RFC 1034 §4.3.2, RFC 4035 §3.1, RFC 5155 §7.2):
positive answers with their RRSIGs, CNAME chains inside the zone, wildcard expansion
(RFC 4592), referrals with glue, and NXDOMAIN / NODATA with the SOA and the NSEC or NSEC3
proofs. Responses stay minimal: only what a resolver needs (glue, denial proofs).

A query for ANY gets one RRset of the name, the one with the lowest type number, with its
RRSIGs when DNSSEC is asked for (RFC 8482 §4.2, "a subset of the RRsets"). A query for RRSIG
gets every signature at the name. DNAME is served as data, not used to synthesize CNAMEs.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from regshield.dns import wireform
from regshield.dns.denial import DenialIndex
from regshield.dns.zonedata import ServedZone

# Longest CNAME chain followed inside one zone before the answer is returned as it stands.
MAX_CNAME_CHAIN = 8
_WILDCARD_LABEL = b"*"
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
# `ZoneIndex.following` takes a snapshot from the index before it when at most this many
# RRsets differ, or this share of the zone's if more; beyond, the index is built whole.
FOLLOW_AT_MOST = 256
FOLLOW_SHARE = 0.05
# Names that stop owning anything, past which the index is built whole: each costs a pass
# over the zone's names to learn whether it stays as an empty non-terminal.
FOLLOW_VANISHED_AT_MOST = 16
_NSEC3_TYPES = (dns.rdatatype.NSEC3, dns.rdatatype.RRSIG)


@dataclass(frozen=True)
class Answer:
    """The sections of one response, before it is put on the wire."""

    rcode: int
    authoritative: bool
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    additional: tuple[dns.rrset.RRset, ...] = ()


class ZoneIndex:
    """Lookup structures for one zone snapshot: names, delegation points, denial chains."""

    def __init__(self, zone: ServedZone) -> None:
        self._hold(zone)
        self.origin = zone.origin
        self._types: dict[dns.name.Name, set[int]] = {}
        self._rrsigs: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        nsec3_owners: list[dns.name.Name] = []
        nsec_owners: list[dns.name.Name] = []
        for rrset in zone.rrsets:
            if rrset.rdtype == dns.rdatatype.NSEC3:
                nsec3_owners.append(rrset.name)
                continue
            if rrset.rdtype == dns.rdatatype.NSEC:
                nsec_owners.append(rrset.name)
            if rrset.rdtype == dns.rdatatype.RRSIG:
                if rrset.covers == dns.rdatatype.NSEC3:
                    continue
                self._types.setdefault(rrset.name, set())
                self._rrsigs.setdefault(rrset.name, []).append(rrset)
                continue
            self._types.setdefault(rrset.name, set()).add(rrset.rdtype)
        # Empty non-terminals exist too (RFC 4592 §2.2.2): NODATA, not NXDOMAIN.
        self._existing: set[dns.name.Name] = set(self._types)
        self._existing.update(_empty_non_terminals(self.origin, self._types))
        self._cuts = {
            name for name, types in self._types.items()
            if name != self.origin and dns.rdatatype.NS in types
        }
        self._nsec_owners = sorted(nsec_owners, key=_canonical_order)
        self._nsec3: list[tuple[bytes, dns.name.Name]] = []
        self._nsec3_salt = b""
        self._nsec3_iterations = 0
        if nsec3_owners:
            first = zone.find(nsec3_owners[0], dns.rdatatype.NSEC3)
            assert first is not None
            self._nsec3_salt = first[0].salt
            self._nsec3_iterations = first[0].iterations
            self._nsec3 = sorted(
                (base64.b32hexdecode(owner.labels[0].upper()), owner) for owner in nsec3_owners
            )
        self._nsec3_digests = [digest for digest, _ in self._nsec3]
        self._set_negative_soa()
        self.denial = DenialIndex(
            origin=self.origin, rrsets=zone.rrsets, types=self._types,
            signed=[name for name, sets in self._rrsigs.items() if sets],
            existing=self._existing, cuts=self._cuts, nsec_owners=self._nsec_owners,
            nsec3=self._nsec3, nsec3_salt=self._nsec3_salt,
            nsec3_iterations=self._nsec3_iterations,
            negative_soa=self._negative_soa_section(False),
            negative_soa_signed=self._negative_soa_section(True),
        )

    def _hold(self, zone: ServedZone) -> None:
        """Keep what the lookups need of `zone`, not `zone` itself: the snapshot holds its
        index (`prepare_index`), and a reference back would make a cycle that keeps a
        replaced snapshot of a large zone alive until a full collection walks every object
        of the process (half a second with the event loop stopped); without it, a snapshot
        is freed as soon as nothing serves it."""
        zone.find(zone.origin, dns.rdatatype.SOA)  # its lookup made, if it was not
        self._zone = weakref.ref(zone)
        self._lookup = zone.lookup
        self.origin = zone.origin

    @property
    def zone(self) -> ServedZone | None:
        """The snapshot indexed, while anything else holds it."""
        return self._zone()

    def _find(self, name: dns.name.Name, rdtype: int,
              covers: int = dns.rdatatype.NONE) -> dns.rrset.RRset | None:
        return self._lookup.get((name, rdtype, covers))

    @classmethod
    def following(cls, previous: ZoneIndex, zone: ServedZone) -> ZoneIndex | None:
        """The index of `zone` made from `previous`, the index of the snapshot it follows,
        by the RRsets that differ; None when too much differs (or the NSEC3 parameters do),
        and the index is to be built whole. The result equals the whole build's.

        The signer and `apply_diffs` keep an RRset that did not change as the same object
        from one snapshot to the next, so the difference is found by identity: an edit of
        100,000 records costs a quarter of a second here instead of a second and a half.
        `previous` is only read (it may be serving meanwhile); what does not add up (an
        owner missing from a chain) is left to the whole build.
        """
        before = previous.zone
        if before is None or before.origin != zone.origin:
            return None
        now_ids = set(map(id, zone.rrsets))
        before_ids = set(map(id, before.rrsets))
        added = [rrset for rrset in zone.rrsets if id(rrset) not in before_ids]
        removed = [rrset for rrset in before.rrsets if id(rrset) not in now_ids]
        if len(added) + len(removed) > max(FOLLOW_AT_MOST, len(zone.rrsets) * FOLLOW_SHARE):
            return None
        if any(rrset.rdtype == dns.rdatatype.NSEC3PARAM
               for rrset in itertools.chain(added, removed)):
            return None
        zone.take_lookup(before, added, removed)  # before `_hold`, which keeps the lookup
        keys: dict[dns.name.Name, set[tuple[int, int]]] = {}
        for rrset in itertools.chain(added, removed):
            keys.setdefault(rrset.name, set()).add((rrset.rdtype, rrset.covers))

        index = cls.__new__(cls)
        index._hold(zone)
        index.origin = origin = zone.origin
        types = index._types = dict(previous._types)
        rrsigs = index._rrsigs = dict(previous._rrsigs)
        existing = index._existing = set(previous._existing)
        cuts = index._cuts = set(previous._cuts)
        nsec_owners = index._nsec_owners = list(previous._nsec_owners)
        nsec3 = index._nsec3 = list(previous._nsec3)
        index._nsec3_salt = previous._nsec3_salt
        index._nsec3_iterations = previous._nsec3_iterations
        appeared: list[dns.name.Name] = []
        vanished: list[dns.name.Name] = []
        for name, at_name in keys.items():
            old_types = previous._types.get(name)
            old_rrsigs = previous._rrsigs.get(name, [])
            covered: list[int] = [rrsig.covers for rrsig in old_rrsigs]
            covered += sorted({covers for rdtype, covers in at_name
                               if rdtype == dns.rdatatype.RRSIG} - set(covered))
            new_rrsigs = [rrsig for covers in covered
                          if covers != dns.rdatatype.NSEC3 and (rrsig := zone.find(
                              name, dns.rdatatype.RRSIG, covers)) is not None]
            candidates = set(old_types or ()) | {
                rdtype for rdtype, _ in at_name if rdtype not in _NSEC3_TYPES}
            new_types = {rdtype for rdtype in candidates if zone.find(name, rdtype) is not None}
            if new_types or new_rrsigs:
                types[name] = new_types
                if new_rrsigs:
                    rrsigs[name] = new_rrsigs
                else:
                    rrsigs.pop(name, None)
                if old_types is None:
                    appeared.append(name)
            else:
                types.pop(name, None)
                rrsigs.pop(name, None)
                if old_types is not None:
                    vanished.append(name)
            had_ns = old_types is not None and dns.rdatatype.NS in old_types
            if name != origin and had_ns != (dns.rdatatype.NS in new_types):
                if had_ns:
                    cuts.discard(name)
                else:
                    cuts.add(name)
            had_nsec = old_types is not None and dns.rdatatype.NSEC in old_types
            if had_nsec != (dns.rdatatype.NSEC in new_types) and not _placed(
                    nsec_owners, name, not had_nsec, key=_canonical_order):
                return None
            had_nsec3 = before.find(name, dns.rdatatype.NSEC3) is not None
            if had_nsec3 != (zone.find(name, dns.rdatatype.NSEC3) is not None) and not _placed(
                    nsec3, (base64.b32hexdecode(name.labels[0].upper()), name), not had_nsec3):
                return None
        if bool(nsec3) != bool(previous._nsec3) or len(vanished) > FOLLOW_VANISHED_AT_MOST:
            # A chain that starts or ends (its parameters are the whole build's), or many
            # names that may leave empty non-terminals behind.
            return None
        apex = _lowered_wire(origin)
        existing_wires = previous.denial.existing_names()
        for name in appeared:  # it, and the empty non-terminals above it
            wire = _lowered_wire(name)
            while len(wire) > len(apex) and wire not in existing_wires:
                existing.add(wireform.stored_name(wire))
                existing_wires.add(wire)
                wire = wire[1 + wire[0]:]
        # The deepest first: a name is left as an empty non-terminal while a name below it
        # exists, and one of those may be going too.
        for name in sorted(vanished, key=len, reverse=True):
            wire = _lowered_wire(name)
            while (len(wire) > len(apex) and wire in existing_wires and name not in types
                   and not _has_descendant(existing_wires, wire)):
                existing.discard(name)
                existing_wires.discard(wire)
                wire = wire[1 + wire[0]:]
                name = name.parent()
        index._nsec3_digests = [digest for digest, _ in nsec3]
        index._set_negative_soa()
        index.denial = previous.denial.following(
            zone, list(keys), types=types, rrsigs=rrsigs, existing=existing_wires, cuts=cuts,
            kept=now_ids, negative_soa=index._negative_soa_section(False),
            negative_soa_signed=index._negative_soa_section(True))
        return index

    def _set_negative_soa(self) -> None:
        soa = self._find(self.origin, dns.rdatatype.SOA)
        if soa is None:
            raise ValueError(f"the zone {self.origin} has no SOA")
        # RFC 9077 / RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM).
        negative_ttl = min(soa.ttl, soa[0].minimum)
        self._negative_soa = _with_ttl(soa, negative_ttl)
        soa_rrsig = self._find(self.origin, dns.rdatatype.RRSIG, dns.rdatatype.SOA)
        self._negative_soa_rrsig = (
            None if soa_rrsig is None else _with_ttl(soa_rrsig, negative_ttl)
        )

    def lookup(self, qname: dns.name.Name, qtype: int, dnssec: bool) -> Answer:
        """The answer to (qname, IN, qtype); `qname` must be at or below the zone origin."""
        answer: list[dns.rrset.RRset] = []
        proofs: list[dns.rrset.RRset] = []  # wildcard expansions met along a CNAME chain
        name = qname
        visited = {name}
        for _ in range(MAX_CNAME_CHAIN):
            cut = self._delegation_above(name, qtype)
            if cut is not None:
                if answer:
                    # A CNAME led into a delegation: the resolver follows it from here.
                    return _finish(Answer(dns.rcode.NOERROR, True), answer, proofs)
                return self._referral(cut, dnssec)
            if name in self._existing:
                source = name
            else:
                encloser = self._closest_encloser(name)
                source = dns.name.Name((_WILDCARD_LABEL, *encloser.labels))
                if source not in self._existing:
                    return _finish(self._nxdomain(name, encloser, dnssec), answer, proofs)
                proofs += self._wildcard_proof(name, dnssec)
            if qtype == dns.rdatatype.RRSIG and self._rrsigs.get(source):
                answer += [_renamed(rrsig, name) if source != name else rrsig
                           for rrsig in self._rrsigs[source]]
                return _finish(Answer(dns.rcode.NOERROR, True), answer, proofs)
            rrset = self._pick(source, qtype)
            if rrset is not None:
                answer += self._signed(rrset, name, dnssec)
                return _finish(Answer(dns.rcode.NOERROR, True), answer, proofs)
            cname = self._find(source, dns.rdatatype.CNAME)
            if cname is None or qtype == dns.rdatatype.CNAME:
                wildcard = source if source != name else None
                return _finish(self._nodata(name, wildcard, dnssec), answer, proofs)
            answer += self._signed(cname, name, dnssec)
            target: dns.name.Name = cname[0].target
            if not target.is_subdomain(self.origin) or target in visited:
                break
            visited.add(target)
            name = target
        return _finish(Answer(dns.rcode.NOERROR, True), answer, proofs)

    def _pick(self, name: dns.name.Name, qtype: int) -> dns.rrset.RRset | None:
        if qtype != dns.rdatatype.ANY:
            return self._find(name, qtype)
        types = sorted(
            rdtype for rdtype in self._types.get(name, ())
            if rdtype not in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3PARAM)
        )
        return self._find(name, types[0]) if types else None

    def _delegation_above(self, name: dns.name.Name, qtype: int) -> dns.name.Name | None:
        """The delegation point closest to the apex at or above `name`, if any.

        The DS of a delegation is the parent's data (RFC 4035 §3.1.4.1), answered here.
        """
        if not self._cuts:
            return None
        cut = None
        candidate = name
        while candidate != self.origin:
            if candidate in self._cuts and not (candidate == name and qtype == dns.rdatatype.DS):
                cut = candidate
            candidate = candidate.parent()
        return cut

    def _closest_encloser(self, name: dns.name.Name) -> dns.name.Name:
        candidate = name
        while candidate not in self._existing and candidate != self.origin:
            candidate = candidate.parent()
        return candidate

    def _referral(self, cut: dns.name.Name, dnssec: bool) -> Answer:
        ns = self._find(cut, dns.rdatatype.NS)
        assert ns is not None
        authority = [ns]
        if dnssec:
            ds = self._find(cut, dns.rdatatype.DS)
            if ds is not None:
                authority += self._signed(ds, cut, dnssec)
            else:
                authority += self._no_data_proof(cut)
        additional: list[dns.rrset.RRset] = []
        for record in ns:
            target: dns.name.Name = record.target
            if not target.is_subdomain(self.origin):
                continue
            for rdtype in _ADDRESS_TYPES:
                glue = self._find(target, rdtype)
                if glue is not None:
                    additional.append(glue)
        return Answer(dns.rcode.NOERROR, False, (), tuple(authority), tuple(additional))

    def _nodata(self, name: dns.name.Name, wildcard: dns.name.Name | None,
                dnssec: bool) -> Answer:
        authority = self._negative_soa_section(dnssec)
        if dnssec:
            if wildcard is None:
                authority += self._no_data_proof(name)
            elif self._nsec3:
                # RFC 5155 §7.2.5: closest encloser, next closer name, and the wildcard itself.
                encloser = wildcard.parent()
                authority += self._nsec3_matching(encloser)
                authority += self._nsec3_covering(_next_closer(name, encloser))
                authority += self._nsec3_matching(wildcard)
            elif self._nsec_owners:  # an unsigned zone has nothing to prove with
                authority += self._nsec_covering(name) + self._nsec_matching(wildcard)
        return Answer(dns.rcode.NOERROR, True, (), tuple(authority))

    def _nxdomain(self, name: dns.name.Name, encloser: dns.name.Name,
                  dnssec: bool) -> Answer:
        authority = self._negative_soa_section(dnssec)
        if dnssec:
            wildcard = dns.name.Name((_WILDCARD_LABEL, *encloser.labels))
            if self._nsec3:
                # RFC 5155 §7.2.2: the closest encloser proof and the wildcard's absence.
                authority += self._nsec3_matching(encloser)
                authority += self._nsec3_covering(_next_closer(name, encloser))
                authority += self._nsec3_covering(wildcard)
            elif self._nsec_owners:
                authority += self._nsec_covering(name) + self._nsec_covering(wildcard)
        return Answer(dns.rcode.NXDOMAIN, True, (), tuple(authority))

    def _wildcard_proof(self, name: dns.name.Name, dnssec: bool) -> list[dns.rrset.RRset]:
        """RFC 4035 §3.1.3.3 / RFC 5155 §7.2.6: the exact name behind an expansion is absent."""
        if not dnssec:
            return []
        if self._nsec3:
            encloser = self._closest_encloser(name)
            return self._nsec3_covering(_next_closer(name, encloser))
        return self._nsec_covering(name) if self._nsec_owners else []

    def _negative_soa_section(self, dnssec: bool) -> list[dns.rrset.RRset]:
        if dnssec and self._negative_soa_rrsig is not None:
            return [self._negative_soa, self._negative_soa_rrsig]
        return [self._negative_soa]

    def _no_data_proof(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        """The denial record whose bitmap shows the types at an existing `name`."""
        if self._nsec3:
            return self._nsec3_matching(name)
        if name in self._types and self._find(name, dns.rdatatype.NSEC) is not None:
            return self._nsec_matching(name)
        return self._nsec_covering(name) if self._nsec_owners else []  # an empty non-terminal

    def _nsec_matching(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        nsec = self._find(name, dns.rdatatype.NSEC)
        return [] if nsec is None else self._signed(nsec, name, True)

    def _nsec_covering(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        index = bisect.bisect_right(self._nsec_owners, name) - 1
        owner = self._nsec_owners[index]  # index -1 wraps to the last NSEC
        return self._nsec_matching(owner)

    def _nsec3_digest(self, name: dns.name.Name) -> bytes:
        wire = name.canonicalize().to_wire()
        assert wire is not None
        digest = hashlib.sha1(wire + self._nsec3_salt, usedforsecurity=False).digest()
        for _ in range(self._nsec3_iterations):
            digest = hashlib.sha1(digest + self._nsec3_salt, usedforsecurity=False).digest()
        return digest

    def _nsec3_matching(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        digest = self._nsec3_digest(name)
        index = bisect.bisect_left(self._nsec3_digests, digest)
        if index < len(self._nsec3_digests) and self._nsec3_digests[index] == digest:
            return self._nsec3_record(self._nsec3[index][1])
        return []

    def _nsec3_covering(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        digest = self._nsec3_digest(name)
        index = bisect.bisect_left(self._nsec3_digests, digest) - 1
        return self._nsec3_record(self._nsec3[index][1])  # index -1 wraps to the last NSEC3

    def _nsec3_record(self, owner: dns.name.Name) -> list[dns.rrset.RRset]:
        nsec3 = self._find(owner, dns.rdatatype.NSEC3)
        return [] if nsec3 is None else self._signed(nsec3, owner, True)

    def _signed(self, rrset: dns.rrset.RRset, owner: dns.name.Name,
                dnssec: bool) -> list[dns.rrset.RRset]:
        """The RRset (renamed to `owner` when expanded from a wildcard) and, asked, its RRSIGs."""
        sets = [rrset]
        if dnssec:
            rrsig = self._find(rrset.name, dns.rdatatype.RRSIG, rrset.rdtype)
            if rrsig is not None:
                sets.append(rrsig)
        if owner == rrset.name:
            return sets
        return [_renamed(one, owner) for one in sets]


def _finish(result: Answer, answer: list[dns.rrset.RRset],
            proofs: list[dns.rrset.RRset]) -> Answer:
    """`result` with the CNAMEs that led to it before its answer and their proofs."""
    return Answer(
        result.rcode, result.authoritative, (*answer, *result.answer),
        tuple(_unique([*result.authority, *proofs])), result.additional,
    )


def _canonical_order(name: dns.name.Name) -> tuple[bytes, ...]:
    """A key that sorts names as `dns.name.Name` does (RFC 4034 §6.1), as tuples of bytes
    compare: a zone's owners sorted by it need no name comparison in Python."""
    return tuple(label.lower() for label in reversed(name.labels))


def _empty_non_terminals(origin: dns.name.Name, names: Iterable[dns.name.Name]
                         ) -> list[dns.name.Name]:
    """The names between `origin` and `names` that own nothing, found on lowercased wire
    forms (a dnspython name made and hashed per ancestor costs seconds on a large zone)."""
    apex = _lowered_wire(origin)
    known = {_lowered_wire(name) for name in names}
    found: list[dns.name.Name] = []
    for wire in list(known):
        ancestors = []
        while len(wire) > len(apex):
            wire = wire[1 + wire[0]:]
            if wire in known:
                break
            ancestors.append(wire)
        else:
            if wire != apex:
                continue  # not below the origin: not the zone's to answer
        known.update(ancestors)
        found.extend(wireform.stored_name(wire) for wire in ancestors)
    return found


def _placed(items: list[Any], item: Any, present: bool,
            key: Callable[[Any], Any] | None = None) -> bool:
    """Put `item` into the sorted `items` (in the order of `key`), or take it out; False
    when it is to be taken out and is not there."""
    at = bisect.bisect_left(items, item if key is None else key(item), key=key)
    if present:
        items.insert(at, item)
        return True
    if at == len(items) or items[at] != item:
        return False
    del items[at]
    return True


def _has_descendant(names: set[bytes], wire: bytes) -> bool:
    """Whether a lowercased wire name of `names` is below `wire` (at a label boundary)."""
    size = len(wire)
    for other in names:
        if len(other) > size and other.endswith(wire) and (len(other) - size) in \
                _label_offsets(other):
            return True
    return False


def _label_offsets(wire: bytes) -> set[int]:
    offsets = set()
    position = 0
    while wire[position]:
        offsets.add(position)
        position += 1 + wire[position]
    return offsets


def _lowered_wire(name: dns.name.Name) -> bytes:
    wire = name.to_wire(canonicalize=True)
    assert wire is not None
    return wire


def _next_closer(name: dns.name.Name, encloser: dns.name.Name) -> dns.name.Name:
    """The name one label longer than the closest encloser on the way to `name` (RFC 5155)."""
    return dns.name.Name(name.labels[-(len(encloser.labels) + 1):])


def _renamed(rrset: dns.rrset.RRset, owner: dns.name.Name) -> dns.rrset.RRset:
    copy = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    copy.update_ttl(rrset.ttl)
    copy.items = dict(rrset.items)
    return copy


def _with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    copy = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
    copy.update_ttl(ttl)
    copy.items = dict(rrset.items)
    return copy


def _unique(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """Drop repeated RRsets (one NSEC may both cover the name and the wildcard)."""
    seen: set[tuple[dns.name.Name, int, int]] = set()
    unique = []
    for rrset in rrsets:
        key = (rrset.name, rrset.rdtype, rrset.covers)
        if key not in seen:
            seen.add(key)
            unique.append(rrset)
    return unique

