"""The zone signer: RRSIGs over canonical RRsets, and NSEC or NSEC3 chains (RFC 4034, 5155).

The data to sign (RFC 4034 §3.1.8.1) is built here, once per RRset, and signed with
`cryptography` directly; dnspython's own `sign` rebuilds the RRset through its generic
machinery for every signature and spends most of its time there. dnspython supplies the data
types and each rdata's canonical form (`to_digestable`, which lower-cases the names embedded in
the types RFC 4034 §6.2 lists, as amended by RFC 6840 §5.1). The rules it applies (what is
signed where, the canonical order of names, signature times) are shared with the zone-file
signer (`offline`) and the incremental signer (`incremental`) through the names defined here.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.util
import dns.rrset
import dns.zone
from dns.rdtypes.ANY.NSEC import NSEC, Bitmap
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.NSEC3 import Bitmap as NSEC3Bitmap
from dns.rdtypes.ANY.NSEC3PARAM import NSEC3PARAM
from dns.rdtypes.ANY.RRSIG import RRSIG

from regshield.dnssec.keys import AnyKey, sign_data

_WILDCARD = b"*"
_DELEGATION_TYPES = frozenset({dns.rdatatype.NS, dns.rdatatype.DS})
# Signed by the KSKs: the DNSKEY RRset, and CDS and CDNSKEY (RFC 7344 section 4.1).
KSK_SIGNED_TYPES = frozenset({dns.rdatatype.DNSKEY, dns.rdatatype.CDS, dns.rdatatype.CDNSKEY})
# Types that are never signed by the zone itself: the signatures, and the denial records we rebuild.
_REBUILT = frozenset(
    {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3, dns.rdatatype.NSEC3PARAM}
)
_NSEC3_SHA1 = 1

NameKey = tuple[bytes, ...]
"""A name's lower-cased labels below the root, root first: tuples of them sort in the canonical
order of names (RFC 4034 §6.1), and a name's descendants follow it."""

UNSIGNED, SIGNED, DELEGATION = 0, 1, 2
"""How a name's RRsets are published: unsigned (glue and other data below a zone cut or a
DNAME), signed (authoritative data), or as a zone cut (only its DS is signed, RFC 4035 §2.2)."""


def sign_rrset(
    rrset: dns.rrset.RRset,
    key: AnyKey,
    inception: datetime,
    expiration: datetime,
    origin: dns.name.Name,
) -> RRSIG:
    """Sign one RRset with `key`, the zone apex `origin` being the signer name."""
    wire = _rrset_wire(
        rrset.name.to_digestable(), rrset, (rdata.to_digestable(origin) for rdata in rrset)
    )
    signer = origin.canonicalize()
    return _sign(
        rrset, wire, key, signature_time(inception), signature_time(expiration), signer,
        signer.to_digestable(),
    )


def rrset_signatures(
    rrset: dns.rrset.RRset,
    keys: Sequence[AnyKey],
    inception: int,
    expiration: int,
    origin: dns.name.Name,
    owner_wire: bytes,
) -> list[RRSIG]:
    """Sign one RRset with each of `keys`, its signed data built once.

    For signing many RRsets of one zone: the times are RRSIG times (`signature_time`),
    `origin` is the zone apex in lower case (the signer name) and `owner_wire` the RRset owner's
    lower-cased wire form (`key_wire`).
    """
    wire = _rrset_wire(owner_wire, rrset, (rdata.to_digestable(origin) for rdata in rrset))
    signer_wire = key_wire(name_key(origin))
    return [_sign(rrset, wire, key, inception, expiration, origin, signer_wire) for key in keys]


def sign_zone(
    zone: dns.zone.Zone | Iterable[dns.rrset.RRset],
    keys: Sequence[AnyKey],
    inception: datetime,
    expiration: datetime,
    nsec: Literal["nsec", "nsec3"] = "nsec",
) -> list[dns.rrset.RRset]:
    """Sign a zone; return every authoritative and glue RRset, its RRSIGs and a denial chain.

    The DNSKEY RRset is signed by the KSKs (SEP bit set) and everything else by the ZSKs; with
    no ZSK, the KSKs sign everything (a combined signing key). The DNSKEY RRset gains the keys'
    DNSKEYs (TTL: the SOA's when the zone has none). Existing RRSIG, NSEC, NSEC3 and NSEC3PARAM
    records are dropped first, so signing a signed zone replaces its signatures rather than
    adding to them. Delegations (RFC 4035 §2.2): only their DS and denial records are signed,
    their NS is not, and names below a delegation (glue) are neither signed nor in the chain.
    Names below a DNAME are occluded the same way. The returned rdata hold absolute names; a
    zone loaded with `relativize=False` spares the signer making them absolute.

    `nsec="nsec"` builds an NSEC chain (RFC 4034 §4); `nsec="nsec3"` an NSEC3 chain
    (RFC 5155) with the RFC 9276 parameters: SHA-1, no extra iterations, no salt, no opt-out.
    """
    if nsec not in ("nsec", "nsec3"):
        raise ValueError(f"nsec must be 'nsec' or 'nsec3', not {nsec!r}")
    if not keys:
        raise ValueError("at least one signing key is needed")
    origin, rrsets = _zone_rrsets(zone)
    soa = _find(rrsets, origin, dns.rdatatype.SOA)
    if soa is None:
        raise ValueError(f"the zone {origin} has no SOA at its apex")
    rrsets = _with_dnskeys(rrsets, origin, keys, soa.ttl)
    if nsec == "nsec3":
        rrsets.append(_nsec3param_rrset(origin))
    ksks = [key for key in keys if key.is_ksk]
    zsks = [key for key in keys if not key.is_ksk] or ksks
    ksks = ksks or zsks
    start, end = signature_time(inception), signature_time(expiration)
    signer = origin.canonicalize()
    signer_wire = signer.to_digestable()

    # Names are handled by their canonical sort key (RFC 4034 §6.1): an ancestor's key is a
    # prefix of its descendants' keys, and keys sort in canonical order.
    by_key: dict[tuple[bytes, ...], list[dns.rrset.RRset]] = {}
    for rrset in rrsets:
        by_key.setdefault(_canonical_order(rrset.name), []).append(rrset)
    apex = _canonical_order(origin)
    cuts = {
        name_key for name_key, sets in by_key.items()
        if name_key != apex and any(s.rdtype == dns.rdatatype.NS for s in sets)
    }
    # Below a delegation or a DNAME (RFC 6672 §2.3) nothing is authoritative.
    occluding = cuts | {
        name_key for name_key, sets in by_key.items()
        if any(s.rdtype == dns.rdatatype.DNAME for s in sets)
    }
    keys_in_chain = sorted(
        name_key for name_key in by_key
        if not any(name_key[:size] in occluding for size in range(len(apex), len(name_key)))
    )
    in_chain = set(keys_in_chain)
    # RFC 9077: the NSEC and NSEC3 TTL is the smaller of the SOA TTL and the SOA MINIMUM.
    denial_ttl = min(soa.ttl, soa[0].minimum)

    signed: list[dns.rrset.RRset] = []
    for name_key, sets in by_key.items():
        if name_key not in in_chain:
            signed.extend(sets)  # glue and occluded data: published unsigned
    # The parent side of a delegation holds only NS and DS (RFC 4035 §2.3); other data there
    # is occluded and published unsigned, like glue.
    for name_key in cuts & in_chain:
        signed.extend(s for s in by_key[name_key] if s.rdtype not in _DELEGATION_TYPES)
        by_key[name_key] = [s for s in by_key[name_key] if s.rdtype in _DELEGATION_TYPES]

    authoritative = [by_key[name_key][0].name for name_key in keys_in_chain]
    # Wire form with case kept (an NSEC next name, RFC 6840 §5.1) and lower-cased (an owner);
    # length octets are below 64, so lower-casing the wire only touches the letters.
    name_wires = [_wire(name) for name in authoritative]
    owner_wires = dict(zip(keys_in_chain, (wire.lower() for wire in name_wires), strict=True))
    denial: list[tuple[bytes, dns.rrset.RRset, bytes]]
    if nsec == "nsec":
        denial = _nsec_chain(authoritative, keys_in_chain, by_key, name_wires, denial_ttl)
    else:
        denial = _nsec3_chain(origin, keys_in_chain, by_key, cuts, owner_wires, denial_ttl)

    def sign(owner_wire: bytes, rrset: dns.rrset.RRset, rdata_wires: Iterable[bytes]) -> None:
        signed.append(rrset)
        wire = _rrset_wire(owner_wire, rrset, rdata_wires)
        rrsigs = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rrset.rdtype)
        rrsigs.update_ttl(rrset.ttl)
        # RFC 7344 section 4.1: CDS and CDNSKEY are signed by the KSKs too.
        for key in ksks if rrset.rdtype in KSK_SIGNED_TYPES else zsks:
            # Inserted directly: each RRSIG is new, so `add`'s duplicate check (which hashes
            # the rdata through its canonical wire form) would only cost time.
            rrsigs.items[_sign(rrset, wire, key, start, end, signer, signer_wire)] = None
        signed.append(rrsigs)

    for name_key in keys_in_chain:
        is_cut = name_key in cuts
        for rrset in by_key[name_key]:
            if is_cut and rrset.rdtype != dns.rdatatype.DS:
                signed.append(rrset)  # RFC 4035 §2.2: the parent does not sign a child's NS
                continue
            sign(owner_wires[name_key], rrset, (rdata.to_digestable(origin) for rdata in rrset))
    for owner_wire, rrset, rdata_wire in denial:
        sign(owner_wire, rrset, (rdata_wire,))
    return signed


def _nsec_chain(
    authoritative: list[dns.name.Name],
    keys_in_chain: list[tuple[bytes, ...]],
    by_key: dict[tuple[bytes, ...], list[dns.rrset.RRset]],
    name_wires: list[bytes],
    ttl: int,
) -> list[tuple[bytes, dns.rrset.RRset, bytes]]:
    """The NSEC chain (RFC 4034 §4): one NSEC per authoritative name, wrapping to the apex.

    Each entry is the lower-cased owner wire, the NSEC RRset and its rdata in canonical form
    (RFC 6840 §5.1: the next name keeps its case).
    """
    chain = []
    for index, name in enumerate(authoritative):
        following = (index + 1) % len(authoritative)
        types = [s.rdtype for s in by_key[keys_in_chain[index]]]
        bitmap = Bitmap.from_rdtypes([*types, dns.rdatatype.RRSIG, dns.rdatatype.NSEC])
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.NSEC)
        rrset.update_ttl(ttl)
        # A new one-record RRset: inserted directly, sparing `add`'s duplicate check.
        rrset.items[
            NSEC(  # type: ignore[no-untyped-call]
                dns.rdataclass.IN, dns.rdatatype.NSEC, authoritative[following], bitmap
            )
        ] = None
        rdata_wire = name_wires[following] + _bitmap_wire(bitmap)
        chain.append((name_wires[index].lower(), rrset, rdata_wire))
    return chain


def _nsec3_chain(
    origin: dns.name.Name,
    keys_in_chain: list[tuple[bytes, ...]],
    by_key: dict[tuple[bytes, ...], list[dns.rrset.RRset]],
    cuts: set[tuple[bytes, ...]],
    owner_wires: dict[tuple[bytes, ...], bytes],
    ttl: int,
) -> list[tuple[bytes, dns.rrset.RRset, bytes]]:
    """The NSEC3 chain (RFC 5155 §7.1) with RFC 9276 parameters, in hash order.

    Every authoritative name and every empty non-terminal between one and the apex gets an
    NSEC3; its bitmap lists the types at the original name, with RRSIG when that name holds a
    signed RRset (an insecure delegation holds none), and is empty for an empty non-terminal.
    """
    apex = _canonical_order(origin)
    types_at: dict[tuple[bytes, ...], list[dns.rdatatype.RdataType]] = {}
    for name_key in keys_in_chain:
        types = [s.rdtype for s in by_key[name_key]]
        if name_key not in cuts or dns.rdatatype.DS in types:
            types.append(dns.rdatatype.RRSIG)
        types_at[name_key] = types
        for size in range(len(apex) + 1, len(name_key)):
            types_at.setdefault(name_key[:size], [])  # an empty non-terminal
    hashed = []
    for name_key, types in types_at.items():
        owner_wire = owner_wires.get(name_key) or _key_wire(name_key)
        digest = hashlib.sha1(owner_wire, usedforsecurity=False).digest()
        hashed.append((digest, types))
    hashed.sort()
    parameters = struct.pack("!BBHB", _NSEC3_SHA1, 0, 0, 0)  # RFC 9276: no iterations or salt
    chain = []
    for index, (digest, types) in enumerate(hashed):
        following = hashed[(index + 1) % len(hashed)][0]
        label = base64.b32hexencode(digest).decode("ascii").lower()
        owner = dns.name.Name((label.encode("ascii"), *origin.labels))
        bitmap = NSEC3Bitmap.from_rdtypes(types)
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.NSEC3)
        rrset.update_ttl(ttl)
        rrset.items[
            NSEC3(  # type: ignore[no-untyped-call]
                dns.rdataclass.IN, dns.rdatatype.NSEC3, _NSEC3_SHA1, 0, 0, b"", following,
                bitmap,
            )
        ] = None
        rdata_wire = parameters + bytes((len(following),)) + following + _bitmap_wire(bitmap)
        chain.append((owner.to_digestable(), rrset, rdata_wire))
    return chain


def _nsec3param_rrset(origin: dns.name.Name) -> dns.rrset.RRset:
    """The NSEC3PARAM at the apex (RFC 5155 §4), TTL 0 as it is read only by the signer."""
    rrset = dns.rrset.RRset(origin, dns.rdataclass.IN, dns.rdatatype.NSEC3PARAM)
    rrset.update_ttl(0)
    rrset.add(
        NSEC3PARAM(  # type: ignore[no-untyped-call]
            dns.rdataclass.IN, dns.rdatatype.NSEC3PARAM, _NSEC3_SHA1, 0, 0, b""
        )
    )
    return rrset


def _bitmap_wire(bitmap: dns.rdtypes.util.Bitmap) -> bytes:
    """The type bitmap field of NSEC and NSEC3 (RFC 4034 §4.1.2)."""
    return b"".join(bytes((window, len(bits))) + bits for window, bits in bitmap.windows)


def _key_wire(name_key: tuple[bytes, ...]) -> bytes:
    """The lower-cased wire form of the name whose canonical sort key is `name_key`."""
    return b"".join(bytes((len(label),)) + label for label in reversed(name_key))


def rrsig_labels(name: dns.name.Name) -> int:
    """The RRSIG Labels field: labels of the owner, not counting the root or a leading `*`.

    RFC 4034 §3.1.3; a validator uses it to recognise a wildcard expansion (RFC 4035 §5.3.2).
    """
    count = len(name.labels) - 1 if name.is_absolute() else len(name.labels)
    if name.labels and name.labels[0] == _WILDCARD:
        count -= 1
    return count


def _rrset_wire(owner_wire: bytes, rrset: dns.rrset.RRset, rdata_wires: Iterable[bytes]) -> bytes:
    """The RRset part of the signed data: its RRs in canonical form and order (RFC 4034 §6.3).

    `owner_wire` is the lower-cased owner, the TTL is the original TTL, and duplicate rdata
    are dropped.
    """
    head = owner_wire + struct.pack("!HHI", rrset.rdtype, rrset.rdclass, rrset.ttl)
    return b"".join(
        head + struct.pack("!H", len(rdata)) + rdata for rdata in sorted(set(rdata_wires))
    )


def _sign(
    rrset: dns.rrset.RRset,
    rrset_wire: bytes,
    key: AnyKey,
    inception: int,
    expiration: int,
    signer: dns.name.Name,
    signer_wire: bytes,
) -> RRSIG:
    """Make the RRSIG rdata: its prefix (RFC 4034 §3.1.8.1) followed by the signed RRset.

    `signer` is the zone apex in lower case and `signer_wire` its wire form.
    """
    labels = rrsig_labels(rrset.name)
    prefix = struct.pack(
        "!HBBIIIH",
        rrset.rdtype,
        key.algorithm,
        labels,
        rrset.ttl,
        expiration,
        inception,
        key.key_tag,
    )
    signature = sign_data(key, prefix + signer_wire + rrset_wire)
    return RRSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.IN,
        dns.rdatatype.RRSIG,
        rrset.rdtype,
        key.algorithm,
        labels,
        rrset.ttl,
        expiration,
        inception,
        key.key_tag,
        signer,
        signature,
    )


def _canonical_order(name: dns.name.Name) -> tuple[bytes, ...]:
    """Sort key for the canonical order of names (RFC 4034 §6.1).

    Labels compared from the root down, each lower-cased and compared as unsigned octets, a
    shorter label first; the same order as comparing dns.name.Name objects, in a fraction of
    the time.
    """
    return tuple(label.lower() for label in reversed(name.labels))


def _wire(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None
    return wire


def name_key(name: dns.name.Name) -> NameKey:
    """The `NameKey` of an absolute name."""
    return tuple(label.lower() for label in reversed(name.labels[:-1]))


def key_wire(key: NameKey) -> bytes:
    """The lower-cased wire form of the name whose `NameKey` is `key`."""
    return b"".join(bytes((len(label),)) + label for label in reversed(key)) + b"\x00"


def signature_time(moment: datetime) -> int:
    """An RRSIG time: seconds since the epoch modulo 2**32 (RFC 4034 §3.1.5, serial arithmetic)."""
    if moment.tzinfo is None:
        raise ValueError("signature times must be timezone-aware")
    return int(moment.timestamp()) % (1 << 32)


def _zone_rrsets(
    zone: dns.zone.Zone | Iterable[dns.rrset.RRset],
) -> tuple[dns.name.Name, list[dns.rrset.RRset]]:
    """The zone's origin and its RRsets with absolute owner names, old DNSSEC records dropped."""
    if isinstance(zone, dns.zone.Zone):
        origin = zone.origin
        assert origin is not None
        rrsets = []
        for relative, node in zone.nodes.items():
            name = relative.derelativize(origin)
            for rdataset in node.rdatasets:
                rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
                rrset.update_ttl(rdataset.ttl)
                if zone.relativize:
                    for rdata in rdataset:
                        rrset.add(_absolute(rdata, origin))
                else:
                    rrset.items = dict(rdataset.items)  # a dict copy keeps the stored hashes
                rrsets.append(rrset)
    else:
        rrsets = list(zone)
        soas = [rrset for rrset in rrsets if rrset.rdtype == dns.rdatatype.SOA]
        if len(soas) != 1:
            raise ValueError("a list of RRsets must hold exactly one SOA, at the zone apex")
        origin = soas[0].name
    return origin, [rrset for rrset in rrsets if rrset.rdtype not in _REBUILT]


def _absolute(rdata: dns.rdata.Rdata, origin: dns.name.Name) -> dns.rdata.Rdata:
    """The rdata with the names inside it made absolute, so the output stands on its own."""
    wire = rdata.to_wire(origin=origin)
    assert wire is not None
    return dns.rdata.from_wire(rdata.rdclass, rdata.rdtype, wire, 0, len(wire))


def _with_dnskeys(
    rrsets: list[dns.rrset.RRset], origin: dns.name.Name, keys: Sequence[AnyKey], ttl: int
) -> list[dns.rrset.RRset]:
    """The RRsets with the signing keys' DNSKEYs added to the apex DNSKEY RRset."""
    existing = _find(rrsets, origin, dns.rdatatype.DNSKEY)
    dnskeys = dns.rrset.RRset(origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    dnskeys.update_ttl(existing.ttl if existing is not None else ttl)
    for rdata in [*(existing or ()), *(key.dnskey for key in keys)]:
        dnskeys.add(rdata)
    return [rrset for rrset in rrsets if rrset is not existing] + [dnskeys]


def _find(
    rrsets: Iterable[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rrset in rrsets:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None
