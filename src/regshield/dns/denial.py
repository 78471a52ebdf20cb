"""Which proof answers a question that gets no data: found on the question's wire bytes.

A flood of names never asked before (a random-subdomain attack) must not cost a lookup and
a rendering per name. `DenialIndex` is built with the `ZoneIndex` of a snapshot and holds
what denial needs, keyed by the lowercased wire form of names: the existing names (empty
non-terminals included), the types at each, the delegation cuts, the NSEC owners in
canonical order (RFC 4034 §6.1, as tuples of labels from the root down) and the sorted
NSEC3 hashes. `proof` reads a question's name as bytes and says which `Proof` answers it:
NODATA at an existing name, NODATA through a wildcard, NXDOMAIN, or a referral, with the
denial records chosen. Two questions with the same proof get the same sections; only the
question differs. Anything else (data, a CNAME, a wildcard expansion) is `None`: the
general lookup answers it. `authority` picks a negative answer's records from its proof,
by owner wire name, without a lookup of dnspython names.

The choices mirror `ZoneIndex.lookup` step for step (RFC 1034 §4.3.2, RFC 4035 §3.1.3,
RFC 5155 §7.2); tests compare both on many random names.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dns.name
import dns.rdatatype
import dns.rrset

_WILDCARD = b"\x01*"
_DENIAL_TYPES = (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)
_DENIAL_KEYS = tuple((rdtype, 0) for rdtype in _DENIAL_TYPES) + tuple(
    (dns.rdatatype.RRSIG, covers) for covers in _DENIAL_TYPES)


class ZoneLike(Protocol):
    def find(self, name: dns.name.Name, rdtype: int,
             covers: int = dns.rdatatype.NONE) -> dns.rrset.RRset | None: ...


@dataclass(frozen=True)
class Proof:
    """What decides a negative answer's sections.

    `key` names the proof within its snapshot (kind, the name the proof is about, the
    denial records chosen); `template` is the label index, in the question's name, of the
    name the response is rendered against (the closest encloser, the cut, or the name
    itself): the sections may point into the question there and above, never below.
    """

    key: tuple[object, ...]
    template: int


class DenialIndex:
    """What `proof` needs from one zone snapshot, keyed by lowercased wire names."""

    def __init__(self, *, origin: dns.name.Name, rrsets: Iterable[dns.rrset.RRset],
                 types: Mapping[dns.name.Name, Collection[int]],
                 signed: Iterable[dns.name.Name], existing: Iterable[dns.name.Name],
                 cuts: Iterable[dns.name.Name], nsec_owners: Iterable[dns.name.Name],
                 nsec3: Iterable[tuple[bytes, dns.name.Name]], nsec3_salt: bytes,
                 nsec3_iterations: int,
                 negative_soa: Sequence[dns.rrset.RRset],
                 negative_soa_signed: Sequence[dns.rrset.RRset]) -> None:
        self._types = {_wire(name): frozenset(rdtypes) for name, rdtypes in types.items()}
        self.origin = _wire(origin)
        self._signed = {_wire(name) for name in signed}
        self._existing = {_wire(name) for name in existing}
        self._cuts = {_wire(name) for name in cuts}
        # Sorted again by the byte key, which is what bisect compares against.
        nsec = sorted((_canonical_key(_wire(name)), _wire(name)) for name in nsec_owners)
        self._nsec_keys = [key for key, _ in nsec]
        self._nsec_owners = [owner for _, owner in nsec]
        nsec3_sorted = sorted(nsec3)
        self._nsec3_digests = [digest for digest, _ in nsec3_sorted]
        self._nsec3_owners = [_wire(owner) for _, owner in nsec3_sorted]
        self.nsec3 = bool(self._nsec3_owners)
        # By (matching, name): the NSEC3 records of existing names and of their wildcards, at
        # most two per name of the zone.
        self._nsec3_found: dict[tuple[bool, bytes], list[dns.rrset.RRset]] = {}
        self.nsec3_owner_names = frozenset(self._nsec3_owners)
        self._nsec3_salt = nsec3_salt
        self._nsec3_iterations = nsec3_iterations
        # The denial records and their signatures by owner, as the proofs pick them.
        self._records: dict[bytes, dict[tuple[int, int], dns.rrset.RRset]] = {}
        for rrset in rrsets:
            if rrset.rdtype in _DENIAL_TYPES or rrset.covers in _DENIAL_TYPES:
                self._records.setdefault(_wire(rrset.name), {})[
                    (rrset.rdtype, rrset.covers)] = rrset
        self._negative_soa = tuple(negative_soa)
        self._negative_soa_signed = tuple(negative_soa_signed)
        # What the server rendered from this snapshot: RRsets cut for its section writer (by
        # id, each entry holding its RRset) and fragments of responses.
        self.rendered: dict[Any, Any] = {}
        # The denial owners whose records are to be rendered ahead: None for all of them.
        self.renew: list[bytes] | None = None

    def existing_names(self) -> set[bytes]:
        """A copy of the existing names (empty non-terminals included), as wire names."""
        return set(self._existing)

    def following(self, zone: ZoneLike, names: Iterable[dns.name.Name], *,
                  types: Mapping[dns.name.Name, Collection[int]],
                  rrsigs: Mapping[dns.name.Name, Sequence[dns.rrset.RRset]],
                  existing: set[bytes], cuts: Collection[dns.name.Name],
                  kept: Collection[int], negative_soa: Sequence[dns.rrset.RRset],
                  negative_soa_signed: Sequence[dns.rrset.RRset]) -> DenialIndex:
        """This index for the snapshot `zone` that follows this one's, `names` being the
        owners whose RRsets differ (`ZoneIndex.following`): their entries are taken again
        from `zone` and the new index's other arguments, the rest copied. What was rendered
        from RRsets still served (ids in `kept`) is kept; `renew` lists the owners whose
        denial records are to be rendered again (an NSEC3 record re-signed in place stays
        the same object, and its fragment must take the new signature)."""
        index = DenialIndex.__new__(DenialIndex)
        index.origin = self.origin
        index._types = dict(self._types)
        index._signed = set(self._signed)
        index._existing = existing
        index._cuts = set(self._cuts)
        index._nsec_keys = list(self._nsec_keys)
        index._nsec_owners = list(self._nsec_owners)
        index._nsec3_digests = list(self._nsec3_digests)
        index._nsec3_owners = list(self._nsec3_owners)
        index.nsec3 = self.nsec3
        index._nsec3_found = {}
        index._nsec3_salt = self._nsec3_salt
        index._nsec3_iterations = self._nsec3_iterations
        index._records = dict(self._records)
        index._negative_soa = tuple(negative_soa)
        index._negative_soa_signed = tuple(negative_soa_signed)
        renew: list[bytes] = []
        nsec3_changed = False
        for name in names:
            wire = _wire(name)
            at_name = types.get(name)
            if at_name is None:
                index._types.pop(wire, None)
            else:
                index._types[wire] = frozenset(at_name)
            if rrsigs.get(name):
                index._signed.add(wire)
            else:
                index._signed.discard(wire)
            if name in cuts:
                index._cuts.add(wire)
            else:
                index._cuts.discard(wire)
            records: dict[tuple[int, int], dns.rrset.RRset] = {}
            for rdtype, covers in _DENIAL_KEYS:
                found = zone.find(name, rdtype, covers)
                if found is not None:
                    records[(rdtype, covers)] = found
            if records:
                index._records[wire] = records
                renew.append(wire)
            else:
                index._records.pop(wire, None)
            old_nsec3 = self._records.get(wire, {}).get((dns.rdatatype.NSEC3, 0))
            nsec3 = records.get((dns.rdatatype.NSEC3, 0))
            key = _canonical_key(wire)
            at = bisect.bisect_left(index._nsec_keys, key)
            listed = at < len(index._nsec_keys) and index._nsec_keys[at] == key
            if listed != ((dns.rdatatype.NSEC, 0) in records):
                if listed:
                    del index._nsec_keys[at], index._nsec_owners[at]
                else:
                    index._nsec_keys.insert(at, key)
                    index._nsec_owners.insert(at, wire)
            if (nsec3 is not None) != (old_nsec3 is not None):
                nsec3_changed = True
                digest = base64.b32hexdecode(name.labels[0].upper())
                at = bisect.bisect_left(index._nsec3_digests, digest)
                if nsec3 is None:
                    del index._nsec3_digests[at], index._nsec3_owners[at]
                else:
                    index._nsec3_digests.insert(at, digest)
                    index._nsec3_owners.insert(at, wire)
        index.nsec3_owner_names = (frozenset(index._nsec3_owners) if nsec3_changed
                                   else self.nsec3_owner_names)
        rendered = dict(self.rendered)  # one step: the serving loop may add to it meanwhile
        index.rendered = {
            key: entry for key, entry in rendered.items()
            if (type(key) is int and key in kept)
            or (type(key) is tuple and key[0] == "nsec3" and key[1] in kept)
        }
        index.renew = renew
        return index

    def proof(self, name: bytes, starts: list[int], origin_at: int, qtype: int,
              dnssec: bool) -> Proof | None:
        """The proof for (`name`, `qtype`), or None when the general lookup must answer.

        `name` is the question's name in wire form, lowercased; `starts` the offset of each
        label in it (the root's included); `origin_at` the index in `starts` of the zone's
        origin (the zone the server chose, the parent's for a DS at a child's apex).
        """
        if self._cuts:
            for at in range(origin_at - 1, -1, -1):  # from the apex down: the highest cut
                if name[starts[at]:] in self._cuts and not (at == 0
                                                             and qtype == dns.rdatatype.DS):
                    return Proof(("referral", name[starts[at]:]), at)
        if name in self._existing:
            if self._has_data(name, qtype):
                return None
            return Proof(("nodata", name), 0)
        encloser_at = 1
        while True:
            if encloser_at > origin_at:
                return None  # a zone without its apex: the general lookup says what it can
            if name[starts[encloser_at]:] in self._existing:
                break
            encloser_at += 1
        encloser = name[starts[encloser_at]:]
        wildcard = _WILDCARD + encloser
        if wildcard in self._existing:
            if self._has_data(wildcard, qtype):
                return None  # an expansion: data, answered per question
            return Proof(("wildcard-nodata", encloser, self._covering(
                name, starts, encloser_at, dnssec)), encloser_at)
        return Proof(("nxdomain", encloser, self._covering(name, starts, encloser_at, dnssec)),
                     encloser_at)

    def authority(self, proof: Proof, dnssec: bool) -> list[dns.rrset.RRset] | None:
        """The authority section of a negative answer, as `ZoneIndex.lookup` builds it
        (RFC 4035 §3.1.3, RFC 5155 §7.2), from the proof alone; None for a referral."""
        kind = proof.key[0]
        if kind == "referral":
            return None
        authority = list(self._negative_soa_signed if dnssec else self._negative_soa)
        if not dnssec:
            return authority
        if kind == "nodata":
            name = proof.key[1]
            assert isinstance(name, bytes)
            if self._nsec3_digests:
                authority += self._nsec3_matching(name)
            elif name in self._types and (dns.rdatatype.NSEC, 0) in self._records.get(name, {}):
                authority += self._with_rrsig(name, dns.rdatatype.NSEC)
            elif self._nsec_owners:  # an empty non-terminal: the NSEC that covers it
                index = bisect.bisect_right(self._nsec_keys, _canonical_key(name)) - 1
                authority += self._with_rrsig(self._nsec_owners[index], dns.rdatatype.NSEC)
            return authority
        _, encloser, covering = proof.key
        assert isinstance(encloser, bytes)
        wildcard = _WILDCARD + encloser
        if self._nsec3_digests:
            assert isinstance(covering, int)
            covers_next_closer = self._with_rrsig(self._nsec3_owners[covering], dns.rdatatype.NSEC3)
            authority += self._nsec3_matching(encloser) + covers_next_closer
            if kind == "nxdomain":
                authority += self._nsec3_covering(wildcard)
            else:
                authority += self._nsec3_matching(wildcard) + covers_next_closer
        elif self._nsec_owners:
            assert isinstance(covering, int)
            covers_name = self._with_rrsig(self._nsec_owners[covering], dns.rdatatype.NSEC)
            if kind == "nxdomain":
                index = bisect.bisect_right(self._nsec_keys, _canonical_key(wildcard)) - 1
                authority += covers_name + self._with_rrsig(self._nsec_owners[index],
                                                        dns.rdatatype.NSEC)
            else:
                authority += covers_name + self._with_rrsig(wildcard, dns.rdatatype.NSEC)
                authority += covers_name
        return _unique(authority)

    def nsec3_chain(self) -> tuple[set[bytes], set[bytes], bytes, int, bytes] | None:
        """What denies a name outside Python: the existing names, the delegation points, the
        NSEC3 salt and iterations, and the hashes in order, 20 octets each (the order of
        `signed_denial_records`); None when an owner's label is not a SHA-1 hash."""
        if any(len(digest) != 20 for digest in self._nsec3_digests):
            return None
        return (self._existing, self._cuts, self._nsec3_salt, self._nsec3_iterations,
                b"".join(self._nsec3_digests))

    def nsec_chain(self) -> tuple[set[bytes], set[bytes], list[bytes]] | None:
        """What denies a name outside Python with NSEC: the existing names, the delegation
        points and the NSEC owners in canonical order; None without an NSEC chain."""
        if not self._nsec_owners:
            return None
        return self._existing, self._cuts, self._nsec_owners

    def signed_denial_records(self, owners: Iterable[bytes] | None = None
                              ) -> Iterator[list[dns.rrset.RRset]]:
        """Every NSEC or NSEC3 RRset with its RRSIG RRset, in the chain's order, for
        rendering ahead of queries; with `owners`, those at these owners alone."""
        rdtype = dns.rdatatype.NSEC3 if self.nsec3 else dns.rdatatype.NSEC
        if owners is None:
            owners = self._nsec3_owners if self.nsec3 else self._nsec_owners
        for owner in owners:
            records = self._with_rrsig(owner, rdtype)
            if records:
                yield records

    def _nsec3_matching(self, name: bytes) -> list[dns.rrset.RRset]:
        """The NSEC3 of `name`: an existing name or a wildcard, so kept once found."""
        found = self._nsec3_found.get((True, name))
        if found is None:
            digest = self._nsec3_digest(name)
            index = bisect.bisect_left(self._nsec3_digests, digest)
            found = []
            if index < len(self._nsec3_digests) and self._nsec3_digests[index] == digest:
                found = self._with_rrsig(self._nsec3_owners[index], dns.rdatatype.NSEC3)
            self._nsec3_found[True, name] = found
        return found

    def _nsec3_covering(self, wildcard: bytes) -> list[dns.rrset.RRset]:
        """The NSEC3 covering the wildcard of a closest encloser, kept once found."""
        found = self._nsec3_found.get((False, wildcard))
        if found is None:
            index = bisect.bisect_left(self._nsec3_digests, self._nsec3_digest(wildcard)) - 1
            found = self._with_rrsig(self._nsec3_owners[index], dns.rdatatype.NSEC3)
            self._nsec3_found[False, wildcard] = found
        return found

    def _with_rrsig(self, owner: bytes, rdtype: int) -> list[dns.rrset.RRset]:
        """The `rdtype` RRset at `owner` and its RRSIG RRset, those that exist."""
        records = self._records.get(owner, {})
        rrset = records.get((rdtype, 0))
        if rrset is None:
            return []
        rrsig = records.get((dns.rdatatype.RRSIG, rdtype))
        return [rrset] if rrsig is None else [rrset, rrsig]

    def _has_data(self, name: bytes, qtype: int) -> bool:
        """Whether the lookup at existing `name` finds data or a CNAME to follow."""
        types = self._types.get(name, frozenset())
        if qtype == dns.rdatatype.RRSIG:
            return name in self._signed or dns.rdatatype.CNAME in types
        return qtype in types or dns.rdatatype.CNAME in types

    def _covering(self, name: bytes, starts: list[int], encloser_at: int,
                  dnssec: bool) -> int | None:
        """The one record that varies with the question: the NSEC covering the name, or the
        NSEC3 covering the next closer name (the others follow from the closest encloser)."""
        if not dnssec:
            return None
        if self._nsec3_digests:
            digest = self._nsec3_digest(name[starts[encloser_at - 1]:])
            # Before the first one: the last one covers the name (the chain wraps).
            index = bisect.bisect_left(self._nsec3_digests, digest) - 1
            return index % len(self._nsec3_digests)
        if self._nsec_keys:
            index = bisect.bisect_right(self._nsec_keys, _canonical_key(name)) - 1
            return index % len(self._nsec_keys)
        return None

    def _nsec3_digest(self, name: bytes) -> bytes:
        salt = self._nsec3_salt
        digest = hashlib.sha1(name + salt, usedforsecurity=False).digest()
        for _ in range(self._nsec3_iterations):
            digest = hashlib.sha1(digest + salt, usedforsecurity=False).digest()
        return digest


def _unique(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """Drop repeated RRsets (one record may both cover the name and the wildcard)."""
    seen: set[int] = set()
    unique = []
    for rrset in rrsets:
        if id(rrset) not in seen:
            seen.add(id(rrset))
            unique.append(rrset)
    return unique


def label_starts(name: bytes) -> list[int]:
    """The offset of each label of the uncompressed wire name `name`, the root's last."""
    starts = []
    position = 0
    while True:
        starts.append(position)
        length = name[position]
        if length == 0:
            return starts
        position += length + 1


def _wire(name: dns.name.Name) -> bytes:
    wire = name.canonicalize().to_wire()
    assert wire is not None
    return wire


def _canonical_key(name: bytes) -> tuple[bytes, ...]:
    """The name's labels from the root down: tuples of them sort in canonical DNS order."""
    labels = []
    position = 0
    while name[position]:
        end = position + 1 + name[position]
        labels.append(name[position + 1:end])
        position = end
    labels.reverse()
    return tuple(labels)
