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
general lookup answers it.

The choices mirror `ZoneIndex.lookup` step for step (RFC 1034 §4.3.2, RFC 4035 §3.1.3,
RFC 5155 §7.2); tests compare both on many random names.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import dns.name
import dns.rdatatype

_WILDCARD = b"\x01*"


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

    def __init__(self, *, types: Mapping[dns.name.Name, Collection[int]],
                 signed: Iterable[dns.name.Name], existing: Iterable[dns.name.Name],
                 cuts: Iterable[dns.name.Name], nsec_owners: Iterable[dns.name.Name],
                 nsec3_digests: Iterable[bytes], nsec3_salt: bytes,
                 nsec3_iterations: int) -> None:
        self._types = {_wire(name): frozenset(rdtypes) for name, rdtypes in types.items()}
        self._signed = {_wire(name) for name in signed}
        self._existing = {_wire(name) for name in existing}
        self._cuts = {_wire(name) for name in cuts}
        # Sorted again by the byte key, which is what bisect compares against.
        self._nsec_keys = sorted(_canonical_key(_wire(name)) for name in nsec_owners)
        self._nsec3_digests = list(nsec3_digests)
        self._nsec3_salt = nsec3_salt
        self._nsec3_iterations = nsec3_iterations

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
