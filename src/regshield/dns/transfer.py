"""Outgoing zone transfers: who may transfer which zone, and the AXFR and IXFR answers.

regshield is a hidden primary: its secondaries transfer each signed serial over TCP with AXFR
(RFC 5936) or IXFR from the zone's journal (RFC 1995). Every transfer needs a TSIG key
(hmac-sha256) allowed for the zone, optionally from allowed networks too; everything else gets
REFUSED, whatever the reason, so a refusal tells nothing about which zones exist. The DNS
server verifies the TSIG signature before handing the query here; each answer message is
signed in turn, chained as RFC 8945 §5.3.1 requires for a multi-message answer.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset
import dns.tsig
import structlog
from dns.rdtypes.ANY.TSIG import TSIG

from regshield.dns.tsig import is_accepted
from regshield.dns.zonedata import ServedZone, ZoneDiff, ZoneTable
from regshield.rules.zones import serial_gt

log = structlog.get_logger("regshield.dns")

TransferKind = Literal["AXFR", "IXFR"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KeyPolicy = (
    Mapping[dns.name.Name, Collection[dns.name.Name]]
    | Callable[[dns.name.Name], Collection[dns.name.Name]]
)

# Messages are filled up to this size (plus the TSIG record); TCP allows 64 KiB, and smaller
# messages let a secondary start reading the zone before the whole of it has been rendered.
MESSAGE_SIZE = 16 * 1024
# Room kept in a full message for the TSIG record (owner, fixed fields, a SHA-256 MAC).
_TSIG_ROOM = 512
_MAX_MESSAGE = 65535 - _TSIG_ROOM
_TSIG_FIXED = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_FUDGE = 300  # seconds of clock difference a TSIG allows, as dnspython and BIND default
_SOA = dns.rdatatype.SOA


class TransferListener(Protocol):
    """Told of every transfer served, to record what each secondary holds and when it asked."""

    def __call__(self, origin: dns.name.Name, peer: tuple[str, int], key_name: dns.name.Name,
                 kind: TransferKind, serial: int) -> None: ...


class TransferService:
    """Answers AXFR and IXFR queries from the zones in a `ZoneTable`.

    `allowed_keys` gives, for a zone origin, the names of the TSIG keys that may transfer it (a
    mapping or a function). `allowed_networks`, when given, limits transfers to sources in
    those networks as well. `on_transfer` is called once per transfer served, with the serial
    the secondary now holds; `respond` reads only immutable snapshots, so the server may call
    it from a worker thread, and `on_transfer` is then called from that thread.
    """

    def __init__(
        self,
        table: ZoneTable,
        allowed_keys: KeyPolicy,
        *,
        allowed_networks: Collection[Network] | None = None,
        on_transfer: TransferListener | None = None,
        message_size: int = MESSAGE_SIZE,
    ) -> None:
        if not 512 <= message_size <= _MAX_MESSAGE:
            raise ValueError(f"message_size is 512 to {_MAX_MESSAGE}, not {message_size}")
        self._table = table
        self._allowed_keys = allowed_keys
        self._allowed_networks = (
            None if allowed_networks is None else tuple(allowed_networks)
        )
        self._on_transfer = on_transfer
        self._message_size = message_size
        self._rendered: dict[tuple[dns.name.Name, int], tuple[ServedZone, list[bytes]]] = {}
        self._rendering = threading.Lock()

    def respond(self, query: dns.message.Message, peer: tuple[str, int]) -> list[bytes]:
        """The wire messages answering an AXFR or IXFR query received over TCP from `peer`."""
        if len(query.question) != 1:
            return [_error(query, dns.rcode.FORMERR)]
        question = query.question[0]
        kind: TransferKind
        if question.rdtype == dns.rdatatype.AXFR:
            kind = "AXFR"
        elif question.rdtype == dns.rdatatype.IXFR:
            kind = "IXFR"
        else:
            return [_error(query, dns.rcode.NOTIMP)]
        origin = question.name
        zone = self._table.get(origin)
        refusal = self._refusal(query, zone, peer)
        if refusal is not None or zone is None:
            log.warning("transfer_refused", zone=origin.to_text(), peer=peer[0], kind=kind,
                        reason=refusal or "zone not served")
            return [_error(query, dns.rcode.REFUSED)]
        key_name = query.keyname
        assert key_name is not None  # checked by _refusal

        if kind == "IXFR":
            client_serial = _client_serial(query, origin)
            if client_serial is None:
                return [_error(query, dns.rcode.FORMERR)]
            diffs = zone.diffs_since(client_serial)
            if not serial_gt(zone.serial, client_serial):
                # Up to date (or ahead, after a restore): the current SOA alone (RFC 1995 §2).
                unsigned = _render(origin, question.rdtype, (zone.soa,), self._message_size)
            elif diffs is not None and _records(_changes(diffs)) <= _records(zone.rrsets):
                unsigned = _render(origin, question.rdtype, _incremental(zone, diffs),
                                   self._message_size)
            else:
                # The journal does not reach back, or its changes outweigh the zone itself
                # (BIND's default max-ixfr-ratio): the whole zone instead.
                kind = "AXFR"
                unsigned = self._whole(zone, question.rdtype)
        else:
            unsigned = self._whole(zone, question.rdtype)

        messages = _signed(query, unsigned)
        if self._on_transfer is not None:
            self._on_transfer(origin, peer, key_name, kind, zone.serial)
        log.info("transfer_served", zone=origin.to_text(), peer=peer[0], kind=kind,
                 serial=zone.serial, messages=len(messages))
        return messages

    def _whole(self, zone: ServedZone, rdtype: int) -> list[bytes]:
        """The whole zone's messages, unsigned, rendered once per snapshot and kept for the
        next secondary: after a NOTIFY every secondary asks for the same serial at once."""
        cache_key = (zone.origin, rdtype)
        cached = self._rendered.get(cache_key)
        if cached is not None and cached[0] is zone:
            return cached[1]
        with self._rendering:
            cached = self._rendered.get(cache_key)
            if cached is not None and cached[0] is zone:
                return cached[1]
            wires = _render(zone.origin, rdtype, _whole_sequence(zone), self._message_size)
            # Keep only snapshots still served, so a replaced serial's messages are let go.
            self._rendered = {
                other_key: entry for other_key, entry in self._rendered.items()
                if self._table.get(other_key[0]) is entry[0]
            }
            self._rendered[cache_key] = (zone, wires)
            return wires

    def _refusal(self, query: dns.message.Message, zone: ServedZone | None,
                 peer: tuple[str, int]) -> str | None:
        """Why this query may not transfer the zone, or None when it may."""
        if not query.had_tsig or query.keyname is None:
            return "no TSIG"
        key = query.keyring
        # The server sets `keyring` to the key only after verifying the signature with it.
        if not isinstance(key, dns.tsig.Key) or key.name != query.keyname:
            return "TSIG not verified"
        if not is_accepted(key) or query.keyalgorithm != key.algorithm:
            return "TSIG algorithm not accepted"
        if zone is None:
            return "zone not served"
        allowed = (
            self._allowed_keys(zone.origin) if callable(self._allowed_keys)
            else self._allowed_keys.get(zone.origin, ())
        )
        if query.keyname not in allowed:
            return "key not allowed for the zone"
        if self._allowed_networks is not None:
            address = ipaddress.ip_address(peer[0])
            if not any(address in network for network in self._allowed_networks):
                return "source not allowed"
        return None


def _whole_sequence(zone: ServedZone) -> Iterator[dns.rrset.RRset]:
    """The AXFR sequence: the SOA, every other RRset, the SOA again (RFC 5936 §2.2)."""
    soa = zone.soa
    yield soa
    for rrset in zone.rrsets:
        if rrset is not soa:
            yield rrset
    yield soa


def _incremental(zone: ServedZone, diffs: Sequence[ZoneDiff]) -> Iterator[dns.rrset.RRset]:
    """The IXFR sequence (RFC 1995 §4): the new SOA, each difference, the new SOA again.

    Each difference's `removed` starts with its old SOA and `added` with its new SOA.
    """
    soa = zone.soa
    yield soa
    yield from _changes(diffs)
    yield soa


def _changes(diffs: Sequence[ZoneDiff]) -> Iterator[dns.rrset.RRset]:
    for diff in diffs:
        yield from diff.removed
        yield from diff.added


def _records(rrsets: Iterable[dns.rrset.RRset]) -> int:
    return sum(len(rrset) for rrset in rrsets)


def _client_serial(query: dns.message.Message, origin: dns.name.Name) -> int | None:
    """The serial an IXFR query says the client holds: its authority SOA (RFC 1995 §3)."""
    for rrset in query.authority:
        if rrset.rdtype == dns.rdatatype.SOA and rrset.name == origin and len(rrset) == 1:
            serial: int = rrset[0].serial
            return serial
    return None


def _render(origin: dns.name.Name, rdtype: int, records: Iterable[dns.rrset.RRset],
            message_size: int) -> list[bytes]:
    """The records in messages of at most `message_size` bytes, in order, with ID 0 and no TSIG.

    Each RRset is rendered once, straight into its message with name compression; an RRset
    that does not fit in what a message has left starts the next one.
    """
    wires: list[bytes] = []

    def start() -> Any:
        renderer: Any = dns.renderer.Renderer(  # type: ignore[no-untyped-call]
            0, dns.flags.QR | dns.flags.AA, message_size)
        renderer.add_question(origin, rdtype, dns.rdataclass.IN)
        return renderer

    def finish(renderer: Any) -> None:
        renderer.write_header()
        wires.append(renderer.get_wire())

    renderer = start()
    for rrset in records:
        if _added(renderer, rrset):
            continue
        if renderer.counts[dns.renderer.ANSWER]:
            finish(renderer)
            renderer = start()
        if not _added(renderer, rrset):
            # Larger than `message_size`: a message of its own, up to the TCP limit, or when
            # even that is too small, one record at a time.
            renderer.max_size = _MAX_MESSAGE
            if not _added(renderer, rrset):
                for single in _single_records(rrset):
                    if not _added(renderer, single):
                        finish(renderer)
                        renderer = start()
                        renderer.max_size = _MAX_MESSAGE
                        if not _added(renderer, single):
                            raise ValueError(f"a record of {rrset.name} is too large to send")
            finish(renderer)
            renderer = start()
    if renderer.counts[dns.renderer.ANSWER] or not wires:
        finish(renderer)
    return wires


def _signed(query: dns.message.Message, unsigned: Sequence[bytes]) -> list[bytes]:
    """The messages with the query's ID, each TSIG-signed with the query's key and its MAC
    chained to the one before (RFC 8945 §5.3.1)."""
    key = query.keyring
    assert isinstance(key, dns.tsig.Key)
    owner = key.name.to_wire()
    assert owner is not None
    request_mac = query.mac or b""
    query_id = query.id.to_bytes(2, "big")
    context: object = None
    signed: list[bytes] = []
    for wire in unsigned:
        wire = query_id + wire[2:]
        template = TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, 0, _FUDGE, b"", query.id,
            0, b"")
        tsig, context = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, key, template, int(time.time()), request_mac, context, True)
        rdata = tsig.to_wire()
        record = owner + _TSIG_FIXED.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata))
        additional = int.from_bytes(wire[10:12], "big") + 1
        signed.append(wire[:10] + additional.to_bytes(2, "big") + wire[12:] + record + rdata)
    return signed


def _added(renderer: Any, rrset: dns.rrset.RRset) -> bool:
    """Whether `rrset` fit in the message (the renderer takes it back out when it did not)."""
    try:
        renderer.add_rrset(dns.renderer.ANSWER, rrset)
    except dns.exception.TooBig:
        return False
    return True


def _single_records(rrset: dns.rrset.RRset) -> Iterator[dns.rrset.RRset]:
    for rdata in rrset:
        single = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
        single.update_ttl(rrset.ttl)
        single.add(rdata)
        yield single


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    """A one-message error answer, signed when the query carried a verified TSIG."""
    message = dns.message.Message(id=query.id)
    message.flags = dns.flags.QR
    message.question = list(query.question)
    message.set_rcode(rcode)
    if query.had_tsig and isinstance(query.keyring, dns.tsig.Key):
        message.use_tsig(query.keyring, original_id=query.id)
        message.request_mac = query.mac or b""
    return message.to_wire()


def diff_zones(old: ServedZone, new: ServedZone) -> ZoneDiff:
    """The journal entry from `old` to `new`: the records removed and added, record by record.

    An RRset whose TTL changed is removed whole and added whole, since IXFR carries no TTL
    change of its own.
    """
    removed: list[dns.rrset.RRset] = [old.soa]
    added: list[dns.rrset.RRset] = [new.soa]
    old_sets = {_identity(rrset): rrset for rrset in old.rrsets if rrset.rdtype != _SOA}
    new_sets = {_identity(rrset): rrset for rrset in new.rrsets if rrset.rdtype != _SOA}
    for identity, before in old_sets.items():
        after = new_sets.get(identity)
        if after is None or after.ttl != before.ttl:
            removed.append(before)
        elif gone := _without(before, after):
            removed.append(gone)
    for identity, after in new_sets.items():
        previous = old_sets.get(identity)
        if previous is None or after.ttl != previous.ttl:
            added.append(after)
        elif new_records := _without(after, previous):
            added.append(new_records)
    return ZoneDiff(old.serial, new.serial, tuple(removed), tuple(added))


def _identity(rrset: dns.rrset.RRset) -> tuple[dns.name.Name, int, int]:
    return rrset.name, rrset.rdtype, rrset.covers


def _without(rrset: dns.rrset.RRset, other: dns.rrset.RRset) -> dns.rrset.RRset | None:
    """The records of `rrset` that `other` lacks, as an RRset, or None when there are none."""
    missing = [rdata for rdata in rrset if rdata not in other]
    if not missing:
        return None
    return dns.rrset.from_rdata_list(rrset.name, rrset.ttl, missing)
