"""Zone files and record text: reading a zone file into RRsets as typed, writing a zone back out,
and the DS of a DNSKEY. Plain text and `rules/zones.py` types cross this boundary; dnspython
objects stay inside it (STYLE.md, convention 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
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


@dataclass(frozen=True)
class ZoneFileContent:
    """A zone file's RRsets as typed (absolute owners, presentation records), without the SOA
    and the types the signer makes; `serial` is the file's SOA serial, `dropped` the count of
    signer-made records left out (they are made again when the zone is signed)."""

    rrsets: tuple[RRsetInput, ...]
    serial: int | None
    dropped: int


def read_zone_text(zone: str, text: str, field: str = "file") -> ZoneFileContent:
    """Parse a zone file for `zone`; a syntax error is one ValidationFailed naming its line."""
    if len(text.encode()) > MAX_ZONE_FILE_BYTES:
        raise ValidationFailed([FieldError(field, "too_large",
                                           f"must be at most {MAX_ZONE_FILE_BYTES} bytes")])
    try:
        origin = dns.name.from_text(zone)
        parsed = _read_rrsets(text, origin)
    except dns.exception.SyntaxError as exc:
        raise ValidationFailed([FieldError(field, "syntax", str(exc))]) from None
    except dns.exception.DNSException as exc:
        raise ValidationFailed([FieldError(field, "invalid", str(exc) or type(exc).__name__)]
                               ) from None
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
    manager = dns.zonefile.RRSetsReaderManager(origin, False, dns.rdataclass.IN)
    with manager.writer(True) as txn:  # type: ignore[no-untyped-call]
        tokens = dns.tokenizer.Tokenizer(text, "<zone file>")
        reader = dns.zonefile.Reader(tokens, dns.rdataclass.IN, txn, allow_directives=[
            "$ORIGIN", "$TTL", "$GENERATE"])
        # The reader refuses a CNAME beside other data on the first one it meets; the zone
        # rules report them all, with the rest of the file's problems.
        txn._check_put_rdataset.clear()
        reader.read()
    return list(manager.rrsets)


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

