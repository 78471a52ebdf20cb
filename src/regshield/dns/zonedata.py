"""What the DNS server and the transfer service answer from: immutable snapshots of signed zones.

A `ServedZone` is one serial of one zone, signed, with the journal of differences that lead to
it (for IXFR, RFC 1995). The publisher builds a new snapshot for every new serial and swaps it
into the `ZoneTable` in one assignment, so a query or a transfer in progress always sees one
whole serial, never half of an update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rdatatype
import dns.rrset

Fingerprint = tuple[int, int, int]  # serial, RRsets, records


@dataclass(frozen=True)
class ZoneDiff:
    """The change from one serial to the next: RRsets (or parts of them) removed, then added.

    `removed` starts with the old SOA and `added` with the new one, as an IXFR sequence does.
    """

    from_serial: int
    to_serial: int
    removed: tuple[dns.rrset.RRset, ...]
    added: tuple[dns.rrset.RRset, ...]


@dataclass(frozen=True)
class ServedZone:
    """One serial of a signed (or unsigned) zone: every RRset with absolute names.

    `rrsets` holds the SOA, the DNSKEY set, the RRSIGs (as RRSIG RRsets covering one type each),
    NSEC or NSEC3 records and NSEC3PARAM when signed, delegations and glue. `journal` holds the
    differences that end at `serial`, oldest first, each one's `to_serial` being the next one's
    `from_serial`; it may be empty (only AXFR can then be served).
    """

    origin: dns.name.Name
    serial: int
    rrsets: tuple[dns.rrset.RRset, ...]
    journal: tuple[ZoneDiff, ...] = ()
    # Built on the first lookup, not when the snapshot is made: a new serial of a large zone
    # is served (and NOTIFY sent) without waiting for an index of every RRset.
    _index: dict[tuple[dns.name.Name, int, int], dns.rrset.RRset] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # What the DNS server derives from the snapshot to answer from it (its `ZoneIndex`),
    # built by whoever swaps the snapshot in, in a worker thread, before it is served
    # (dns/server.py `prepare_index`): a large zone's index takes seconds to build, which
    # must not fall on the event loop at the first query. "stored": the zone's RRsets in the
    # store's form (dns/wireform.py) when it was read back from the store unchanged.
    prepared: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                     compare=False)

    @property
    def soa(self) -> dns.rrset.RRset:
        soa = self.find(self.origin, dns.rdatatype.SOA)
        if soa is None:
            raise ValueError(f"the zone {self.origin} has no SOA")
        return soa

    def find(self, name: dns.name.Name, rdtype: int,
             covers: int = dns.rdatatype.NONE) -> dns.rrset.RRset | None:
        if not self._index and self.rrsets:
            self._index.update(((r.name, r.rdtype, r.covers), r) for r in self.rrsets)
        return self._index.get((name, rdtype, covers))

    @property
    def lookup(self) -> dict[tuple[dns.name.Name, int, int], dns.rrset.RRset]:
        """Every RRset by (owner, type, covered type): what `find` reads, once made."""
        return self._index

    def take_lookup(self, previous: ServedZone, added: Iterable[dns.rrset.RRset],
                    removed: Iterable[dns.rrset.RRset]) -> None:
        """Make this snapshot's lookup of RRsets from `previous`'s, this one holding
        `previous`'s RRsets less `removed` plus `added`: a copy instead of a pass over every
        RRset. Nothing when either lookup is not made yet (it is made at the first `find`)."""
        if self._index or not previous._index:
            return
        lookup = previous._index.copy()  # cloned whole, not entry by entry as update does
        for rrset in removed:
            key = (rrset.name, rrset.rdtype, rrset.covers)
            if lookup.get(key) is rrset:
                del lookup[key]
        for rrset in added:
            lookup[(rrset.name, rrset.rdtype, rrset.covers)] = rrset
        object.__setattr__(self, "_index", lookup)  # before the snapshot is served

    def names(self) -> Iterator[dns.name.Name]:
        seen: set[dns.name.Name] = set()
        for rrset in self.rrsets:
            if rrset.name not in seen:
                seen.add(rrset.name)
                yield rrset.name

    def diffs_since(self, serial: int) -> list[ZoneDiff] | None:
        """The journal from `serial` to this one, or None when the journal does not reach back."""
        for start, diff in enumerate(self.journal):
            if diff.from_serial == serial:
                return list(self.journal[start:])
        return None


class ZoneTable:
    """The zones being served, by origin; replaced one whole zone at a time.

    `generation` changes with every `put` and `remove`: what was derived from the table
    (cached answers, the map of origins) holds while it stays the same.

    A zone may be served before it is read (`defer`, at start: the stored copies of many
    small zones): the first lookup that reaches it reads it then (`settle`, on the event
    loop; a few milliseconds for a small zone), unless the reading in the background came
    first. Settling is not a change of what is served, so it leaves `generation` as it is.
    A large zone being read at start is `loading` until it is put: no lookup finds it (nor
    a zone above it), and the server answers SERVFAIL for its names meanwhile, as other
    servers do for a zone not loaded yet, so resolvers ask another of its servers.
    Iteration yields the zones read; `len` counts every zone served or loading.
    """

    def __init__(self, zones: Iterable[ServedZone] = ()) -> None:
        self._zones: dict[dns.name.Name, ServedZone] = {zone.origin: zone for zone in zones}
        self._deferred: dict[dns.name.Name, Callable[[], ServedZone | None]] = {}
        self._loading: set[dns.name.Name] = set()
        self.generation = 0

    def put(self, zone: ServedZone) -> None:
        self._deferred.pop(zone.origin, None)
        self._loading.discard(zone.origin)
        self._zones[zone.origin] = zone
        self.generation += 1

    def remove(self, origin: dns.name.Name) -> None:
        self._deferred.pop(origin, None)
        self._loading.discard(origin)
        self._zones.pop(origin, None)
        self.generation += 1

    def load(self, origin: dns.name.Name) -> None:
        """`origin` is being read: SERVFAIL for its names until it is put (or removed)."""
        self._zones.pop(origin, None)
        self._deferred.pop(origin, None)
        self._loading.add(origin)
        self.generation += 1

    @property
    def loading(self) -> list[dns.name.Name]:
        return list(self._loading)

    def is_loading(self, origin: dns.name.Name) -> bool:
        return origin in self._loading

    def waits(self, name: dns.name.Name) -> bool:
        """Whether `name` belongs to a zone still loading (its closest zone)."""
        if not self._loading:
            return False
        candidate = name
        while True:
            if candidate in self._loading:
                return True
            if candidate in self._zones or candidate in self._deferred:
                return False
            if candidate == dns.name.root:
                return False
            candidate = candidate.parent()

    def defer(self, origin: dns.name.Name, read: Callable[[], ServedZone | None]) -> None:
        """Serve `origin` as what `read()` returns, read at the first lookup that needs it
        (None: the zone cannot be served after all)."""
        self._zones.pop(origin, None)
        self._deferred[origin] = read
        self.generation += 1

    @property
    def deferred(self) -> list[dns.name.Name]:
        """The origins served but not read yet."""
        return list(self._deferred)

    def is_deferred(self, origin: dns.name.Name) -> bool:
        return origin in self._deferred

    def settle(self, origin: dns.name.Name, zone: ServedZone | None = None
               ) -> ServedZone | None:
        """The zone served at `origin`, read now if it was deferred (or, with `zone`, that
        zone, read elsewhere, taken in place of the reading). On the event loop."""
        read = self._deferred.pop(origin, None)
        if read is None:
            return self._zones.get(origin)
        if zone is None:
            zone = read()
        if zone is None:
            return None
        self._zones[origin] = zone
        self._settled(zone)
        return zone

    def _settled(self, zone: ServedZone) -> None:
        """A deferred zone has been read (for subclasses that pass the zones on)."""

    def get(self, origin: dns.name.Name) -> ServedZone | None:
        zone = self._zones.get(origin)
        if zone is None and self._deferred:
            return self.settle(origin)
        return zone

    def closest(self, name: dns.name.Name) -> ServedZone | None:
        """The zone that holds `name`: the one whose origin is its longest ancestor."""
        candidate = name
        while True:
            zone = self.get(candidate)
            if zone is not None:
                return zone
            if candidate == dns.name.root or candidate in self._loading:
                return None
            candidate = candidate.parent()

    def __iter__(self) -> Iterator[ServedZone]:
        return iter(list(self._zones.values()))

    def __len__(self) -> int:
        return len(self._zones) + len(self._deferred) + len(self._loading)


def apply_diffs(zone: ServedZone, diffs: Sequence[ZoneDiff], journal_length: int
                ) -> ServedZone:
    """The snapshot `diffs` lead to from `zone`, as a secondary applies an IXFR (RFC 1995):
    for each, the records removed, then those added (an RRset's TTL is the added records');
    the journal keeps its last `journal_length` entries. The RRsets that do not change stay
    the same objects (`ZoneIndex.following` relies on it), and the new snapshot's lookup is
    the one made here."""
    # A copy of the lookup `zone` already has (cloned whole), rather than a pass over it.
    rrsets = (zone._index.copy() if zone._index
              else {(r.name, r.rdtype, r.covers): r for r in zone.rrsets})
    serial = zone.serial
    for diff in diffs:
        if diff.from_serial != serial:
            raise ValueError(f"a difference starts at {diff.from_serial}, not {serial}")
        serial = diff.to_serial
        for removed in diff.removed:
            key = (removed.name, removed.rdtype, removed.covers)
            current = rrsets.pop(key, None)
            if current is None:
                continue
            kept = [rdata for rdata in current if rdata not in removed]
            if kept:
                rrsets[key] = dns.rrset.from_rdata_list(current.name, current.ttl, kept)
        for added in diff.added:
            key = (added.name, added.rdtype, added.covers)
            current = rrsets.get(key)
            records = [*added] if current is None else [
                *current, *(rdata for rdata in added if rdata not in current)]
            rrsets[key] = dns.rrset.from_rdata_list(added.name, added.ttl, records)
    journal = (*zone.journal, *diffs)[-journal_length:] if journal_length else ()
    following = ServedZone(zone.origin, serial, tuple(rrsets.values()), journal)
    object.__setattr__(following, "_index", rrsets)  # not served yet: nobody reads it
    return following


def fingerprint(zone: ServedZone) -> Fingerprint:
    """What a copy of `zone` is checked against: its serial, RRsets and records counted."""
    return zone.serial, len(zone.rrsets), sum(len(rrset) for rrset in zone.rrsets)
