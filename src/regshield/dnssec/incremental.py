"""A signed zone kept signed as it changes: incremental re-signing, refresh and key changes.

`SignedZone` holds a zone's unsigned RRsets, their RRSIGs and the NSEC or NSEC3 chain. A change
re-signs only what it touches (the RRsets changed, the SOA, and the chain links whose owner,
successor or type bitmap changed), and reports it as a `ZoneDiff` that an IXFR can carry. The
signing rules are those of `regshield.dnssec.signer.sign_zone`. Each RRset's signature expiry is
pulled forward by a jitter hashed from its owner and type, spread over a tenth of the lifetime,
so that the signatures of a zone signed at once are refreshed a few at a time, not all together.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.NSEC import NSEC, Bitmap
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.NSEC3 import Bitmap as NSEC3Bitmap
from dns.rdtypes.ANY.NSEC3PARAM import NSEC3PARAM
from dns.rdtypes.ANY.SOA import SOA

from regshield.dns.zonedata import ServedZone, ZoneDiff
from regshield.dnssec.keys import AnyKey
from regshield.dnssec.signer import (
    DELEGATION,
    KSK_SIGNED_TYPES,
    SIGNED,
    UNSIGNED,
    NameKey,
    key_wire,
    name_key,
    rrset_signatures,
    signature_time,
)
from regshield.rules.zones import serial_add, serial_gt

DEFAULT_LIFETIME = timedelta(days=14)
DEFAULT_BACKDATE = timedelta(hours=1)
"""Inception is set this far back, for validators whose clocks run behind."""
JITTER_FRACTION = 0.1

_SOA = dns.rdatatype.SOA
_NS = dns.rdatatype.NS
_DS = dns.rdatatype.DS
_DNAME = dns.rdatatype.DNAME
_DNSKEY = dns.rdatatype.DNSKEY
_RRSIG = dns.rdatatype.RRSIG
_NSEC = dns.rdatatype.NSEC
_NSEC3 = dns.rdatatype.NSEC3
_NSEC3PARAM = dns.rdatatype.NSEC3PARAM
_MANAGED = frozenset({_RRSIG, _NSEC, _NSEC3, _NSEC3PARAM, _DNSKEY})
_NSEC3_SHA1 = 1


class _Delta:
    """RRsets removed from and added to the zone by one change, each counted once."""

    def __init__(self) -> None:
        self.removed: list[dns.rrset.RRset] = []
        self.added: dict[int, dns.rrset.RRset] = {}

    def remove(self, rrset: dns.rrset.RRset | None) -> None:
        if rrset is None:
            return
        if id(rrset) in self.added:
            del self.added[id(rrset)]  # made and dropped within the same change
        else:
            self.removed.append(rrset)

    def add(self, rrset: dns.rrset.RRset) -> None:
        self.added[id(rrset)] = rrset


class SignedZone:
    """One zone, signed, and kept signed through changes, signature refreshes and key changes.

    Built from the zone's unsigned RRsets (absolute names, one SOA at the apex; RRSIG, NSEC,
    NSEC3 and NSEC3PARAM records given are dropped), the signing keys, and the time. The
    DNSKEY RRset holds any DNSKEY records given, those in `publish` (keys shown but not signing)
    and the keys' own. Signatures are valid from
    `now - backdate` to `now + lifetime - jitter`; `refresh` re-signs those that expire within
    `refresh_window` (a quarter of the lifetime unless given).
    """

    def __init__(
        self,
        rrsets: Iterable[dns.rrset.RRset],
        keys: Sequence[AnyKey],
        now: datetime,
        nsec: Literal["nsec", "nsec3"] = "nsec",
        lifetime: timedelta = DEFAULT_LIFETIME,
        refresh_window: timedelta | None = None,
        backdate: timedelta = DEFAULT_BACKDATE,
        publish: Sequence[DNSKEY] = (),
    ) -> None:
        given = list(rrsets)
        self._configure(given, keys, nsec, lifetime, refresh_window, backdate, publish)
        for rrset in given:
            if rrset.rdtype == _DNSKEY:
                self._extra_dnskeys.extend(rrset)
            elif rrset.rdtype not in _MANAGED:
                self._check_owner(rrset.name)
                self._data.setdefault(name_key(rrset.name), {})[rrset.rdtype] = rrset
        self._data[self._apex][_DNSKEY] = self._dnskey_rrset()
        if nsec == "nsec3":
            self._data[self._apex][_NSEC3PARAM] = _nsec3param(self.origin)
        self._names: list[NameKey] = sorted(self._data)
        self._update(set(self._names), _Delta(), now)

    @classmethod
    def restore(
        cls,
        rrsets: Iterable[dns.rrset.RRset],
        keys: Sequence[AnyKey],
        nsec: Literal["nsec", "nsec3"] = "nsec",
        lifetime: timedelta = DEFAULT_LIFETIME,
        refresh_window: timedelta | None = None,
        backdate: timedelta = DEFAULT_BACKDATE,
        publish: Sequence[DNSKEY] = (),
    ) -> SignedZone:
        """The zone as this class signed it before (every RRset of `served()`, as kept in the
        store), taken back without signing anything: its RRSIGs, chain and DNSKEY RRset are
        kept as they are, and later changes and refreshes carry on from them. `keys` and
        `publish` must be those the zone was signed with (the publisher checks the key plan
        it recorded); a zone signed with others is signed afresh instead."""
        given = list(rrsets)
        zone = cls.__new__(cls)
        zone._configure(given, keys, nsec, lifetime, refresh_window, backdate, publish)
        data = zone._data
        hashed_owners: list[tuple[bytes, dns.rrset.RRset]] = []
        own_dnskeys = {key.dnskey for key in zone._keys} | set(zone._published)
        for rrset in given:
            owner = name_key(rrset.name)
            rdtype = rrset.rdtype
            if rdtype == _RRSIG:
                zone._rrsigs[(owner, rrset.covers)] = rrset
            elif rdtype == _NSEC:
                zone._denial_at[(owner, _NSEC)] = rrset
                zone._denial[owner] = rrset
            elif rdtype == _NSEC3:
                zone._denial_at[(owner, _NSEC3)] = rrset
                hashed_owners.append((base64.b32hexdecode(owner[-1].upper()), rrset))
            else:
                zone._check_owner(rrset.name)
                data.setdefault(owner, {})[rdtype] = rrset
                if rdtype == _DNSKEY:
                    zone._extra_dnskeys = [r for r in rrset if r not in own_dnskeys]
        if _DNSKEY not in data.get(zone._apex, {}):
            raise ValueError(f"the signed zone {zone.origin} has no DNSKEY RRset")
        zone._names = sorted(data)
        for owner in zone._names:
            mode = zone._modes[owner] = zone._mode(owner, data[owner])
            if mode != UNSIGNED:
                zone._chain.append(owner)
        if nsec == "nsec3":
            members = set(zone._chain)
            for owner in zone._chain:  # empty non-terminals are in the chain too
                members.update(owner[:size] for size in range(len(zone._apex) + 1, len(owner)))
            by_digest = {_nsec3_digest(owner): owner for owner in members}
            for digest, rrset in hashed_owners:
                hashed = by_digest.get(digest)
                if hashed is None:
                    raise ValueError(f"{rrset.name} is no hash of a name in the zone")
                zone._hashed[digest] = hashed
                zone._denial[hashed] = rrset
            zone._hashes = sorted(zone._hashed)
        missing = len(zone._chain) - len(zone._denial) if nsec == "nsec" else 0
        if missing:
            raise ValueError(f"the signed zone {zone.origin} lacks {missing} NSEC records")
        return zone

    def _configure(
        self,
        given: list[dns.rrset.RRset],
        keys: Sequence[AnyKey],
        nsec: Literal["nsec", "nsec3"],
        lifetime: timedelta,
        refresh_window: timedelta | None,
        backdate: timedelta,
        publish: Sequence[DNSKEY],
    ) -> None:
        if nsec not in ("nsec", "nsec3"):
            raise ValueError(f"nsec must be 'nsec' or 'nsec3', not {nsec!r}")
        if lifetime <= timedelta(hours=1):
            raise ValueError("a signature lifetime is more than an hour")
        self.nsec = nsec
        self.lifetime = lifetime
        self.refresh_window = refresh_window if refresh_window is not None else lifetime / 4
        if not self.lifetime * JITTER_FRACTION < self.refresh_window < self.lifetime:
            raise ValueError("the refresh window must be longer than the jitter and "
                             "shorter than the lifetime")
        self.backdate = backdate
        self.signatures_made = 0
        """How many RRSIG records this zone has made, for those who watch the cost of a change."""
        soas = [rrset for rrset in given if rrset.rdtype == _SOA]
        if len(soas) != 1 or len(soas[0]) != 1:
            raise ValueError("a zone holds exactly one SOA record, at its apex")
        self.origin = soas[0].name
        self._apex = name_key(self.origin)
        self._signer = self.origin.canonicalize()
        self._data: dict[NameKey, dict[int, dns.rrset.RRset]] = {}
        self._names = []
        self._modes: dict[NameKey, int] = {}
        self._rrsigs: dict[tuple[NameKey, int], dns.rrset.RRset] = {}
        self._chain: list[NameKey] = []  # the authoritative names, in canonical order
        self._denial: dict[NameKey, dns.rrset.RRset] = {}  # by the name it is for
        self._denial_at: dict[tuple[NameKey, int], dns.rrset.RRset] = {}  # by its own owner
        self._hashes: list[bytes] = []  # NSEC3: the chain's hashes, in order
        self._hashed: dict[bytes, NameKey] = {}
        self._extra_dnskeys: list[dns.rdata.Rdata] = []
        self._published = list(publish)
        self._keys: list[AnyKey] = []
        self._set_keys(keys)

    # What the zone holds

    @property
    def serial(self) -> int:
        return int(self._soa()[0].serial)

    @property
    def keys(self) -> tuple[AnyKey, ...]:
        return tuple(self._keys)

    def rrsets(self) -> tuple[dns.rrset.RRset, ...]:
        """Every RRset of the signed zone, the SOA first."""
        soa = self._soa()
        # Flattened in C (chain, map): a new serial of a large zone is served at once.
        data = list(itertools.chain.from_iterable(map(dict.values, self._data.values())))
        data.remove(soa)
        return (soa, *data, *self._rrsigs.values(), *self._denial.values())

    def served(self, journal: tuple[ZoneDiff, ...] = ()) -> ServedZone:
        """The zone as the server and the transfer service answer from it."""
        return ServedZone(self.origin, self.serial, self.rrsets(), journal)

    def rrsig(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        """The RRSIG RRset covering `rdtype` at `name`, if the zone signs it."""
        return self._rrsigs.get((name_key(name), rdtype))

    # Changes

    def apply(
        self,
        now: datetime,
        replace: Iterable[dns.rrset.RRset] = (),
        delete: Iterable[tuple[dns.name.Name, int]] = (),
        *,
        keys: Sequence[AnyKey] | None = None,
        publish: Sequence[DNSKEY] = (),
    ) -> ZoneDiff:
        """Replace and delete RRsets, re-sign what that touches, and move the SOA serial on;
        with `keys`, change the keys in the same step (see `replace_keys`).

        A replaced SOA keeps its serial when that is greater than the current one; otherwise
        the serial is the current one plus 1 (RFC 1982). DNSKEY, RRSIG and the denial records
        are the signer's own and cannot be changed here.
        """
        changes: dict[tuple[NameKey, int], dns.rrset.RRset | None] = {}
        for rrset in replace:
            self._check_change(rrset.name, rrset.rdtype)
            changes[(name_key(rrset.name), rrset.rdtype)] = rrset if len(rrset) else None
        for name, rdtype in delete:
            self._check_change(name, rdtype)
            if rdtype == _SOA:
                raise ValueError("the SOA cannot be deleted")
            changes[(name_key(name), rdtype)] = None
        new_soa = changes.pop((self._apex, _SOA), None)
        delta = _Delta()
        if keys is not None:
            changes[(self._apex, _DNSKEY)] = self._rekey(keys, publish, delta, now)
        return self._change(now, changes, new_soa, delta)

    def refresh(self, now: datetime) -> ZoneDiff | None:
        """Re-sign the RRsets whose signatures expire within the refresh window; None if none."""
        limit = signature_time(now + self.refresh_window)
        stale = [
            place for place, rrsigs in self._rrsigs.items()
            if _serial_lt(int(rrsigs[0].expiration), limit)
        ]
        if not stale:
            return None
        delta = _Delta()
        for owner, rdtype in stale:
            if (owner, rdtype) == (self._apex, _SOA):
                continue  # re-signed with the new serial below
            self._resign(owner, rdtype, delta, now)
        return self._change(now, {}, None, delta)

    def replace_keys(
        self, keys: Sequence[AnyKey], now: datetime, publish: Sequence[DNSKEY] = ()
    ) -> ZoneDiff:
        """Sign with `keys` from now on, and publish `publish` beside them without signing with
        them (a key being pre-published or kept until caches forget its signatures, RFC 6781
        §4.1.1): the DNSKEY RRset is made of these alone, and re-signed. When the zone-signing
        keys change, every RRset they sign is signed again with the new ones; when the
        key-signing keys change, the CDS and CDNSKEY RRsets are. Nothing else is signed again.
        """
        return self.apply(now, keys=keys, publish=publish)

    def _rekey(self, keys: Sequence[AnyKey], publish: Sequence[DNSKEY], delta: _Delta,
               now: datetime) -> dns.rrset.RRset:
        """Take `keys` and `publish` (`replace_keys`); the new DNSKEY RRset."""
        def tags(keys: Sequence[AnyKey]) -> set[tuple[int, int]]:
            return {(key.algorithm, key.key_tag) for key in keys}

        old_zsks, old_ksks = tags(self._zsks), tags(self._ksks)
        self._set_keys(keys)
        self._extra_dnskeys = []
        self._published = list(publish)
        zsks_changed, ksks_changed = tags(self._zsks) != old_zsks, tags(self._ksks) != old_ksks
        if zsks_changed or ksks_changed:
            for owner, rdtype in list(self._rrsigs):
                if rdtype in (_SOA, _DNSKEY):
                    continue  # signed below, with the change
                if ksks_changed if rdtype in KSK_SIGNED_TYPES else zsks_changed:
                    self._resign(owner, rdtype, delta, now)
        return self._dnskey_rrset()

    # The machinery

    def _change(
        self,
        now: datetime,
        changes: dict[tuple[NameKey, int], dns.rrset.RRset | None],
        new_soa: dns.rrset.RRset | None,
        delta: _Delta,
    ) -> ZoneDiff:
        old_soa = self._soa()
        old_serial = int(old_soa[0].serial)
        serial = serial_add(old_serial, 1)
        if new_soa is not None and serial_gt(int(new_soa[0].serial), old_serial):
            serial = int(new_soa[0].serial)
        soa = new_soa if new_soa is not None else old_soa
        rdata = soa[0]
        assert isinstance(rdata, SOA)
        next_soa = dns.rrset.RRset(self.origin, dns.rdataclass.IN, _SOA)
        next_soa.update_ttl(soa.ttl)
        next_soa.add(rdata.replace(serial=serial))
        changes[(self._apex, _SOA)] = next_soa

        touched: set[NameKey] = set()
        for (owner, rdtype), rrset in changes.items():
            sets = self._data.get(owner)
            old = sets.get(rdtype) if sets else None
            delta.remove(old)
            if rrset is None:
                if sets is not None:
                    sets.pop(rdtype, None)
                    if not sets:
                        del self._data[owner]
                        del self._names[bisect.bisect_left(self._names, owner)]
            else:
                delta.add(rrset)
                if sets is None:
                    sets = self._data[owner] = {}
                    bisect.insort(self._names, owner)
                sets[rdtype] = rrset
            # The old signature goes; `_update` signs the new RRset if it is to be signed.
            delta.remove(self._rrsigs.pop((owner, rdtype), None))
            touched.add(owner)
            if rdtype == _DNAME or (rdtype == _NS and owner != self._apex):
                touched.update(self._below(owner))  # occluded or uncovered
        self._update(touched, delta, now)

        added = list(delta.added.values())
        removed = delta.removed
        # An IXFR sequence: the old SOA opens the removals, the new one the additions.
        removed.sort(key=lambda rrset: rrset is not old_soa)
        added.sort(key=lambda rrset: rrset is not next_soa)
        return ZoneDiff(old_serial, serial, tuple(removed), tuple(added))

    def _update(self, touched: set[NameKey], delta: _Delta, now: datetime) -> None:
        """Bring the signatures and the chain of the `touched` names in line with their data."""
        entered: list[NameKey] = []
        left: list[NameKey] = []
        for owner in touched:
            sets = self._data.get(owner)
            old_mode = self._modes.get(owner)
            mode = self._mode(owner, sets) if sets else None
            if mode is None:
                self._modes.pop(owner, None)
            else:
                self._modes[owner] = mode
            for rdtype, rrset in (sets or {}).items():
                signed = mode == SIGNED or (mode == DELEGATION and rdtype == _DS)
                place = (owner, rdtype)
                if signed and (mode != old_mode or place not in self._rrsigs):
                    delta.remove(self._rrsigs.get(place))
                    self._rrsigs[place] = self._sign(rrset, now)
                    delta.add(self._rrsigs[place])
                elif not signed:
                    delta.remove(self._rrsigs.pop(place, None))
            was_in = old_mode in (SIGNED, DELEGATION)
            is_in = mode in (SIGNED, DELEGATION)
            if is_in and not was_in:
                bisect.insort(self._chain, owner)
                entered.append(owner)
            elif was_in and not is_in:
                del self._chain[bisect.bisect_left(self._chain, owner)]
                left.append(owner)
        if self.nsec == "nsec":
            self._relink_nsec(touched, entered, left, delta, now)
        else:
            self._relink_nsec3(touched, delta, now)

    def _relink_nsec(
        self,
        touched: set[NameKey],
        entered: list[NameKey],
        left: list[NameKey],
        delta: _Delta,
        now: datetime,
    ) -> None:
        relink = {owner for owner in touched if owner in self._modes
                  and self._modes[owner] != UNSIGNED}
        for owner in [*entered, *left]:
            relink.add(self._chain[bisect.bisect_left(self._chain, owner) - 1])
        for owner in left:
            self._drop_denial(owner, delta)
        names = {owner: self._data[owner][next(iter(self._data[owner]))].name
                 for owner in relink}
        for owner in relink:
            position = bisect.bisect_left(self._chain, owner)
            following = self._chain[(position + 1) % len(self._chain)]
            next_name = self._data[following][next(iter(self._data[following]))].name
            types = [*self._chain_types(owner), _RRSIG, _NSEC]
            rdata = NSEC(  # type: ignore[no-untyped-call]
                dns.rdataclass.IN, _NSEC, next_name, Bitmap.from_rdtypes(_rdtypes(types)))
            self._set_denial(owner, names[owner], _NSEC, rdata, delta, now)

    def _relink_nsec3(self, touched: set[NameKey], delta: _Delta, now: datetime) -> None:
        candidates = set(touched)
        for owner in touched:
            candidates.update(owner[:size] for size in range(len(self._apex) + 1, len(owner)))
        relink: set[bytes] = set()
        for owner in candidates:
            member = self._nsec3_member(owner)
            digest = _nsec3_digest(owner)
            position = bisect.bisect_left(self._hashes, digest)
            was = position < len(self._hashes) and self._hashes[position] == digest
            if member:
                relink.add(digest)
                if not was:
                    self._hashes.insert(position, digest)
                    self._hashed[digest] = owner
                    relink.add(self._hashes[position - 1])
            elif was:
                del self._hashes[position]
                del self._hashed[digest]
                self._drop_denial(owner, delta)
                if self._hashes:
                    relink.add(self._hashes[position - 1])
        for digest in relink:
            if digest not in self._hashed:
                continue
            owner = self._hashed[digest]
            position = bisect.bisect_left(self._hashes, digest)
            following = self._hashes[(position + 1) % len(self._hashes)]
            types = list(self._chain_types(owner)) if owner in self._modes else []
            if owner in self._modes and (
                self._modes[owner] == SIGNED or _DS in self._data[owner]
            ):
                types.append(_RRSIG)
            rdata = NSEC3(  # type: ignore[no-untyped-call]
                dns.rdataclass.IN, _NSEC3, _NSEC3_SHA1, 0, 0, b"", following,
                NSEC3Bitmap.from_rdtypes(_rdtypes(types)))
            label = base64.b32hexencode(digest).decode("ascii").lower().encode("ascii")
            hashed_name = dns.name.Name((label, *self.origin.labels))
            self._set_denial(owner, hashed_name, _NSEC3, rdata, delta, now)

    def _nsec3_member(self, owner: NameKey) -> bool:
        """Whether `owner` has an NSEC3: it is authoritative or an empty non-terminal."""
        mode = self._modes.get(owner)
        if mode is not None:
            return mode != UNSIGNED
        if owner in self._data:
            return False
        position = bisect.bisect_right(self._chain, owner)
        return position < len(self._chain) and self._chain[position][: len(owner)] == owner

    def _set_denial(
        self,
        owner: NameKey,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdata: NSEC | NSEC3,
        delta: _Delta,
        now: datetime,
    ) -> None:
        old = self._denial.get(owner)
        if old is not None and old.name == name and old[0] == rdata:
            return
        self._drop_denial(owner, delta)
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
        rrset.update_ttl(self._denial_ttl())
        rrset.add(rdata)
        place = (name_key(name), rdtype)
        self._denial[owner] = rrset
        self._denial_at[place] = rrset
        delta.add(rrset)
        self._rrsigs[place] = self._sign(rrset, now)
        delta.add(self._rrsigs[place])

    def _drop_denial(self, owner: NameKey, delta: _Delta) -> None:
        old = self._denial.pop(owner, None)
        if old is not None:
            place = (name_key(old.name), old.rdtype)
            del self._denial_at[place]
            delta.remove(old)
            delta.remove(self._rrsigs.pop(place, None))

    def _resign(self, owner: NameKey, rdtype: int, delta: _Delta, now: datetime) -> None:
        """Sign again the RRset at `owner` whose RRSIG covers `rdtype`."""
        rrset = self._data.get(owner, {}).get(rdtype) or self._denial_at[(owner, rdtype)]
        delta.remove(self._rrsigs.get((owner, rdtype)))
        self._rrsigs[(owner, rdtype)] = self._sign(rrset, now)
        delta.add(self._rrsigs[(owner, rdtype)])

    def _sign(self, rrset: dns.rrset.RRset, now: datetime) -> dns.rrset.RRset:
        owner = name_key(rrset.name)
        expiration = now + self.lifetime - self._jitter(owner, rrset.rdtype)
        # RFC 7344 section 4.1: CDS and CDNSKEY are signed, like the DNSKEY RRset, by a key
        # that the parent's DS names.
        keys = self._ksks if rrset.rdtype in KSK_SIGNED_TYPES else self._zsks
        rrsigs = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, _RRSIG, rrset.rdtype)
        rrsigs.update_ttl(rrset.ttl)
        # Each RRSIG is new, so the RRset's duplicate check (a canonical-wire hash) is skipped.
        for rrsig in rrset_signatures(rrset, keys, signature_time(now - self.backdate),
                                      signature_time(expiration), self._signer,
                                      key_wire(owner)):
            rrsigs.items[rrsig] = None
        self.signatures_made += len(keys)
        return rrsigs

    def _jitter(self, owner: NameKey, rdtype: int) -> timedelta:
        """How far an RRset's expiry is pulled forward: fixed per owner and type."""
        span = int(self.lifetime.total_seconds() * JITTER_FRACTION)
        seed = hashlib.sha256(b".".join(owner) + rdtype.to_bytes(2, "big")).digest()
        return timedelta(seconds=int.from_bytes(seed[:8], "big") % span)

    def _mode(self, owner: NameKey, sets: dict[int, dns.rrset.RRset]) -> int:
        # Below a delegation or a DNAME (RFC 6672 §2.3) nothing is authoritative.
        for size in range(len(self._apex), len(owner)):
            above = self._data.get(owner[:size])
            if above and (_DNAME in above or (size > len(self._apex) and _NS in above)):
                return UNSIGNED
        if owner != self._apex and _NS in sets:
            return DELEGATION
        return SIGNED

    def _chain_types(self, owner: NameKey) -> list[int]:
        types = list(self._data[owner])
        if self._modes[owner] == DELEGATION:
            return [rdtype for rdtype in types if rdtype in (_NS, _DS)]
        return types

    def _below(self, owner: NameKey) -> list[NameKey]:
        """The names under `owner`: in canonical order they follow it, one run."""
        start = bisect.bisect_right(self._names, owner)
        stop = start
        while stop < len(self._names) and self._names[stop][: len(owner)] == owner:
            stop += 1
        return self._names[start:stop]

    def _set_keys(self, keys: Sequence[AnyKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = list(keys)
        ksks = [key for key in keys if key.is_ksk]
        self._zsks = [key for key in keys if not key.is_ksk] or ksks
        self._ksks = ksks or self._zsks

    def _dnskey_rrset(self) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(self.origin, dns.rdataclass.IN, _DNSKEY)
        rrset.update_ttl(self._soa().ttl)
        for rdata in [*self._extra_dnskeys, *self._published, *(key.dnskey for key in self._keys)]:
            rrset.add(rdata)
        return rrset

    def _soa(self) -> dns.rrset.RRset:
        apex = self._data.get(self._apex)
        if apex is None or _SOA not in apex:
            # Only while the constructor reads the zone.
            raise ValueError(f"the zone {self.origin} has no SOA")
        return apex[_SOA]

    def _denial_ttl(self) -> int:
        soa = self._soa()
        # RFC 9077: the smaller of the SOA TTL and the SOA MINIMUM.
        return min(soa.ttl, int(soa[0].minimum))

    def _check_owner(self, name: dns.name.Name) -> None:
        if not name.is_subdomain(self.origin):
            raise ValueError(f"{name} is outside the zone {self.origin}")

    def _check_change(self, name: dns.name.Name, rdtype: int) -> None:
        self._check_owner(name)
        if rdtype in _MANAGED:
            raise ValueError(
                f"{dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))} records are "
                "made by the signer")
        if rdtype == _SOA and name != self.origin:
            raise ValueError("the SOA belongs at the zone apex")


def _rdtypes(types: list[int]) -> list[dns.rdatatype.RdataType]:
    return [dns.rdatatype.RdataType.make(rdtype) for rdtype in types]


def _nsec3_digest(owner: NameKey) -> bytes:
    """The RFC 5155 hash with the RFC 9276 parameters: SHA-1, no extra iterations, no salt."""
    return hashlib.sha1(key_wire(owner), usedforsecurity=False).digest()


def _nsec3param(origin: dns.name.Name) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(origin, dns.rdataclass.IN, _NSEC3PARAM)
    rrset.update_ttl(0)
    rrset.add(NSEC3PARAM(  # type: ignore[no-untyped-call]
        dns.rdataclass.IN, _NSEC3PARAM, _NSEC3_SHA1, 0, 0, b""))
    return rrset


def _serial_lt(a: int, b: int) -> bool:
    """RFC 4034 §3.1.5: RRSIG times compare in serial number arithmetic (RFC 1982)."""
    return a != b and serial_gt(b, a)
