"""The embedded authoritative DNS server: UDP and TCP on one port, answering from a `ZoneTable`.

Ordinary queries take a fast path: the header, question and OPT record are read by hand and
the response wire is looked up in a cache keyed by (question name case-folded, type and class
as sent, EDNS, DO) and tied to the zone snapshot it was built from; only the ID and the RD/CD
bits are patched in. A question that gets no data (NXDOMAIN, NODATA, a referral) is answered
from its proof (`denial.py`): the sections are rendered once per proof and put after the
query's own question, so names never asked before cost no lookup and no cache entry of their
own. Anything else (TSIG, odd sections, other opcodes, meta types) goes through dnspython.

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
- UDP responses pass the rate limiter when one is given; TCP is never limited;
- TCP: at most `max_tcp_clients` connections, `tcp_connections_per_source` of them from one
  address (more are closed at once); when every slot is taken, a new connection closes the
  one idle the longest, so idle sockets cannot lock everyone out.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Container
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

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
from regshield.dns.denial import DenialIndex, Proof, label_starts
from regshield.dns.rrl import RateLimiter, Verdict
from regshield.dns.udp import native
from regshield.dns.zonedata import ServedZone, ZoneTable

if TYPE_CHECKING:
    from regshield.dns import _udp

log = structlog.get_logger("regshield.dns")

OUR_UDP_PAYLOAD = 1232  # the DNS flag day 2020 size: no fragmentation on common paths
MINIMUM_UDP_PAYLOAD = 512
TCP_IDLE_SECONDS = 10.0
MAX_TCP_CLIENTS = 256
TCP_CONNECTIONS_PER_SOURCE = 16  # one address cannot hold every slot
ANSWER_CACHE_SIZE = 100_000
UDP_BUFFER_BYTES = 4 << 20  # absorbs a few hundred ms of flood while the process is not scheduled
UDP_BATCH = 256  # datagrams answered before other tasks (TCP clients) get their turn
NATIVE_UDP_BATCH = 1024  # the same for the C loop, about a microsecond each

_HEADER = struct.Struct("!HBBHHHH")
_COUNTS = struct.Struct("!HHHH")
_TYPE_CLASS = struct.Struct("!HH")
_OPT_FIXED = struct.Struct("!BHHBBHH")  # root name, type, payload, ext-rcode, version, flags, rdlen
_QR = 0x80
_TC = 0x02
_RD = 0x01
_CD = 0x10
_OPCODE_MASK = 0x78
_DO = 0x8000
_TRANSFER_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
_COUNTS_FLAGS = struct.Struct("!HHHHH")
_NATIVE_POINTER = struct.Struct("!HHH")
_OPT_DO = b"\0" + struct.pack("!HHIH", dns.rdatatype.OPT, 1232, dns.flags.DO, 0)
_EDNS_KEYS = (b"\0\0", b"\1\0", b"\1\1")  # by EDNS + DO (DO only comes with EDNS)
_LOADING = object()  # in `DnsServer._origins`: a zone being read at start (SERVFAIL)
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


@dataclass(slots=True)
class _Question:
    """What the fast path reads from a plain query."""

    end: int  # offset just past the question section
    qtype: int
    edns: bool
    dnssec: bool
    payload: int


@dataclass(slots=True)
class _CachedResponse:
    zone: ServedZone
    generation: int  # of the table when the zone was last seen answering this question
    wire: bytes  # ID zero, RD and CD clear
    truncated: bytes | None = None
    # What follows the question in `wire` and in `truncated`, cut once.
    tail: bytes | None = None
    truncated_tail: bytes = b""


_NO_RESPONSE = 16  # the index counting queries left unanswered (dropped, or not DNS)


@dataclass
class DnsCounters:
    """What the server did since it started, for metrics: responses by rcode (the header's
    four bits; index 16 counts queries that got none) per transport, and TCP connections
    closed by the server by reason."""

    udp: list[int] = field(default_factory=lambda: [0] * (_NO_RESPONSE + 1))
    tcp: list[int] = field(default_factory=lambda: [0] * (_NO_RESPONSE + 1))
    tcp_closed: dict[str, int] = field(default_factory=lambda: {
        "per_source_limit": 0, "no_slot": 0, "idle_evicted": 0})

    def by_rcode(self, transport: str) -> dict[str, int]:
        """The responses over `transport` ("udp", "tcp") by rcode name, "none" for no response;
        rcodes never sent are left out."""
        return _by_rcode(self.udp if transport == "udp" else self.tcp)


@dataclass
class DnsFigures:
    """What one or more servers counted, for GET /metrics: as DnsCounters, with the answer
    cache's figures and the RRL actions; plain data, so a worker process can report it."""

    udp: list[int] = field(default_factory=lambda: [0] * (_NO_RESPONSE + 1))
    tcp: list[int] = field(default_factory=lambda: [0] * (_NO_RESPONSE + 1))
    tcp_closed: dict[str, int] = field(default_factory=lambda: {
        "per_source_limit": 0, "no_slot": 0, "idle_evicted": 0})
    cache_hits: int = 0
    cache_misses: int = 0
    cache_entries: int = 0
    rrl: dict[str, int] = field(default_factory=lambda: {
        "answered": 0, "slipped": 0, "dropped": 0})

    def add(self, other: DnsFigures) -> None:
        for mine, theirs in ((self.udp, other.udp), (self.tcp, other.tcp)):
            for code, count in enumerate(theirs[:len(mine)]):
                mine[code] += count
        for counts, more in ((self.tcp_closed, other.tcp_closed), (self.rrl, other.rrl)):
            for key in counts:
                counts[key] += int(more.get(key, 0))
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
        self.cache_entries += other.cache_entries

    def by_rcode(self, transport: str) -> dict[str, int]:
        """As `DnsCounters.by_rcode`."""
        return _by_rcode(self.udp if transport == "udp" else self.tcp)

    @classmethod
    def of_report(cls, report: dict[str, Any]) -> DnsFigures:
        """From a worker's JSON report (`dataclasses.asdict` of one), read as numbers."""
        def counts(key: str) -> list[int]:
            values = [int(value) for value in report.get(key, [])][:_NO_RESPONSE + 1]
            return values + [0] * (_NO_RESPONSE + 1 - len(values))

        figures = cls(udp=counts("udp"), tcp=counts("tcp"),
                      cache_hits=int(report.get("cache_hits", 0)),
                      cache_misses=int(report.get("cache_misses", 0)),
                      cache_entries=int(report.get("cache_entries", 0)))
        for mine, key in ((figures.tcp_closed, "tcp_closed"), (figures.rrl, "rrl")):
            theirs = report.get(key, {})
            for name in mine:
                mine[name] = int(theirs.get(name, 0))
        return figures


def _by_rcode(counts: list[int]) -> dict[str, int]:
    return {_rcode_name(code): count for code, count in enumerate(counts) if count}


def _rcode_name(code: int) -> str:
    if code == _NO_RESPONSE:
        return "none"
    try:
        return dns.rcode.to_text(dns.rcode.Rcode(code))
    except ValueError:
        return str(code)


@dataclass(slots=True)
class _TcpClient:
    writer: asyncio.StreamWriter
    idle_since: float | None  # loop time since it waits for a query; None while answering


class _RenderedDenial:
    """The sections of one proof, rendered once against the proof's template name.

    `head` is the response header from the flags on (RD and CD clear), None when the proof
    could not be rendered for reuse (its questions then take the general path). The sections'
    compression pointers may point into the question (at the template name and above) or
    into the sections themselves: for a question `delta` octets longer than the template,
    each moves by `delta`, which `sections` applies.
    """

    __slots__ = ("_last_delta", "_last_sections", "_native", "_pointers", "_segments",
                 "compressible", "head", "opt", "template_length", "truncated_head", "zone")

    def __init__(self, zone: ServedZone, template_length: int = 0, head: bytes | None = None,
                 truncated_head: bytes = b"", opt: bytes = b"",
                 compressible: Container[bytes] = frozenset(), sections: bytes = b"",
                 pointers: tuple[int, ...] = ()) -> None:
        self.zone = zone
        self.template_length = template_length
        self.head = head
        self.truncated_head = truncated_head
        self.opt = opt
        self.compressible = compressible
        starts = (0, *(pointer + 2 for pointer in pointers))
        ends = (*pointers, len(sections))
        self._segments = tuple(sections[start:end] for start, end in zip(starts, ends,
                                                                         strict=True))
        self._pointers = tuple(int.from_bytes(sections[at:at + 2]) for at in pointers)
        self._last_delta = 0
        self._last_sections = sections
        self._native: tuple[object, ...] | None = None

    @classmethod
    def of_fragments(cls, zone: ServedZone, template: bytes, fragments: list[_Fragment],
                     proof: Proof, also_compressible: Container[bytes]) -> _RenderedDenial:
        """The negative answer (with DO) made of `fragments`, for reuse like a rendered one."""
        name_end = 12 + len(template)
        at = name_end + 4
        sections: list[bytes] = []
        pointers: list[int] = []
        records = 0
        for fragment in fragments:
            offset = at - name_end - 4
            pointers += (offset + position for position in fragment.pointer_offsets)
            sections += fragment.placed(at, name_end)
            at += len(fragment.data)
            records += fragment.records
        rcode = 3 if proof.key[0] == "nxdomain" else 0  # NXDOMAIN or NOERROR
        return cls(zone, len(template), _COUNTS_FLAGS.pack(0x8400 | rcode, 1, 0, records, 1),
                   truncated_head=_COUNTS_FLAGS.pack(0x8600 | rcode, 1, 0, 0, 1), opt=_OPT_DO,
                   compressible=_Either(fragments[0].compressible, also_compressible),
                   sections=b"".join(sections) + _OPT_DO, pointers=tuple(sorted(pointers)))

    def native(self) -> tuple[object, ...] | None:
        """The sections as the C loop reads a proof (`_udp.NsecDenial`), or None when they
        are not for reuse."""
        if self.head is None or not isinstance(self.compressible, frozenset):
            return None
        if self._native is None:
            self._native = (self.head, self.truncated_head, self.opt, self.template_length,
                            self._segments, b"".join(pointer.to_bytes(2)
                                                     for pointer in self._pointers),
                            self.compressible)
        return self._native

    def sections(self, delta: int) -> bytes:
        """The sections after a question name `delta` octets longer than the template's."""
        if delta == self._last_delta:
            return self._last_sections
        parts = [self._segments[0]]
        for pointer, segment in zip(self._pointers, self._segments[1:], strict=True):
            parts += ((pointer + delta).to_bytes(2), segment)
        sections = b"".join(parts)
        self._last_delta, self._last_sections = delta, sections
        return sections


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
        max_tcp_clients: int = MAX_TCP_CLIENTS,
        tcp_connections_per_source: int = TCP_CONNECTIONS_PER_SOURCE,
        native_loop: bool = True,
    ) -> None:
        self.table = table
        self.keyring = keyring if keyring is not None else {}
        self.transfers = transfers
        self.rrl = rrl
        self.port = 0
        self._cache: dict[bytes, _CachedResponse] = {}
        self._denials: dict[tuple[object, ...], _RenderedDenial] = {}
        self._cache_size = answer_cache_size
        self._indexes: dict[bytes, ZoneIndex] = {}
        # By lowercased wire origin; a Name: deferred (read at its first question); _LOADING.
        self._origins: dict[bytes, Any] = {}
        self._origins_generation = -1
        # Answer keys of questions refused (no zone here) in the table's current generation:
        # refusing again from the key is a cache hit, as it is for the C loop (`_refuse`).
        self._refusals: set[bytes] = set()
        self._refusals_generation = -1
        self.cache_hits = 0
        self.native_hits = 0  # of those, answered by the C loop
        self.native_denials = 0  # of those, NSEC3 denials the C loop put together
        self.cache_misses = 0
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self.max_tcp_clients = max_tcp_clients
        self.tcp_connections_per_source = tcp_connections_per_source
        self._tcp_clients: dict[asyncio.Task[None], _TcpClient] = {}  # holding a slot
        self._tcp_per_source: dict[str, int] = {}
        self.counters = DnsCounters()
        # The C loop (dns/udp.py), where it was built and can share the limiter's buckets:
        # it answers from `_answers` (answer key -> a response to that question; the loop puts
        # in the query's ID, RD, CD and question), which holds only responses built from the
        # table's current generation (`_remember`).
        self._native_loop = native_loop and native is not None and (
            rrl is None or (rrl.native is not None and rrl.monotonic))
        self._responder: _udp.Responder | None = None
        self._answers: dict[bytes, bytes] = {}
        self._asked_once: dict[bytes, bool] = {}  # denials asked once since the last clear
        self._answers_generation = -1
        # For the C loop's own denials: every served zone's origin (lowercased wire) -> its
        # `_udp.Nsec3Denial` or `_udp.NsecDenial`, or None where the loop leaves denials to
        # Python. Filled as Python denies names (`_lend_frame`, `_lend_proof`), emptied with
        # `_answers`.
        self._native_zones: dict[bytes, _udp.Nsec3Denial | _udp.NsecDenial | None] = {}

    def figures(self) -> DnsFigures:
        """This server's counters now."""
        rrl = self.rrl.counters if self.rrl is not None else None
        return DnsFigures(
            udp=list(self.counters.udp), tcp=list(self.counters.tcp),
            tcp_closed=dict(self.counters.tcp_closed), cache_hits=self.cache_hits,
            cache_misses=self.cache_misses, cache_entries=self.answer_cache_size,
            rrl={"answered": rrl.answered, "slipped": rrl.slipped, "dropped": rrl.dropped}
            if rrl is not None else {"answered": 0, "slipped": 0, "dropped": 0})

    @property
    def answer_cache_size(self) -> int:
        """Responses kept: per question (data) and per proof (denials, referrals), and those
        the C loop answers from."""
        return len(self._cache) + len(self._denials) + len(self._answers)

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
            if self._native_loop:
                self._responder = native.Responder(
                    udp.fileno(), self._answers,
                    self.rrl.native if self.rrl is not None else None, self._native_zones)
                loop.add_reader(udp.fileno(), self._read_udp_native)
            else:
                loop.add_reader(udp.fileno(), self._read_udp)
            return

    async def close(self) -> None:
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
            self._responder = None
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
            response = self.answer_udp(wire, address)
            if response is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(response, address)

    def _read_udp_native(self) -> None:
        """`_read_udp` with the C loop: it answers what it can and hands back the rest (a
        datagram RRL drops never comes back); their responses go back to it to send."""
        responder = self._responder
        if responder is None:
            return
        if self._answers_generation != self.table.generation:
            self._answers.clear()
            self._asked_once.clear()
            self._native_zones.clear()
            self._answers_generation = self.table.generation
        respond = self._respond
        try:
            left = responder.run(NATIVE_UDP_BATCH)
            if left:
                responses = [respond(item, udp=True) if item.__class__ is bytes
                             else self._respond_read(*item) for item in left]
                for index in responder.slipped():
                    response = responses[index]
                    if response is not None:
                        responses[index] = _truncate_to_header(response)
                responder.send(responses)
        finally:
            *by_rcode, hits, denials = responder.take_counts()
            udp = self.counters.udp
            for code, count in enumerate(by_rcode):
                udp[code] += count
            self.cache_hits += hits
            self.native_hits += hits
            self.native_denials += denials

    def answer_udp(self, wire: bytes, peer: tuple[str, int]) -> bytes | None:
        """The UDP response to `wire` from `peer`, after rate limiting; None to stay silent."""
        if self.rrl is None:
            response = self._respond(wire, udp=True)
        elif len(wire) < 12 or wire[2] & _QR:
            response = None
        else:
            # Decided before answering, so a flood that is dropped costs no answer building.
            verdict = self.rrl.check(peer[0])
            if verdict is Verdict.DROP:
                response = None
            else:
                response = self._respond(wire, udp=True)
                if response is not None and verdict is Verdict.SLIP:
                    response = _truncate_to_header(response)
        self.counters.udp[_NO_RESPONSE if response is None else response[3] & 0x0F] += 1
        return response

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        source = str(peer[0])
        if self._tcp_per_source.get(source, 0) >= self.tcp_connections_per_source:
            self.counters.tcp_closed["per_source_limit"] += 1
            writer.close()
            return
        if len(self._tcp_clients) >= self.max_tcp_clients and not self._close_oldest_idle():
            self.counters.tcp_closed["no_slot"] += 1
            writer.close()
            return
        loop = asyncio.get_running_loop()
        client = _TcpClient(writer, loop.time())
        self._tcp_tasks.add(task)
        self._tcp_clients[task] = client
        self._tcp_per_source[source] = self._tcp_per_source.get(source, 0) + 1
        try:
            while True:
                client.idle_since = loop.time()
                try:
                    async with asyncio.timeout(TCP_IDLE_SECONDS):
                        size_wire = await reader.readexactly(2)
                    client.idle_since = None
                    (size,) = struct.unpack("!H", size_wire)
                    async with asyncio.timeout(TCP_IDLE_SECONDS):
                        wire = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                transfer = await self._transfer(wire, (peer[0], peer[1]))
                responses = (
                    transfer if transfer is not None
                    else [self._respond(wire, udp=False)]
                )
                first = responses[0] if responses else None
                self.counters.tcp[_NO_RESPONSE if first is None else first[3] & 0x0F] += 1
                for response in responses:
                    if response is not None:
                        writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._tcp_tasks.discard(task)
            self._tcp_clients.pop(task, None)
            remaining = self._tcp_per_source.pop(source, 1) - 1
            if remaining:
                self._tcp_per_source[source] = remaining
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _close_oldest_idle(self) -> bool:
        """Free a slot by closing the connection idle the longest; False when none is idle."""
        idle = [(client.idle_since, task) for task, client in self._tcp_clients.items()
                if client.idle_since is not None]
        if not idle:
            return False
        _, task = min(idle, key=lambda entry: entry[0])
        client = self._tcp_clients.pop(task)
        client.writer.transport.abort()
        self.counters.tcp_closed["idle_evicted"] += 1
        return True

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

    def _respond_read(self, wire: bytes, key: bytes, end: int, qtype: int, edns: bool,
                      dnssec: bool, payload: int) -> bytes | None:
        """`_respond` over UDP for a plain query the C loop has read (`_read_plain_query`)."""
        try:
            return self._respond_plain(wire, _Question(end, qtype, edns, dnssec, payload), True,
                                       key)
        except Exception as error:
            log.exception("dns:query:failed", error_type=type(error).__name__)
            return _header_only(wire, dns.rcode.SERVFAIL)

    def _remember(self, key: bytes, response: bytes | None, udp: bool, *,
                  denied: bool) -> bytes | None:
        """Keep `response` for the C loop: the same question gets it whatever its ID, case, RD
        and CD (the loop puts the query's), while the table's generation lasts. A denial or
        referral is kept when its question comes a second time: the answers of a flood of new
        names (one proof each) would fill the dict with answers asked once."""
        if not udp or self._responder is None or response is None or response[2] & _TC:
            return response
        if denied and self._asked_once.pop(key, False) is False:
            if len(self._asked_once) >= self._cache_size:
                self._asked_once.clear()
            self._asked_once[key] = True
            return response
        if len(self._answers) >= self._cache_size:
            self._answers.clear()
        self._answers[key] = response
        return response

    def _respond_plain(self, wire: bytes, question: _Question, udp: bool,
                       key: bytes | None = None) -> bytes | None:
        if key is None:
            key = _answer_key(wire, question)
        cached = self._cache.get(key)
        if cached is not None and cached.generation != self.table.generation:
            cached = self._still_served(cached, wire, question)
        if cached is None:
            name = wire[12:question.end - 4].lower()
            starts = label_starts(name)
            found = self._zone_for_wire(name, starts, question.qtype)
            if found is None:
                if self.table.loading and self._loading_holds(name, starts):
                    return _refused(wire, question, rcode=dns.rcode.SERVFAIL)
                return self._refuse(wire, question, udp, key)
            zone, origin_at = found
            index = self._index(zone, name[starts[origin_at]:])
            proof = index.denial.proof(name, starts, origin_at, question.qtype, question.dnssec)
            if proof is not None:
                if index.denial.nsec3 and question.dnssec and proof.key[0] != "referral":
                    denied = self._respond_composed(wire, question, udp, zone, index, proof,
                                                    name, starts)
                else:
                    denied = self._respond_denied(wire, question, udp, zone, index, proof,
                                                  name, starts, origin_at)
                if denied is not None:
                    return self._remember(key, denied, udp, denied=True)
            self.cache_misses += 1
            qname = dns.name.from_wire(wire, 12)[0]
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
            answer = index.lookup(qname, question.qtype, question.dnssec)
            cached = _CachedResponse(zone, self.table.generation, _finish(message, answer))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = cached
        else:
            self.cache_hits += 1
        response = cached.wire
        if udp and len(response) > _udp_limit(question):
            if cached.truncated is None:
                cached.truncated = _truncate_to_header(response)
                cached.truncated_tail = cached.truncated[question.end:]
            response = cached.truncated
            tail = cached.truncated_tail
        else:
            if cached.tail is None:
                cached.tail = response[question.end:]
            tail = cached.tail
        # For the C loop, the cached response itself (ID zero, RD and CD clear, the question as
        # first asked: the loop puts the query's), shared with the cache rather than copied;
        # the loop leaves a client too small for it to this side, which truncates.
        self._remember(key, cached.wire, udp, denied=False)
        return b"".join((
            wire[:2],
            bytes((response[2] | (wire[2] & _RD), response[3] | (wire[3] & _CD))),
            response[4:12],
            wire[12:question.end],
            tail,
        ))

    def _refuse(self, wire: bytes, question: _Question, udp: bool, key: bytes) -> bytes:
        """REFUSED to a plain query for a name in no zone here, from its bytes: a flood of
        questions about other people's names costs no reading of each into a message."""
        if self._refusals_generation != self.table.generation:
            self._refusals.clear()
            self._refusals_generation = self.table.generation
        if key in self._refusals:
            self.cache_hits += 1
        else:
            self.cache_misses += 1
            if len(self._refusals) >= self._cache_size:
                self._refusals.clear()
            self._refusals.add(key)
        if udp and self._responder is not None:  # the form the C loop answers again from
            self._remember(key, _refused(wire, question, 0), udp, denied=True)
        return _refused(wire, question)

    def _respond_composed(self, wire: bytes, question: _Question, udp: bool,
                          zone: ServedZone, index: ZoneIndex, proof: Proof, name: bytes,
                          starts: list[int]) -> bytes | None:
        """A negative answer with NSEC3 proofs, put together from rendered fragments.

        With NSEC3, the proofs of names under existing names are as many as pairs of an
        encloser and a hash: too many to cache whole. Each NSEC3 record (with its RRSIG) is
        rendered once; its names compress only into the zone's name in the question and into
        itself, so it can be placed anywhere. The SOA part is rendered once per template, as
        its names may compress into the question's. None sends the question to the general
        path (a name of the sections below the template in the question).
        """
        denial = index.denial
        # Proofs about an existing name or with the apex as closest encloser are as many as
        # the zone's names: those are kept whole, like other proofs.
        kept = proof.key[0] == "nodata" or proof.key[1] == denial.origin
        key = (denial.origin, proof.key, True, True)
        if kept:
            rendered = self._denials.get(key)
            if rendered is not None and rendered.zone is zone:
                self.cache_hits += 1
                return _assemble(wire, question, udp, rendered, proof, name, starts)
        authority = denial.authority(proof, question.dnssec)
        if authority is None or not _signed_pairs(authority):
            return None
        fragments = denial.rendered
        template = name[starts[proof.template]:]
        soa_key = ("soa", template)
        soa = fragments.get(soa_key)
        if soa is None:
            self.cache_misses += 1
            soa = fragments[soa_key] = _Fragment.render(template, authority[:2], fragments)
        else:
            self.cache_hits += 1
        for at in range(proof.template):
            suffix = name[starts[at]:]
            if suffix in denial.nsec3_owner_names or suffix in soa.compressible:
                return None
        parts = [soa]
        for position in range(2, len(authority), 2):
            nsec3 = authority[position]
            fragment_key = ("nsec3", id(nsec3))  # the writer's cut of the RRset keeps it alive
            fragment = fragments.get(fragment_key)
            if fragment is None:
                fragment = fragments[fragment_key] = _Fragment.render(
                    denial.origin, authority[position:position + 2], fragments)
            parts.append(fragment)
        if udp and proof.key[0] == "nxdomain" and len(parts) == 4:
            self._lend_frame(denial, proof.key[1], parts)
        if kept:
            rendered = _RenderedDenial.of_fragments(zone, template, parts, proof,
                                                    denial.nsec3_owner_names)
            if len(self._denials) >= self._cache_size:
                self._denials.clear()
            self._denials[key] = rendered
            return _assemble(wire, question, udp, rendered, proof, name, starts)
        name_end = 12 + len(name)
        sections: list[bytes] = []
        at = question.end
        records = 0
        for fragment in parts:
            sections += fragment.placed(at, name_end)
            at += len(fragment.data)
            records += fragment.records
        opt = _OPT_DO
        rcode = 3 if proof.key[0] == "nxdomain" else 0  # NXDOMAIN or NOERROR
        flags = 0x8400 | rcode | (wire[2] & _RD) << 8 | (wire[3] & _CD)  # QR, AA
        if udp and at + len(opt) > _udp_limit(question):
            return b"".join((wire[:2], _COUNTS_FLAGS.pack(flags | 0x0200, 1, 0, 0, 1),  # TC
                             wire[12:question.end], opt))
        return b"".join((wire[:2], _COUNTS_FLAGS.pack(flags, 1, 0, records, 1),
                         wire[12:question.end], *sections, opt))

    def _lend_frame(self, denial: DenialIndex, encloser: object, parts: list[_Fragment]) -> None:
        """Let the C loop deny names under `encloser` itself, as this NXDOMAIN was put
        together: the SOA, the encloser's NSEC3 and its wildcard's covering NSEC3 are the same
        for every such name (`parts` 0, 1 and 3); the record covering the next closer name
        (part 2) is one of the zone's, which the loop finds by its hash."""
        zone = self._native_zone(denial)
        if native is None or not isinstance(zone, native.Nsec3Denial) \
                or not isinstance(encloser, bytes):
            return
        frames = zone.frames
        if len(frames) >= self._cache_size:
            frames.clear()
        soa, match, _, wildcard = parts
        frames[encloser] = (soa.native, match.native, wildcard.native, soa.compressible)

    def _lend_proof(self, denial: DenialIndex, proof: Proof, rendered: _RenderedDenial) -> None:
        """Let the C loop answer the other names of this NXDOMAIN proof (NSEC: the closest
        encloser and the NSEC covering the name) from `rendered`, its sections."""
        zone = self._native_zone(denial)
        _, encloser, covering = proof.key
        if native is None or not isinstance(zone, native.NsecDenial) \
                or not isinstance(encloser, bytes) or not isinstance(covering, int):
            return
        native_proof = rendered.native()
        if native_proof is None:
            return
        proofs = zone.proofs
        if len(proofs) >= self._cache_size:
            proofs.clear()
        proofs[encloser + covering.to_bytes(4)] = native_proof

    def _native_zone(self, denial: DenialIndex) -> _udp.Nsec3Denial | _udp.NsecDenial | None:
        """What the C loop denies names of `denial`'s zone with, made once per snapshot and
        handed to the loop; None while this server's loop is not in C or may not use it (the
        table changed since the loop last ran)."""
        if self._responder is None or self._answers_generation != self.table.generation:
            return None
        zone = self._native_zones.get(denial.origin)
        if zone is None:
            made = denial.rendered.get("native")
            if made is None:
                made = denial.rendered["native"] = _native_denial(denial) or False
            if native is None or not isinstance(made, (native.Nsec3Denial, native.NsecDenial)):
                return None  # a chain the loop cannot read: Python denies in that zone
            zone = made
            if not self._native_zones:
                self._native_zones.update(dict.fromkeys(self._origins))
            self._native_zones[denial.origin] = zone
        return zone

    def _still_served(self, cached: _CachedResponse, wire: bytes,
                      question: _Question) -> _CachedResponse | None:
        """`cached` if the zone that answers its question is still the snapshot it came from."""
        name = wire[12:question.end - 4].lower()
        found = self._zone_for_wire(name, label_starts(name), question.qtype)
        if found is None or found[0] is not cached.zone:
            return None
        cached.generation = self.table.generation
        return cached

    def _respond_denied(self, wire: bytes, question: _Question, udp: bool, zone: ServedZone,
                        index: ZoneIndex, proof: Proof, name: bytes, starts: list[int],
                        origin_at: int) -> bytes | None:
        """The negative answer or referral of `proof`, its sections rendered once per proof;
        None when they cannot be put after this question unchanged (the general path then)."""
        key = (name[starts[origin_at]:], proof.key, question.edns, question.dnssec)
        rendered = self._denials.get(key)
        if rendered is None or rendered.zone is not zone:
            self.cache_misses += 1
            rendered = _render_denial(zone, index, wire, question, proof,
                                      name[starts[proof.template]:])
            if len(self._denials) >= self._cache_size:
                self._denials.clear()
            self._denials[key] = rendered
        else:
            self.cache_hits += 1
        if udp and question.dnssec and proof.key[0] == "nxdomain" and not index.denial.nsec3:
            self._lend_proof(index.denial, proof, rendered)
        return _assemble(wire, question, udp, rendered, proof, name, starts)

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
            return _finish(_make_response(query), dns.rcode.SERVFAIL
                           if self.table.waits(question.name) else dns.rcode.REFUSED)
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
            # As the cached answers truncate: the header of the whole answer, TC set.
            response.flags |= dns.flags.TC | (dns.flags.AA if answer.authoritative else 0)
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

    def _zone_for_wire(self, name: bytes, starts: list[int],
                       qtype: int) -> tuple[ServedZone, int] | None:
        """`_zone_for` on a lowercased wire name: the zone and the label index of its origin."""
        if self._origins_generation != self.table.generation:
            self._origins = {_canonical_wire(zone.origin): zone for zone in self.table}
            # Zones served but not read yet (at start): read at their first question.
            self._origins.update((_canonical_wire(origin), origin)
                                 for origin in self.table.deferred)
            self._origins.update((_canonical_wire(origin), _LOADING)
                                 for origin in self.table.loading)
            self._origins_generation = self.table.generation
        for at, start in enumerate(starts):
            zone = self._origin_zone(name[start:])
            if zone is None:
                continue
            if zone is _LOADING:  # SERVFAIL (`_loading_holds`)
                return None
            if at == 0 and qtype == dns.rdatatype.DS and len(starts) > 1:
                for parent_at in range(1, len(starts)):
                    parent = self._origin_zone(name[starts[parent_at]:])
                    if parent is not None and parent is not _LOADING:
                        return parent, parent_at
            return zone, at
        return None

    def _loading_holds(self, name: bytes, starts: list[int]) -> bool:
        """Whether the lowercased wire name `name` is in a zone still loading (at start)."""
        for start in starts:
            zone = self._origins.get(name[start:])
            if zone is not None:
                return zone is _LOADING
        return False

    def _origin_zone(self, origin: bytes) -> Any:
        """The zone served at the lowercased wire name `origin`, read now if it was not
        (`_LOADING`: one still loading)."""
        zone = self._origins.get(origin)
        if isinstance(zone, dns.name.Name):
            zone = self.table.settle(zone)
            if zone is None:
                del self._origins[origin]
            else:
                self._origins[origin] = zone
        return zone

    def _index(self, zone: ServedZone, origin: bytes | None = None) -> ZoneIndex:
        """The lookup index of `zone`; `origin` is its origin's lowercased wire form."""
        if origin is None:
            origin = _canonical_wire(zone.origin)
        index = self._indexes.get(origin)
        if index is None or index.zone is not zone:
            replaced = index.zone if index is not None else None
            if replaced is not None:
                self._forget(replaced)
            if len(self._indexes) > len(self.table):
                for known, stale in list(self._indexes.items()):
                    stale_zone = stale.zone  # None: freed, nothing cached refers to it
                    if stale_zone is None or self.table.get(stale_zone.origin) is not stale_zone:
                        if stale_zone is not None:
                            self._forget(stale_zone)
                        del self._indexes[known]
            prepared = zone.prepared.get("index")
            if prepared is None:  # a snapshot nobody prepared: built here, on the loop
                prepare_index(zone)
                prepared = zone.prepared["index"]
            index = self._indexes[origin] = prepared
        return index

    def _forget(self, zone: ServedZone) -> None:
        """Drop the cached answers of a snapshot no longer served, so it can be freed."""
        self._cache = {key: cached for key, cached in self._cache.items()
                       if cached.zone is not zone}
        self._denials = {key: rendered for key, rendered in self._denials.items()
                         if rendered.zone is not zone}


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
    return (wire[12:name_end].lower() + wire[name_end:question.end]
            + _EDNS_KEYS[question.edns + question.dnssec])


def _assemble(wire: bytes, question: _Question, udp: bool, rendered: _RenderedDenial,
              proof: Proof, name: bytes, starts: list[int]) -> bytes | None:
    """The response of `rendered` (a proof's sections) to the query `wire`; None when they
    cannot be put after this question unchanged (the general path then)."""
    if rendered.head is None:
        return None
    compressible = rendered.compressible
    for at in range(proof.template):
        if name[starts[at]:] in compressible:
            # This question holds a name of the sections below the template: a renderer
            # would point there, and the response would not be the one the general path
            # renders (a few octets shorter). Rare, and only with a crafted name.
            return None
    sections = rendered.sections(len(name) - rendered.template_length)
    if udp and question.end + len(sections) > _udp_limit(question):
        head, sections = rendered.truncated_head, rendered.opt
    else:
        head = rendered.head
    return b"".join((
        wire[:2],
        bytes((head[0] | (wire[2] & _RD), head[1] | (wire[3] & _CD))),
        head[2:],
        wire[12:question.end],
        sections,
    ))


def _render_denial(zone: ServedZone, index: ZoneIndex, wire: bytes, question: _Question,
                   proof: Proof, template_wire: bytes) -> _RenderedDenial:
    """Render the sections answering the question in `wire` (one of `proof`'s) for reuse.

    The records are the proof's (`DenialIndex.authority`; a referral's come from the general
    lookup); they are written as dnspython's renderer writes them after a question naming
    the template (the closest encloser, the cut, the existing name), with its name
    compression, so the response of any question of the proof is the general path's one but
    for the question, except when the question holds one of the sections' names below the
    template: `compressible` lists those names.
    """
    authority = index.denial.authority(proof, question.dnssec)
    if authority is not None:
        rcode = dns.rcode.NXDOMAIN if proof.key[0] == "nxdomain" else dns.rcode.NOERROR
        answer = Answer(rcode, True, (), tuple(authority))
    else:
        qname = dns.name.from_wire(wire, 12)[0]
        answer = index.lookup(qname, question.qtype, question.dnssec)
    if answer.answer:
        return _RenderedDenial(zone)
    writer = _SectionWriter(template_wire, index.denial.rendered)
    try:
        for rrset in answer.authority:
            writer.add(rrset)
        authority_records = writer.records
        for rrset in answer.additional:
            writer.add(rrset)
    except _NotRenderable:
        return _RenderedDenial(zone)
    additional = writer.records - authority_records
    flags = dns.flags.QR | (dns.flags.AA if answer.authoritative else 0)
    opt = b""
    if question.edns:
        opt = b"\0" + struct.pack("!HHIH", dns.rdatatype.OPT, OUR_UDP_PAYLOAD,
                                  dns.flags.DO if question.dnssec else 0, 0)
    head = struct.pack("!HHHHH", flags | answer.rcode, 1, 0, authority_records,
                       additional + (1 if opt else 0))
    truncated_head = struct.pack("!HHHHH", flags | answer.rcode | dns.flags.TC, 1, 0, 0,
                                 1 if opt else 0)
    return _RenderedDenial(
        zone, len(template_wire), head, truncated_head=truncated_head, opt=opt,
        compressible=frozenset(writer.compress), sections=bytes(writer.output) + opt,
        pointers=tuple(writer.pointers),
    )


def _native_denial(denial: DenialIndex) -> _udp.Nsec3Denial | _udp.NsecDenial | None:
    """What the C loop needs to deny names in `denial`'s zone (frames or proofs come later, as
    Python denies names), or None when it cannot read the zone's chain."""
    if native is None:
        return None
    if not denial.nsec3:
        nsec = denial.nsec_chain()
        return native.NsecDenial(*nsec, {}) if nsec is not None else None
    chain = denial.nsec3_chain()
    if chain is None:
        return None
    existing, cuts, salt, iterations, digests = chain
    covers = []
    for rrsets in denial.signed_denial_records():
        fragment = denial.rendered.get(("nsec3", id(rrsets[0]))) if rrsets else None
        covers.append(fragment.native if isinstance(fragment, _Fragment) else None)
    return native.Nsec3Denial(existing, cuts, denial.nsec3_owner_names, salt, iterations,
                              digests, covers, {}, _OPT_DO)


def prepare_index(zone: ServedZone, previous: ServedZone | None = None) -> None:
    """Build what the server answers `zone` from (its `ZoneIndex`, with the denial records
    rendered ahead) and keep it with the snapshot. Seconds for a zone of 100,000 records:
    the publisher and the DNS workers call this in a worker thread before the snapshot is
    swapped in, so the event loop never builds it at the first query. With `previous`, the
    snapshot `zone` replaces, its index is made from that one's when little differs
    (`ZoneIndex.following`: milliseconds for an edit of a large zone)."""
    if "index" in zone.prepared:
        return
    before = previous.prepared.get("index") if previous is not None else None
    try:
        index = None
        if isinstance(before, ZoneIndex) and previous is not zone:
            index = ZoneIndex.following(before, zone)
        if index is None:
            index = ZoneIndex(zone)
    except ValueError as exc:  # not a zone that can be answered from; the query says so
        log.warning("dns.index_failed", zone=zone.origin.to_text(), reason=str(exc))
        return
    _render_ahead(index)
    # What the C loop denies names with (a fifth of a second for 100,000 NSEC3 records):
    # made here too, not on the loop at the first query of the snapshot.
    index.denial.rendered["native"] = _native_denial(index.denial) or False
    zone.prepared["index"] = index


def _render_ahead(index: ZoneIndex) -> None:
    """Cut every signed NSEC or NSEC3 RRset for the section writer, and render the NSEC3
    fragments, while the index is built: a flood of new names then renders nothing. An
    index made from the one before renders only the records of the owners that changed."""
    denial = index.denial
    cache = denial.rendered
    for rrsets in denial.signed_denial_records(denial.renew):
        try:
            if denial.nsec3 and len(rrsets) == 2:
                cache[("nsec3", id(rrsets[0]))] = _Fragment.render(denial.origin, rrsets, cache)
            else:
                for rrset in rrsets:
                    cache[id(rrset)] = _RRsetWire.of(rrset)
        except _NotRenderable:
            continue


class _Either:
    """Holds what either of two containers holds."""

    __slots__ = ("first", "second")

    def __init__(self, first: Container[bytes], second: Container[bytes]) -> None:
        self.first, self.second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


def _signed_pairs(rrsets: list[dns.rrset.RRset]) -> bool:
    """Whether `rrsets` is a SOA and NSEC3 RRsets, each followed by its RRSIG."""
    if len(rrsets) % 2 or rrsets[0].rdtype != dns.rdatatype.SOA:
        return False
    return all(rrsets[at + 1].rdtype == dns.rdatatype.RRSIG
               and rrsets[at + 1].covers == rrsets[at].rdtype
               and (at == 0 or rrsets[at].rdtype == dns.rdatatype.NSEC3)
               for at in range(0, len(rrsets), 2))


@dataclass(frozen=True, slots=True)
class _Fragment:
    """RRsets rendered on their own, to be placed anywhere after a question that ends with
    the same names as the template it was rendered after."""

    data: bytes
    records: int
    # (offset in data, target counted back from the end of the question's name)
    question_pointers: tuple[tuple[int, int], ...]
    local_pointers: tuple[tuple[int, int], ...]  # (offset in data, target offset in data)
    compressible: frozenset[bytes]
    # As the C loop reads a fragment (`_udp.Nsec3Denial`): data, records, and the pointers,
    # six octets each (offset; 0 for a question pointer, 1 for a local one; its value).
    native: tuple[bytes, int, bytes]

    @classmethod
    def render(cls, template: bytes, rrsets: list[dns.rrset.RRset],
               cache: dict[Any, Any]) -> _Fragment:
        writer = _SectionWriter(template, cache)
        for rrset in rrsets:
            writer.add(rrset)
        data = bytes(writer.output)
        question_pointers, local_pointers = [], []
        for pointer in writer.pointers:
            target = int.from_bytes(data[pointer:pointer + 2]) & 0x3FFF
            if target < writer.base:
                question_pointers.append((pointer, 12 + len(template) - target))
            else:
                local_pointers.append((pointer, target - writer.base))
        return cls(data, writer.records, tuple(question_pointers), tuple(local_pointers),
                   frozenset(writer.compress), (data, writer.records, b"".join(
                       [_NATIVE_POINTER.pack(offset, 0, back) for offset, back in question_pointers]
                       + [_NATIVE_POINTER.pack(offset, 1, target)
                          for offset, target in local_pointers])))

    @property
    def pointer_offsets(self) -> list[int]:
        return [position for position, _ in (*self.question_pointers, *self.local_pointers)]

    def placed(self, at: int, name_end: int) -> list[bytes]:
        """The fragment's bytes at message offset `at`, the question's name ending at
        `name_end`, cut around the pointers."""
        if not self.question_pointers and not self.local_pointers:
            return [self.data]
        moved = [(position, name_end - back) for position, back in self.question_pointers]
        moved += [(position, at + target) for position, target in self.local_pointers]
        moved.sort()
        parts: list[bytes] = []
        start = 0
        for position, target in moved:
            parts += (self.data[start:position], (0xC000 | target).to_bytes(2))
            start = position + 2
        parts.append(self.data[start:])
        return parts


class _NotRenderable(Exception):
    """A record whose names `_SectionWriter` does not know how to compress."""


# Types whose records hold no name that dnspython compresses: written as they are.
_PLAIN_TYPES = frozenset({
    dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.DS, dns.rdatatype.NSEC,
    dns.rdatatype.NSEC3, dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY, dns.rdatatype.NSEC3PARAM,
    dns.rdatatype.TXT,
})


class _SectionWriter:
    """Writes RRsets after a question for `template` (lowercased wire) as dnspython's
    renderer does, name compression included, recording where the pointers are."""

    def __init__(self, template: bytes, cache: dict[int, Any]) -> None:
        self.output = bytearray()
        self.base = 12 + len(template) + 4  # where the sections start in the message
        self.pointers: list[int] = []
        self.records = 0
        self.cache = cache
        # Lowercased wire suffix -> offset; the question's names first (dnspython's table).
        self.compress: dict[bytes, int] = {}
        for start in label_starts(template)[:-1]:
            self.compress[template[start:]] = 12 + start

    def add(self, rrset: dns.rrset.RRset) -> None:
        cached = self.cache.get(id(rrset))
        if cached is None:
            cached = self.cache[id(rrset)] = _RRsetWire.of(rrset)
        assert isinstance(cached, _RRsetWire) and cached.rrset is rrset
        output = self.output
        for names, rest in cached.records:
            self.name(cached.owner)
            output += cached.fixed
            length_at = len(output)
            output += b"\0\0"
            for name in names:
                self.name(name)
            output += rest
            struct.pack_into("!H", output, length_at, len(output) - length_at - 2)
            self.records += 1

    def name(self, wire: bytes) -> None:
        """Write the name `wire` (as it is cased in the zone), compressed."""
        lowered = wire.lower()  # length octets are below 64: only letters change
        for start in label_starts(lowered):
            if lowered[start] == 0:
                self.output.append(0)
                return
            suffix = lowered[start:]
            target = self.compress.get(suffix)
            if target is not None:
                self.pointers.append(len(self.output))
                self.output += struct.pack("!H", 0xC000 | target)
                return
            position = self.base + len(self.output)
            if position <= 0x3FFF:
                self.compress[suffix] = position
            self.output += wire[start:start + 1 + lowered[start]]


@dataclass(frozen=True, slots=True)
class _RRsetWire:
    """An RRset cut for `_SectionWriter`: per record, the names it compresses and the rest."""

    rrset: dns.rrset.RRset  # kept alive: the cache is keyed by its id
    owner: bytes
    fixed: bytes  # type, class, TTL
    records: tuple[tuple[tuple[bytes, ...], bytes], ...]

    @classmethod
    def of(cls, rrset: dns.rrset.RRset) -> _RRsetWire:
        records: list[tuple[tuple[bytes, ...], bytes]] = []
        for rdata in rrset:
            if rrset.rdtype in _PLAIN_TYPES:
                records.append(((), rdata.to_wire()))
            elif rrset.rdtype == dns.rdatatype.SOA:
                records.append(((_wire(rdata.mname), _wire(rdata.rname)), struct.pack(
                    "!IIIII", rdata.serial, rdata.refresh, rdata.retry, rdata.expire,
                    rdata.minimum)))
            elif rrset.rdtype == dns.rdatatype.NS:
                records.append(((_wire(rdata.target),), b""))
            else:
                raise _NotRenderable(rrset.rdtype)
        return cls(rrset, _wire(rrset.name),
                   struct.pack("!HHI", rrset.rdtype, rrset.rdclass, rrset.ttl), tuple(records))


def _wire(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None
    return wire


def _canonical_wire(name: dns.name.Name) -> bytes:
    """The name in wire form, lowercased: how the fast paths key names."""
    wire = name.canonicalize().to_wire()
    assert wire is not None
    return wire


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


def _refused(wire: bytes, question: _Question, query_id: int | None = None,
             rcode: int = dns.rcode.REFUSED) -> bytes:
    """REFUSED (or `rcode`) to the plain query `wire` (RFC 1035 §4.1.1): the question as
    asked, the OPT record when it had one, as `_finish(_make_response(query), REFUSED)`
    renders it. With `query_id`, the form the C loop keeps: that ID, RD and CD clear (it puts
    the query's)."""
    flags = _QR | (wire[2] & _RD)
    low = (wire[3] & _CD) | rcode
    head = wire[:2] if query_id is None else query_id.to_bytes(2)
    if query_id is not None:
        flags, low = _QR, rcode
    counts = _COUNTS.pack(1, 0, 0, 1 if question.edns else 0)
    opt = _OPT_FIXED.pack(0, dns.rdatatype.OPT, OUR_UDP_PAYLOAD, 0, 0,
                          _DO if question.dnssec else 0, 0) if question.edns else b""
    return b"".join((head, bytes((flags, low)), counts, wire[12:question.end], opt))


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

