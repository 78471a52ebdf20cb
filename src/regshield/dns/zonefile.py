"""Zone files and record text: reading a zone file into RRsets as typed, writing a zone back out,
and the DS of a DNSKEY. Plain text and `rules/zones.py` types cross this boundary; dnspython
objects stay inside it (STYLE.md, convention 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.grange
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.zonefile

from regshield.errors import FieldError, ValidationFailed
from regshield.rules.zones import SIGNER_OWNED_TYPES, RRset, RRsetInput

MAX_ZONE_FILE_BYTES = 64 * 1024 * 1024
# Records one zone file may hold, those its `$GENERATE` lines make included: counted while the
# file is read, which stops at the first record over the limit.
MAX_ZONE_FILE_RECORDS = 500_000
# Records the `$GENERATE` lines of one file may make together (a /16 of PTR records): a line
# over it is refused before it makes any, so that a few bytes cannot cost minutes of parsing.
MAX_GENERATE_RECORDS = 65_536


@dataclass(frozen=True)
class ZoneFileContent:
    """A zone file's RRsets as typed (absolute owners, presentation records), without the SOA
    and the types the signer makes; `serial` is the file's SOA serial, `dropped` the count of
    signer-made records left out (they are made again when the zone is signed)."""

    rrsets: tuple[RRsetInput, ...]
    serial: int | None
    dropped: int


def read_zone_text(zone: str, text: str, field: str = "file") -> ZoneFileContent:
    """Parse a zone file for `zone`; a syntax error is one ValidationFailed naming its line, and
    so is a file over `MAX_ZONE_FILE_RECORDS` records or `MAX_GENERATE_RECORDS` made by
    `$GENERATE`. Slow for a large file (seconds): callers on the event loop run it in a
    worker thread."""
    if len(text.encode()) > MAX_ZONE_FILE_BYTES:
        raise ValidationFailed([FieldError(field, "too_large",
                                           f"must be at most {MAX_ZONE_FILE_BYTES} bytes")])
    try:
        origin = dns.name.from_text(zone)
        parsed = _read_rrsets(text, origin)
    except _TooManyRecords as exc:
        raise ValidationFailed([FieldError(field, "too_many_records", str(exc))]) from None
    except dns.exception.SyntaxError as exc:
        raise ValidationFailed([FieldError(field, "syntax", str(exc))]) from None
    except dns.exception.DNSException as exc:
        raise ValidationFailed([FieldError(field, "invalid", str(exc) or type(exc).__name__)]
                               ) from None
    except ValueError as exc:  # a number too long to read, in a `$GENERATE` modifier
        raise ValidationFailed([FieldError(field, "syntax", str(exc))]) from None
    rrsets: list[RRsetInput] = []
    serial: int | None = None
    dropped = 0
    for rdataset in parsed:
        name = rdataset.name
        type_name = dns.rdatatype.to_text(rdataset.rdtype)
        if rdataset.rdtype == dns.rdatatype.SOA:
            if name == origin:
                serial = rdataset[0].serial
            continue
        if type_name in SIGNER_OWNED_TYPES:
            dropped += len(rdataset)
            continue
        rrsets.append(RRsetInput(
            owner=name.to_text(), type=type_name, ttl=rdataset.ttl,
            records=[rdata.to_text(origin=None, relativize=False) for rdata in rdataset]))
    return ZoneFileContent(tuple(rrsets), serial, dropped)


def _read_rrsets(text: str, origin: dns.name.Name) -> list[dns.rrset.RRset]:
    """Every RRset of a zone file (`$ORIGIN`, `$TTL` and `$GENERATE` allowed, not `$INCLUDE`,
    which would read local files). Unlike a zone load, nothing is refused here for breaking a
    zone rule (a CNAME beside other data), so that `rules/zones.py` can report every such
    problem at once."""
    manager = _CountingManager(origin, False, dns.rdataclass.IN)
    with manager.writer(True) as txn:
        tokens = dns.tokenizer.Tokenizer(text, "<zone file>")
        reader = _CountingReader(tokens, dns.rdataclass.IN, txn, allow_directives=[
            "$ORIGIN", "$TTL", "$GENERATE"])
        # The reader refuses a CNAME beside other data on the first one it meets; the zone
        # rules report them all, with the rest of the file's problems.
        txn._check_put_rdataset.clear()
        reader.read()
    return list(manager.rrsets)


class _TooManyRecords(Exception):
    """A zone file over `MAX_ZONE_FILE_RECORDS`, or a `$GENERATE` over `MAX_GENERATE_RECORDS`.

    Not a dnspython SyntaxError, which the reader would catch and rename: the message names
    the line where the record (or the `$GENERATE`) starts."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")


class _CountingTransaction(dns.zonefile.RRsetsReaderTransaction):
    """Counts the records the reader adds and stops at `MAX_ZONE_FILE_RECORDS`."""

    records = 0
    line = 1  # where the record being read starts, set by the reader

    def add(self, *args: Any) -> None:
        self.records += 1
        if self.records > MAX_ZONE_FILE_RECORDS:
            raise _TooManyRecords(self.line, f"a zone file may hold at most "
                                             f"{MAX_ZONE_FILE_RECORDS} records")
        super().add(*args)


class _CountingManager(dns.zonefile.RRSetsReaderManager):
    def writer(self, replacement: bool = False) -> _CountingTransaction:
        return _CountingTransaction(self, True, False)  # type: ignore[no-untyped-call]


class _CountingReader(dns.zonefile.Reader):
    """dnspython's zone file reader, telling the transaction where each record starts, and
    refusing a `$GENERATE` over the limits before it makes a single record."""

    txn: _CountingTransaction
    generated = 0

    def _rr_line(self) -> None:
        self.txn.line = self.tok.line_number
        super()._rr_line()

    def _generate_line(self) -> None:
        line = self.txn.line = self.tok.line_number
        token = self.tok.get()
        try:
            start, stop, step = dns.grange.from_text(token.value)
        except dns.exception.SyntaxError:
            pass  # the reader reports it
        else:
            count = len(range(start, stop + 1, step))
            self.generated += count
            if self.generated > MAX_GENERATE_RECORDS:
                raise _TooManyRecords(line, f"$GENERATE would make {count} records; the "
                                            f"$GENERATE lines of a file may make at most "
                                            f"{MAX_GENERATE_RECORDS} together")
            if self.txn.records + count > MAX_ZONE_FILE_RECORDS:
                raise _TooManyRecords(line, f"$GENERATE would take the file over "
                                            f"{MAX_ZONE_FILE_RECORDS} records")
        self.tok.unget(token)
        super()._generate_line()  # type: ignore[no-untyped-call]


def soa_record(nameserver: str, hostmaster: str, serial: int, minimum: int = 300) -> str:
    """The SOA rdata of a hosted zone: refresh 2 h, retry 1 h, expire 14 days (RFC 1912
    section 2.2 ranges), negative caching `minimum` seconds (RFC 2308)."""
    return f"{nameserver} {hostmaster} {serial} 7200 3600 1209600 {minimum}"


def render_zone(zone: str, soa_ttl: int, soa: str, rrsets: Iterable[RRset]) -> str:
    """A zone file: `$ORIGIN`, the SOA first, then every RRset with absolute names."""
    lines = [f"$ORIGIN {zone}", f"{zone} {soa_ttl} IN SOA {soa}"]
    for rrset in rrsets:
        lines.extend(f"{rrset.owner} {rrset.ttl} IN {rrset.type} {record}"
                     for record in rrset.records)
    return "\n".join(lines) + "\n"

