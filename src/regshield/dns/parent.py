"""Whether a zone's parent serves the DS records it should: every parent server, asked directly.

A KSK rollover retires the old key only once the new DS is served by all of the parent's
servers (checked, not assumed) and the DS TTL has passed (RFC 6781 section 4.1.2, RFC 7583
section 3.3.2). `check_parent_ds` asks each server for the DS RRset of the zone, recursion off,
over UDP and over TCP when the answer is truncated, with a time limit and one retry, and compares
what each serves with the records wanted and those withdrawn. Without a list of servers, they
are found through a resolver: the zone that holds the child's parent name (asking for SOA,
label by label), its NS RRset, and the addresses of those names.

DS records cross this module's boundary as presentation text (`12345 13 2 ABCDEF...`); digests
compare case-insensitively.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.DS import DS

from regshield.errors import RegshieldError
from regshield.rules.ds import DsRecord, parse_ds

DEFAULT_WAIT = 2.0  # seconds for an answer, per attempt; each server gets one retry
DNS_PORT = 53
OUR_UDP_PAYLOAD = 1232

Server = tuple[str, int]


class ParentUnknown(RegshieldError):
    type_slug = "dns-parent-unknown"
    title = "The parent zone's servers could not be found"


@dataclass(frozen=True)
class ServerDs:
    """What one parent server answered: the DS records it serves (presentation text, digests
    in lower case) and their TTL; or, in `error`, why it gave no usable answer: `timeout`,
    `unreachable`, `refused`, `lame` (not authoritative for the parent zone), `servfail`, or
    another response code in lower case."""

    server: Server
    ds: frozenset[str] = frozenset()
    ttl: int | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        host, port = self.server
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ParentCheck:
    """The result of asking every parent server. `seen` is True when every server answered
    and serves every wanted DS and none of the withdrawn ones; `reasons` says, server by
    server, why not. `ttl` is the longest DS TTL served, the time a resolver may keep a DS
    set it has seen."""

    zone: str
    seen: bool
    servers: Mapping[Server, ServerDs]
    ttl: int | None
    reasons: tuple[str, ...]


async def check_parent_ds(
    zone: str,
    wanted: Collection[str],
    withdrawn: Collection[str] = (),
    servers: Sequence[Server] | None = None,
    *,
    resolver: dns.asyncresolver.Resolver | None = None,
    wait: float = DEFAULT_WAIT,
    port: int = DNS_PORT,
) -> ParentCheck:
    """Ask every parent server of `zone` for its DS RRset (see the module's docstring).

    `servers` are (address, port) pairs; None finds them through `resolver` (the system's by
    default), each asked on `port`. Each server has `wait` seconds to answer, twice.

    Raises ValidationFailed for a DS that is not valid presentation text (naming `wanted.N`
    or `withdrawn.N`), ParentUnknown when the parent's servers cannot be found."""
    name = dns.name.from_text(zone)
    wanted_ds = {parse_ds(text, f"wanted.{index}").to_text()
                 for index, text in enumerate(wanted)}
    withdrawn_ds = {parse_ds(text, f"withdrawn.{index}").to_text()
                    for index, text in enumerate(withdrawn)}
    if servers is None:
        servers = await parent_servers(name, resolver or dns.asyncresolver.Resolver(), port)
    answers = await asyncio.gather(*(_ask(name, server, wait) for server in servers))
    reasons: list[str] = []
    for answer in answers:
        if answer.error is not None:
            reasons.append(f"{answer.label}: {answer.error}")
            continue
        missing = sorted(wanted_ds - answer.ds)
        if missing:
            reasons.append(f"{answer.label} does not serve {', '.join(missing)}")
        kept = sorted(withdrawn_ds & answer.ds)
        if kept:
            reasons.append(f"{answer.label} still serves {', '.join(kept)}")
    if not answers:
        reasons.append("no parent server to ask")
    ttls = [answer.ttl for answer in answers if answer.ttl is not None]
    return ParentCheck(zone=name.to_text(), seen=not reasons,
                       servers={answer.server: answer for answer in answers},
                       ttl=max(ttls) if ttls else None, reasons=tuple(reasons))


async def parent_servers(zone: dns.name.Name, resolver: dns.asyncresolver.Resolver,
                         port: int = DNS_PORT) -> tuple[Server, ...]:
    """The addresses of the parent zone's servers, each with `port`. Raises ParentUnknown."""
    if zone == dns.name.root:
        raise ParentUnknown("the root zone has no parent")
    try:
        parent = await dns.asyncresolver.zone_for_name(zone.parent(), resolver=resolver)
        nameservers = await resolver.resolve(parent, dns.rdatatype.NS)
    except dns.exception.DNSException as exc:
        raise ParentUnknown(f"the parent zone of {zone} could not be found: {exc}") from None
    found: list[Server] = []
    for target in sorted(str(rdata.target) for rdata in nameservers):
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                addresses = await resolver.resolve(target, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as exc:
                raise ParentUnknown(f"the address of {target}, a server of {parent}, could "
                                    f"not be found: {exc}") from None
            found.extend((rdata.address, port) for rdata in addresses
                         if (rdata.address, port) not in found)
    if not found:
        raise ParentUnknown(f"no server of {parent} has an address")
    return tuple(found)


async def _ask(zone: dns.name.Name, server: Server, wait: float) -> ServerDs:
    query = dns.message.make_query(zone, dns.rdatatype.DS, use_edns=0,
                                   payload=OUR_UDP_PAYLOAD)
    query.flags &= ~dns.flags.RD
    host, port = server
    error = "timeout"
    for _ in range(2):
        try:
            response, _tcp = await dns.asyncquery.udp_with_fallback(
                query, host, timeout=wait, port=port)
        except dns.exception.Timeout:
            error = "timeout"
            continue
        except OSError:
            error = "unreachable"
            continue
        except dns.exception.DNSException as exc:
            return ServerDs(server, error=f"bad response ({exc})")
        return _read(zone, server, response)
    return ServerDs(server, error=error)


def _read(zone: dns.name.Name, server: Server, response: dns.message.Message) -> ServerDs:
    rcode = response.rcode()
    if rcode == dns.rcode.REFUSED:
        return ServerDs(server, error="refused")
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return ServerDs(server, error=dns.rcode.to_text(rcode).lower())
    if not response.flags & dns.flags.AA:
        return ServerDs(server, error="lame")
    rrset = response.get_rrset(response.answer, zone, dns.rdataclass.IN, dns.rdatatype.DS)
    if rrset is None:
        soa = next((found for found in response.authority
                    if found.rdtype == dns.rdatatype.SOA), None)
        if soa is None or not zone.is_subdomain(soa.name) or soa.name == zone:
            # An answer from the child zone itself (its apex SOA), or from no zone above it:
            # not the parent speaking.
            return ServerDs(server, error="lame")
        return ServerDs(server)  # no DS (or no such name): the parent serves an empty set
    # parse_ds and hex() both give the digest in lower case: texts compare as records do.
    records = frozenset(DsRecord(rdata.key_tag, rdata.algorithm, rdata.digest_type,
                                 rdata.digest.hex()).to_text()
                        for rdata in rrset if isinstance(rdata, DS))
    return ServerDs(server, records, rrset.ttl)


__all__ = ["ParentCheck", "ParentUnknown", "ServerDs", "check_parent_ds", "parent_servers"]
