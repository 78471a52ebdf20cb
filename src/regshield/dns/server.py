"""The embedded authoritative DNS server: UDP and TCP on one port, answering from a `ZoneTable`.

Ordinary queries take a fast path: the header, question and OPT record are read by hand and
the response wire is looked up in a cache keyed by (question name case-folded, type and class
as sent, EDNS, DO) and tied to the zone snapshot it was built from; only the ID and the RD/CD
bits are patched in. Anything else
(TSIG, odd sections, other opcodes, meta types) goes through dnspython.

What the server decides, beyond `answers.ZoneIndex`:
- names outside every zone: REFUSED; classes other than IN: REFUSED; no recursion (RA off);
- EDNS(0): OPT in the response only when the query had one, our UDP size 1232, the client's
  size honoured (512 at least), TC=1 with only the question when the answer does not fit;
  EDNS version above 0: BADVERS;
- malformed: FORMERR when the 12-byte header could be read, silence otherwise; QDCOUNT other
  than 1: FORMERR; a message with QR set is never answered (no reflection loops);
- TSIG (RFC 8945): a bad or unknown key gets NOTAUTH with the TSIG error (BADKEY, BADSIG,
  BADTIME) in an unsigned TSIG record; a good one gets a signed response;
- AXFR and IXFR over TCP go to the `TransferHandler` (REFUSED without one); over UDP, AXFR is
  FORMERR (as BIND answers) and IXFR gets the current SOA alone (RFC 1995 §2);
- NOTIFY: REFUSED (this server is a primary only); other opcodes: NOTIMP;
- UDP responses pass the rate limiter when one is given; TCP is never limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import structlog

from regshield.dns.answers import Answer, ZoneIndex
from regshield.dns.rrl import RateLimiter, Verdict
from regshield.dns.zonedata import ServedZone, ZoneTable

log = structlog.get_logger("regshield.dns")

OUR_UDP_PAYLOAD = 1232  # the DNS flag day 2020 size: no fragmentation on common paths
MINIMUM_UDP_PAYLOAD = 512
TCP_IDLE_SECONDS = 10.0
MAX_TCP_CLIENTS = 256
ANSWER_CACHE_SIZE = 100_000
UDP_BUFFER_BYTES = 4 << 20  # absorbs a few hundred ms of flood while the process is not scheduled
UDP_BATCH = 256  # datagrams answered before other tasks (TCP clients) get their turn

_HEADER = struct.Struct("!HBBHHHH")
_COUNTS = struct.Struct("!HHHH")
_TYPE_CLASS = struct.Struct("!HH")
_OPT_FIXED = struct.Struct("!BHHBBHH")  # root name, type, payload, ext-rcode, version, flags, rdlen
_QR = 0x80
_RD = 0x01
_CD = 0x10
_OPCODE_MASK = 0x78
_DO = 0x8000
_TRANSFER_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
_TSIG_ERRORS: tuple[tuple[type[Exception], int], ...] = (
    (dns.message.UnknownTSIGKey, dns.rcode.BADKEY),
    (dns.tsig.BadKey, dns.rcode.BADKEY),
    (dns.tsig.BadAlgorithm, dns.rcode.BADKEY),
    (dns.tsig.BadSignature, dns.rcode.BADSIG),
    (dns.tsig.BadTime, dns.rcode.BADTIME),
)


class TransferHandler(Protocol):
    """Answers AXFR and IXFR queries (received over TCP, TSIG already checked)."""

    def respond(self, query: dns.message.Message, peer: tuple[str, int]) -> list[bytes]: ...


@dataclass(frozen=True)
class _Question:
    """What the fast path reads from a plain query."""

    end: int  # offset just past the question section
    qtype: int
    edns: bool
    dnssec: bool
    payload: int


@dataclass
class _CachedResponse:
    zone: ServedZone
    zones_served: int
    wire: bytes  # ID zero, RD and CD clear
    truncated: bytes | None = None


class DnsServer:
    """An authoritative server for the zones in `table`, over UDP and TCP on one port.

    `keyring` (TSIG key name -> key) is read on every signed query, so keys added to or removed
    from the dict take effect at once. The table is read on every query, and answers built from
    a snapshot are used only while that snapshot is the one served.
    """

    def __init__(
        self,
        table: ZoneTable,
        *,
        keyring: dict[dns.name.Name, dns.tsig.Key] | None = None,
        transfers: TransferHandler | None = None,
        rrl: RateLimiter | None = None,
        answer_cache_size: int = ANSWER_CACHE_SIZE,
    ) -> None:
        self.table = table
        self.keyring = keyring if keyring is not None else {}
        self.transfers = transfers
        self.rrl = rrl
        self.port = 0
        self._cache: dict[bytes, _CachedResponse] = {}
        self._cache_size = answer_cache_size
        self._indexes: dict[dns.name.Name, ZoneIndex] = {}
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Bind UDP and TCP on `host`:`port`; port 0 picks a port free for both (`.port`).

        With `reuse_port`, other processes may bind the same port (SO_REUSEPORT, every one of
        them asking for it) and the kernel spreads datagrams and connections over them.
        """
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        )[0]
        attempts = 20 if port == 0 else 1
        for attempt in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.setblocking(False)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER_BYTES)
            try:
                if reuse_port:
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                udp.bind(address)
                udp_port = udp.getsockname()[1]
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, host, udp_port, reuse_address=True,
                    reuse_port=reuse_port or None,
                )
            except OSError:
                udp.close()
                if attempt == attempts - 1:
                    raise
                continue
            self._udp = udp
            self.port = udp_port
            loop.add_reader(udp.fileno(), self._read_udp)
            return

    async def close(self) -> None:
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._tcp_tasks):
                task.cancel()
            await asyncio.gather(*self._tcp_tasks, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    # -- transports ------------------------------------------------------------------------

    def _read_udp(self) -> None:
        """Answer the datagrams waiting on the UDP socket, a bounded batch per wake-up.

        Reading the socket directly spares the per-datagram protocol callbacks of asyncio's
        datagram transport; a response that finds the send buffer full is dropped, as UDP may.
        """
        sock = self._udp
        if sock is None:
            return
        for _ in range(UDP_BATCH):
            try:
                wire, address = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error for an earlier response: nothing to read
            response = self.answer_udp(wire, (address[0], address[1]))
            if response is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(response, address)

    def answer_udp(self, wire: bytes, peer: tuple[str, int]) -> bytes | None:
        """The UDP response to `wire` from `peer`, after rate limiting; None to stay silent."""
        if self.rrl is None:
            return self._respond(wire, udp=True)
        if len(wire) < 12 or wire[2] & _QR:
            return None
        # Decided before answering, so a flood that is dropped costs no answer building.
        verdict = self.rrl.check(peer[0])
        if verdict is Verdict.DROP:
            return None
        response = self._respond(wire, udp=True)
        if response is None or verdict is Verdict.SEND:
            return response
        return _truncate_to_header(response)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tcp_tasks) >= MAX_TCP_CLIENTS:
            writer.close()
            return
        self._tcp_tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    size_wire = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                    (size,) = struct.unpack("!H", size_wire)
                    wire = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_SECONDS)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                transfer = await self._transfer(wire, (peer[0], peer[1]))
                responses = (
                    transfer if transfer is not None
                    else [self._respond(wire, udp=False)]
                )
                for response in responses:
                    if response is not None:
                        writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._tcp_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _transfer(self, wire: bytes, peer: tuple[str, int]) -> list[bytes] | None:
        """The messages of a zone transfer, or None when `wire` is not a good transfer query."""
        if wire[2:3] and wire[2] & (_QR | _OPCODE_MASK):
            return None
        if _question_type(wire) not in _TRANSFER_TYPES:
            return None
        try:
            query = dns.message.from_wire(wire, keyring=self.keyring)
        except Exception:
            return None  # the ordinary path gives FORMERR or NOTAUTH
        if (len(query.question) != 1 or query.question[0].rdtype not in _TRANSFER_TYPES
                or query.question[0].rdclass != dns.rdataclass.IN):
            return None
        if self.transfers is None:
            return [_finish(_make_response(query), dns.rcode.REFUSED)]
        try:
            # In a worker thread: rendering a large zone must not hold up UDP answers.
            return await asyncio.to_thread(self.transfers.respond, query, peer)
        except Exception as error:
            log.exception("dns:transfer:failed", error_type=type(error).__name__)
            return [_finish(_make_response(query), dns.rcode.SERVFAIL)]

    # -- answering -------------------------------------------------------------------------

    def _respond(self, wire: bytes, *, udp: bool) -> bytes | None:
        try:
            question = _read_plain_query(wire)
            if question is not None:
                return self._respond_plain(wire, question, udp)
            return self._respond_general(wire, udp)
        except Exception as error:
            log.exception("dns:query:failed", error_type=type(error).__name__)
            return _header_only(wire, dns.rcode.SERVFAIL)

    def _respond_plain(self, wire: bytes, question: _Question, udp: bool) -> bytes | None:
        key = _answer_key(wire, question)
        cached = self._cache.get(key)
        if cached is not None:
            zone = self.table.get(cached.zone.origin)
            if zone is not cached.zone or len(self.table) != cached.zones_served:
                cached = None
        if cached is None:
            qname = dns.name.from_wire(wire, 12)[0]
            zone = self._zone_for(qname, question.qtype)
            if zone is None:
                return self._respond_general(wire, udp)
            message = dns.message.Message(id=0)
            message.flags = dns.flags.Flag(dns.flags.QR)
            message.question = [
                dns.rrset.RRset(
                    qname, dns.rdataclass.IN, dns.rdatatype.RdataType.make(question.qtype)
                )
            ]
            if question.edns:
                message.use_edns(
                    0, dns.flags.DO if question.dnssec else 0, OUR_UDP_PAYLOAD
                )
            answer = self._index(zone).lookup(qname, question.qtype, question.dnssec)
            cached = _CachedResponse(zone, len(self.table), _finish(message, answer))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = cached
        response = cached.wire
        if udp and len(response) > _udp_limit(question):
            if cached.truncated is None:
                cached.truncated = _truncate_to_header(response)
            response = cached.truncated
        return b"".join((
            wire[:2],
            bytes((response[2] | (wire[2] & _RD), response[3] | (wire[3] & _CD))),
            response[4:12],
            wire[12:question.end],
            response[question.end:],
        ))

    def _respond_general(self, wire: bytes, udp: bool) -> bytes | None:
        if len(wire) < 12 or wire[2] & _QR:
            return None
        try:
            query = dns.message.from_wire(wire, keyring=self.keyring)
        except dns.message.ShortHeader:
            return None
        except Exception as error:
            tsig_error = _tsig_error(error)
            if tsig_error is None:
                return _header_only(wire, dns.rcode.FORMERR)
            return _tsig_refusal(wire, tsig_error)
        opcode = query.opcode()
        if opcode == dns.opcode.NOTIFY:
            return _finish(_make_response(query), dns.rcode.REFUSED)
        if opcode != dns.opcode.QUERY:
            return _finish(_make_response(query), dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return _header_only(wire, dns.rcode.FORMERR)
        if query.edns > 0:
            return _finish(_make_response(query), dns.rcode.BADVERS)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            return _finish(_make_response(query), dns.rcode.REFUSED)
        qtype = question.rdtype
        zone = self._zone_for(question.name, qtype)
        if zone is None:
            return _finish(_make_response(query), dns.rcode.REFUSED)
        response = _make_response(query)
        dnssec = bool(query.ednsflags & dns.flags.DO)
        if qtype == dns.rdatatype.AXFR:
            return _finish(response, dns.rcode.FORMERR)
        if qtype == dns.rdatatype.IXFR:
            answer = Answer(dns.rcode.NOERROR, True, (zone.soa,))
        else:
            answer = self._index(zone).lookup(question.name, qtype, dnssec)
        full = _finish(response, answer)
        limit = max(MINIMUM_UDP_PAYLOAD, min(query.payload, OUR_UDP_PAYLOAD)) \
            if query.edns >= 0 else MINIMUM_UDP_PAYLOAD
        if udp and len(full) > limit:
            response = _make_response(query)
            response.flags |= dns.flags.TC
            return _finish(response, answer.rcode)
        return full

    def _zone_for(self, qname: dns.name.Name, qtype: int) -> ServedZone | None:
        """The zone that answers: the closest one, but the parent for a DS at a child's apex."""
        zone = self.table.closest(qname)
        if (zone is not None and qtype == dns.rdatatype.DS and qname == zone.origin
                and qname != dns.name.root):
            # RFC 4035 §3.1.4.1: the DS belongs to the parent side of the delegation.
            return self.table.closest(qname.parent()) or zone
        return zone

    def _index(self, zone: ServedZone) -> ZoneIndex:
        index = self._indexes.get(zone.origin)
        if index is None or index.zone is not zone:
            if index is not None:
                self._forget(index.zone)
            if len(self._indexes) > len(self.table):
                for origin, stale in list(self._indexes.items()):
                    if self.table.get(origin) is not stale.zone:
                        self._forget(stale.zone)
                        del self._indexes[origin]
            index = self._indexes[zone.origin] = ZoneIndex(zone)
        return index

    def _forget(self, zone: ServedZone) -> None:
        """Drop the cached answers of a snapshot no longer served, so it can be freed."""
        self._cache = {key: cached for key, cached in self._cache.items()
                       if cached.zone is not zone}


def _read_plain_query(wire: bytes) -> _Question | None:
    """The question of a plain IN query with at most an OPT record, or None for the slow path."""
    size = len(wire)
    if size < 17:
        return None
    _, flags, _, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & (_QR | _OPCODE_MASK) or qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    position = _question_name_end(wire)
    if position is None:
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(wire, position)
    end = position + 4
    if qclass != dns.rdataclass.IN or qtype in _TRANSFER_TYPES or qtype >= 128:
        return None  # REFUSED, transfers and meta types: the general path
    if arcount == 0:
        if end != size:
            return None
        return _Question(end, qtype, False, False, MINIMUM_UDP_PAYLOAD)
    if end + 11 > size:
        return None
    root, rdtype, payload, _, version, ednsflags, rdlen = _OPT_FIXED.unpack_from(wire, end)
    if root != 0 or rdtype != dns.rdatatype.OPT or version != 0 or end + 11 + rdlen != size:
        return None
    return _Question(end, qtype, True, bool(ednsflags & _DO), payload)


def _answer_key(wire: bytes, question: _Question) -> bytes:
    """The answer cache key of a plain query: its question, the name case-folded, and the
    EDNS and DO bits.

    Only the name is folded (names compare case-insensitively, RFC 4343): the type and class
    bytes are numbers, and folding them made TYPE97 share the cached answer of HTTPS (65). The
    name's length octets are 63 at most (`_question_name_end`), below every ASCII capital, so
    `bytes.lower` changes label content only.
    """
    name_end = question.end - 4
    return b"".join((wire[12:name_end].lower(), wire[name_end:question.end],
                     bytes((question.edns, question.dnssec))))


def _question_name_end(wire: bytes) -> int | None:
    """The offset past an uncompressed question name at offset 12 with room for its type."""
    size = len(wire)
    position = 12
    while True:
        if position >= size:
            return None
        length = wire[position]
        if length == 0:
            position += 1
            break
        if length > 63:
            return None
        position += length + 1
    if position - 12 > 255 or position + 4 > size:
        return None
    return position


def _question_type(wire: bytes) -> int | None:
    position = _question_name_end(wire)
    return None if position is None else int(_TYPE_CLASS.unpack_from(wire, position)[0])


def _udp_limit(question: _Question) -> int:
    if not question.edns:
        return MINIMUM_UDP_PAYLOAD
    return max(MINIMUM_UDP_PAYLOAD, min(question.payload, OUR_UDP_PAYLOAD))


def _make_response(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query, our_payload=OUR_UDP_PAYLOAD)
    response.flags |= query.flags & dns.flags.CD
    if query.edns >= 0:
        response.use_edns(0, query.ednsflags & dns.flags.DO, OUR_UDP_PAYLOAD)
    return response


def _finish(response: dns.message.Message, answer: Answer | int) -> bytes:
    """Fill `response` with `answer` (or just an rcode) and render it."""
    if isinstance(answer, int):
        response.set_rcode(dns.rcode.Rcode.make(answer))
    else:
        response.set_rcode(dns.rcode.Rcode.make(answer.rcode))
        if answer.authoritative:
            response.flags |= dns.flags.AA
        response.answer = list(answer.answer)
        response.authority = list(answer.authority)
        response.additional = list(answer.additional)
    return response.to_wire(max_size=65535)


def _truncate_to_header(response: bytes) -> bytes:
    """The response cut to its header, question and OPT record, with TC set.

    Used when the answer does not fit in the client's UDP size and for RRL slips; the client
    retries over TCP. The question is the one the response started with.
    """
    _, _, _, qdcount, _, _, arcount = _HEADER.unpack_from(response)
    position = 12
    for _ in range(qdcount):
        while response[position] != 0:
            if response[position] >= 0xC0:
                position += 1
                break
            position += response[position] + 1
        position += 5
    question_end = position
    opt = b""
    # The OPT record, when there is one, is the last record of a response built here.
    if arcount and response[-11:-10] == b"\x00" and response[-10:-8] == b"\x00\x29":
        opt = response[-11:]
    header = bytearray(response[:12])
    header[2] |= 0x02  # TC
    _COUNTS.pack_into(header, 4, qdcount, 0, 0, 1 if opt else 0)
    return bytes(header) + response[12:question_end] + opt


def _header_only(wire: bytes, rcode: int) -> bytes | None:
    """A response of a bare header: for queries whose sections could not be read."""
    if len(wire) < 12 or wire[2] & _QR:
        return None
    flags = (wire[2] & (_OPCODE_MASK | _RD)) | _QR
    return wire[:2] + bytes((flags, rcode & 0x0F)) + bytes(8)


def _tsig_error(error: Exception) -> int | None:
    for kind, code in _TSIG_ERRORS:
        if isinstance(error, kind):
            return code
    return None


def _tsig_refusal(wire: bytes, tsig_error: int) -> bytes | None:
    """NOTAUTH with an unsigned TSIG record carrying `tsig_error` (RFC 8945 §5.2)."""
    try:
        query = dns.message.from_wire(wire, keyring=_read_tsig_without_checking)
    except Exception:
        return _header_only(wire, dns.rcode.FORMERR)
    if query.tsig is None:
        return _header_only(wire, dns.rcode.FORMERR)
    request_tsig = query.tsig[0]
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NOTAUTH)
    if query.edns >= 0:
        response.use_edns(0, 0, OUR_UDP_PAYLOAD)
    body = bytearray(response.to_wire())
    record = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, request_tsig.algorithm,
        request_tsig.time_signed, request_tsig.fudge, b"", query.id, tsig_error, b"",
    )
    rdata = record.to_wire()
    owner = query.tsig.name.to_wire()
    assert rdata is not None and owner is not None
    body += owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata))
    body += rdata
    arcount = struct.unpack_from("!H", body, 10)[0]
    struct.pack_into("!H", body, 10, arcount + 1)
    return bytes(body)


def _read_tsig_without_checking(message: dns.message.Message, name: dns.name.Name) -> bool:
    """A keyring that makes dnspython read a TSIG record without verifying it."""
    return False

