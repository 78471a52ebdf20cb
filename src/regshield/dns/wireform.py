"""RRsets as bytes for the store: how a published zone and its journal are kept.

`encode` writes RRsets in DNS wire form (RFC 1035 §3.2.1, names uncompressed and absolute),
one after another, and compresses the whole; `decode` reads them back. A signed zone of
100,000 records is a quarter of a million RRsets, and reading it back is what a restart waits
for, so the records that make up most of a signed zone (RRSIG, NSEC, NSEC3, A, AAAA, NS, DS)
and SOA and DNSKEY (all a small zone holds) are read by this module and built without
dnspython's per-field checks; every other type goes through `dns.rdata.from_wire`. The
bytes come from the publisher of this installation, but they are read as untrusted all the
same: a truncated or malformed blob raises `ValueError`, never builds a half-read zone.

Names are read as `StoredName`: a `dns.name.Name` that keeps its hash and its wire forms.
dnspython works both out again at each use (a pure-Python loop over the labels, and a new
`Name` per label to write one), and a zone read back is hashed and written many times over:
each record as it enters its RRset, then the server's index and the signer's by owner.

Layout, after `MAGIC`, zlib-compressed: for each RRset, the owner (one length byte, then its
wire form), type, covered type, TTL and record count (`!HHIH`), then each record as a 16-bit
length and its rdata.
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections.abc import Iterable
from typing import Any

import dns.dnssectypes
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.RRSIG import RRSIG
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.dnskeybase import Flag as DNSKEYFlag
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

MAGIC = b"RSZ1"
_HEAD = struct.Struct("!HHIH")
_LENGTH = struct.Struct("!H")
_RRSIG_HEAD = struct.Struct("!HBBIIIH")
_DS_HEAD = struct.Struct("!HBB")  # and a DNSKEY's: flags, protocol, algorithm
_SOA_TIMES = struct.Struct("!IIIII")
_MAX_TTL = 2**31 - 1  # RFC 2181 §8
_NSEC3_HEAD = struct.Struct("!BBHB")
_IN = dns.rdataclass.IN
_set = object.__setattr__  # dnspython's rdata are immutable once made; these are being made


class StoredName(dns.name.Name):
    """An absolute name that keeps its hash and its wire form, plain and lowercased.

    Equal to, hashed as and compared with a `dns.name.Name` of the same labels exactly as
    that one is; only the work is done once. Make one with `stored_name`."""

    __slots__ = ("_hash", "_lowered", "_wire")
    _hash: int
    _wire: bytes
    _lowered: bytes

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if type(other) is StoredName:
            return self._lowered == other._lowered
        return bool(super().__eq__(other))  # type: ignore[no-untyped-call]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def to_wire(self, file: Any | None = None, compress: Any | None = None,
                origin: dns.name.Name | None = None,
                canonicalize: bool = False) -> bytes | None:
        if compress is not None:
            return super().to_wire(file, compress, origin, canonicalize)
        wire = self._lowered if canonicalize else self._wire
        if file is None:
            return wire
        file.write(wire)
        return None

    def canonicalize(self) -> dns.name.Name:
        return self if self._wire == self._lowered else stored_name(self._lowered)

    def __reduce__(self) -> tuple[Any, ...]:  # sent to a DNS worker as what it is
        return stored_name, (self._wire,)


def stored_name(wire: bytes) -> StoredName:
    """The absolute name whose uncompressed wire form is `wire`; `ValueError` if it is not
    one (a compressed or extended label, a label or name too long, bytes left over)."""
    labels = []
    position = 0
    end = len(wire)
    while True:
        if position >= end:
            raise ValueError("a name runs past its end")
        size = wire[position]
        if size > 63:
            raise ValueError("a compressed or extended label")
        labels.append(wire[position + 1:position + 1 + size])
        position += 1 + size
        if size == 0:
            break
    if position != end or end > 255:
        raise ValueError("a name is not one absolute wire name")
    lowered = wire.lower()  # length octets are below 64: only letters change
    # dnspython's own hash of a name (`dns.name.Name.__hash__`), that of its lowered labels.
    value = 0
    for label in labels:
        for octet in label.lower():
            value += (value << 3) + octet
    name = StoredName.__new__(StoredName)
    for field, content in (("labels", tuple(labels)), ("_hash", hash(value)),
                           ("_wire", wire), ("_lowered", lowered)):
        _set(name, field, content)
    return name


class _KeptHash:
    """Mixed into a record type: the record keeps its hash, worked out once from the wire it
    was read from. dnspython hashes a record by writing it out in canonical form
    (`Rdata.__hash__`), and each record is hashed as it enters its RRset and at each lookup
    in one. The value is this process's `hash` of bytes, so it is never pickled (a DNS worker
    works it out again, as dnspython does); nor has a record made from this one (`replace`)."""

    __slots__ = ()

    def __hash__(self) -> int:
        try:
            return self._hash  # type: ignore[attr-defined,no-any-return]
        except AttributeError:
            return super().__hash__()

    def __getstate__(self) -> dict[str, Any]:
        slots = self._get_all_slots()  # type: ignore[attr-defined]
        return {slot: getattr(self, slot) for slot in slots if slot != "_hash"}


class _RRSIG(_KeptHash, RRSIG):
    __slots__ = ("_hash",)


class _NSEC(_KeptHash, NSEC):
    __slots__ = ("_hash",)


class _NSEC3(_KeptHash, NSEC3):
    __slots__ = ("_hash",)


class _A(_KeptHash, A):
    __slots__ = ("_hash",)


class _AAAA(_KeptHash, AAAA):
    __slots__ = ("_hash",)


class _NS(_KeptHash, NS):
    __slots__ = ("_hash",)


class _DS(_KeptHash, DS):
    __slots__ = ("_hash",)


class _SOA(_KeptHash, SOA):
    __slots__ = ("_hash",)


class _DNSKEY(_KeptHash, DNSKEY):
    __slots__ = ("_hash",)


# What a number stands for, found once for every read (dnspython's `make` is slow): types,
# algorithms and DNSKEY flags. Bounded by the values of 16 bits.
_TYPES: dict[int, dns.rdatatype.RdataType] = {}
_ALGORITHMS: dict[int, dns.dnssectypes.Algorithm] = {}
_FLAGS: dict[int, DNSKEYFlag] = {}


def encode(rrsets: Iterable[dns.rrset.RRset]) -> bytes:
    parts: list[bytes] = []
    add = parts.append
    names: dict[dns.name.Name, bytes] = {}
    for rrset in rrsets:
        owner = names.get(rrset.name)
        if owner is None:
            wire = rrset.name.to_wire()
            assert wire is not None
            owner = names[rrset.name] = bytes((len(wire),)) + wire
        add(owner)
        add(_HEAD.pack(rrset.rdtype, rrset.covers, rrset.ttl, len(rrset)))
        for rdata in rrset:
            wire = rdata.to_wire()
            assert wire is not None
            add(_LENGTH.pack(len(wire)))
            add(wire)
    return MAGIC + zlib.compress(b"".join(parts), 1)


def decode(blob: bytes) -> list[dns.rrset.RRset]:
    if not blob.startswith(MAGIC):
        raise ValueError("not RRsets as this module writes them")
    try:
        data = zlib.decompress(blob[len(MAGIC):])
    except zlib.error as exc:
        raise ValueError(f"the RRsets cannot be decompressed: {exc}") from None
    try:
        return _Reader(data).rrsets()
    except (IndexError, struct.error, dns.exception.DNSException, UnicodeError,
            ValueError) as exc:
        raise ValueError(f"the RRsets are malformed: {type(exc).__name__}") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.names: dict[bytes, StoredName] = {}

    def rrsets(self) -> list[dns.rrset.RRset]:
        data = self.data
        end = len(data)
        position = 0
        out: list[dns.rrset.RRset] = []
        readers = {
            dns.rdatatype.RRSIG: self._rrsig, dns.rdatatype.NSEC: self._nsec,
            dns.rdatatype.NSEC3: self._nsec3, dns.rdatatype.A: self._a,
            dns.rdatatype.AAAA: self._aaaa, dns.rdatatype.NS: self._ns,
            dns.rdatatype.DS: self._ds, dns.rdatatype.SOA: self._soa,
            dns.rdatatype.DNSKEY: self._dnskey,
        }
        while position < end:
            size = data[position]
            owner = self._name(data[position + 1:position + 1 + size])
            position += 1 + size
            rdtype, covers, ttl, count = _HEAD.unpack_from(data, position)
            position += _HEAD.size
            rrset = dns.rrset.RRset.__new__(dns.rrset.RRset)
            items: dict[dns.rdata.Rdata, None] = {}
            rrset.items = items
            rrset.rdclass = _IN
            rrset.rdtype = self._type(rdtype)
            rrset.covers = self._type(covers)
            rrset.ttl = ttl
            rrset.name = owner
            rrset.deleting = None
            read = readers.get(rdtype)
            for _ in range(count):
                (length,) = _LENGTH.unpack_from(data, position)
                position += 2
                stop = position + length
                if stop > end:
                    raise ValueError("a record runs past the end")
                if read is not None:
                    rdata = read(data, position, stop)
                else:
                    rdata = dns.rdata.from_wire(_IN, rdtype, data, position, length)
                items[rdata] = None
                position = stop
            out.append(rrset)
        return out

    def _name(self, wire: bytes) -> StoredName:
        name = self.names.get(wire)
        if name is None:
            name = self.names[wire] = stored_name(wire)
        return name

    def _name_at(self, data: bytes, position: int, stop: int) -> tuple[StoredName, int]:
        """The uncompressed name at `position`, and where it ends."""
        end = position
        while True:
            if end >= stop:
                raise ValueError("a name runs past its record")
            size = data[end]
            if size > 63:
                raise ValueError("a compressed or extended label")
            end += 1 + size
            if size == 0:
                return self._name(data[position:end]), end

    def _type(self, value: int) -> dns.rdatatype.RdataType:
        known = _TYPES.get(value)
        if known is None:
            known = _TYPES[value] = dns.rdatatype.RdataType.make(value)
        return known

    def _algorithm(self, value: int) -> dns.dnssectypes.Algorithm:
        known = _ALGORITHMS.get(value)
        if known is None:
            known = _ALGORITHMS[value] = dns.dnssectypes.Algorithm.make(value)
        return known

    @staticmethod
    def _start(cls: type[dns.rdata.Rdata], rdtype: dns.rdatatype.RdataType,
               digestable: bytes) -> dns.rdata.Rdata:
        """A record of `cls`, to be filled in; `digestable` is its canonical wire form
        (RFC 4034 §6.2, as `Rdata.to_digestable` writes it), which its hash is that of."""
        rdata = cls.__new__(cls)
        _set(rdata, "rdclass", _IN)
        _set(rdata, "rdtype", rdtype)
        _set(rdata, "rdcomment", None)
        _set(rdata, "_hash", hash(digestable))
        return rdata

    def _rrsig(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        covered, algorithm, labels, ttl, expiration, inception, key_tag = (
            _RRSIG_HEAD.unpack_from(data, position))
        signer, end = self._name_at(data, position + _RRSIG_HEAD.size, stop)
        rdata = self._start(_RRSIG, dns.rdatatype.RRSIG, b"".join((
            data[position:position + _RRSIG_HEAD.size], signer._lowered, data[end:stop])))
        for field, value in (("type_covered", self._type(covered)),
                             ("algorithm", self._algorithm(algorithm)),
                             ("labels", labels), ("original_ttl", ttl),
                             ("expiration", expiration), ("inception", inception),
                             ("key_tag", key_tag), ("signer", signer),
                             ("signature", data[end:stop])):
            _set(rdata, field, value)
        return rdata

    def _nsec(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        following, end = self._name_at(data, position, stop)
        # RFC 6840 §5.1: the next name keeps its case in the canonical form.
        rdata = self._start(_NSEC, dns.rdatatype.NSEC, data[position:stop])
        _set(rdata, "next", following)
        _set(rdata, "windows", _windows(data, end, stop))
        return rdata

    def _nsec3(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        start = position
        algorithm, flags, iterations, salt_size = _NSEC3_HEAD.unpack_from(data, position)
        position += _NSEC3_HEAD.size
        salt = data[position:position + salt_size]
        position += salt_size
        hash_size = data[position]
        following = data[position + 1:position + 1 + hash_size]
        position += 1 + hash_size
        if position > stop or not hash_size:
            raise ValueError("an NSEC3 record is cut short")
        rdata = self._start(_NSEC3, dns.rdatatype.NSEC3, data[start:stop])
        for field, value in (("algorithm", algorithm), ("flags", flags),
                             ("iterations", iterations), ("salt", salt), ("next", following),
                             ("windows", _windows(data, position, stop))):
            _set(rdata, field, value)
        return rdata

    def _a(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        if stop - position != 4:
            raise ValueError("an A record is not four octets")
        address = data[position:stop]
        rdata = self._start(_A, dns.rdatatype.A, address)
        _set(rdata, "address", socket.inet_ntop(socket.AF_INET, address))
        return rdata

    def _aaaa(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        if stop - position != 16:
            raise ValueError("an AAAA record is not sixteen octets")
        address = data[position:stop]
        rdata = self._start(_AAAA, dns.rdatatype.AAAA, address)
        _set(rdata, "address", socket.inet_ntop(socket.AF_INET6, address))
        return rdata

    def _ns(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        target, end = self._name_at(data, position, stop)
        if end != stop:
            raise ValueError("an NS record holds more than a name")
        rdata = self._start(_NS, dns.rdatatype.NS, target._lowered)
        _set(rdata, "target", target)
        return rdata

    def _soa(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        mname, end = self._name_at(data, position, stop)
        rname, end = self._name_at(data, end, stop)
        if stop - end != _SOA_TIMES.size:
            raise ValueError("an SOA record's numbers are not five")
        serial, *times = _SOA_TIMES.unpack_from(data, end)
        if max(times) > _MAX_TTL:
            raise ValueError("an SOA record's time is out of range")
        rdata = self._start(_SOA, dns.rdatatype.SOA,
                            mname._lowered + rname._lowered + data[end:stop])
        for field, value in (("mname", mname), ("rname", rname), ("serial", serial),
                             *zip(("refresh", "retry", "expire", "minimum"), times,
                                  strict=True)):
            _set(rdata, field, value)
        return rdata

    def _dnskey(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        flags, protocol, algorithm = _DS_HEAD.unpack_from(data, position)
        rdata = self._start(_DNSKEY, dns.rdatatype.DNSKEY, data[position:stop])
        known = _FLAGS.get(flags)
        if known is None:
            known = _FLAGS[flags] = DNSKEYFlag(flags)
        for field, value in (("flags", known), ("protocol", protocol),
                             ("algorithm", self._algorithm(algorithm)),
                             ("key", data[position + _DS_HEAD.size:stop])):
            _set(rdata, field, value)
        return rdata

    def _ds(self, data: bytes, position: int, stop: int) -> dns.rdata.Rdata:
        key_tag, algorithm, digest_type = _DS_HEAD.unpack_from(data, position)
        rdata = self._start(_DS, dns.rdatatype.DS, data[position:stop])
        for field, value in (("key_tag", key_tag), ("algorithm", self._algorithm(algorithm)),
                             ("digest_type", dns.dnssectypes.DSDigest.make(digest_type)),
                             ("digest", data[position + _DS_HEAD.size:stop])):
            _set(rdata, field, value)
        return rdata


def _windows(data: bytes, position: int, stop: int) -> tuple[tuple[int, bytes], ...]:
    """An NSEC or NSEC3 type bitmap (RFC 4034 §4.1.2) as dnspython holds it."""
    windows = []
    while position < stop:
        window, size = data[position], data[position + 1]
        if not 1 <= size <= 32 or position + 2 + size > stop:
            raise ValueError("a type bitmap window is malformed")
        windows.append((window, data[position + 2:position + 2 + size]))
        position += 2 + size
    return tuple(windows)
