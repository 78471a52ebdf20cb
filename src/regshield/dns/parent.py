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
    response = await _query(zone, dns.rdatatype.DS, server, wait)
    if isinstance(response, str):
        return ServerDs(server, error=response)
    return _read(zone, server, response)


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




# --- proof of control: a TXT record at the servers the parent delegates to ---------------------


@dataclass(frozen=True)
class ServerTxt:
    """The TXT strings one authoritative server serves at the owner name (each record's
    strings joined), or why it gave no usable answer (as in ServerDs)."""

    server: Server
    texts: frozenset[str] = frozenset()
    error: str | None = None


@dataclass(frozen=True)
class TxtCheck:
    """What each server the parent delegates `zone` to answered for `owner`'s TXT RRset."""

    zone: str
    owner: str
    servers: tuple[ServerTxt, ...]
    reasons: tuple[str, ...] = ()

    def missing(self, value: str) -> list[str]:
        """Why `value` is not proved: the delegation could not be read, no server was asked,
        or a server failed or does not serve it. Empty when every server serves it."""
        found = list(self.reasons)
        if not self.servers and not found:
            found.append("the parent names no server for the zone")
        for answer in self.servers:
            host, port = answer.server
            if answer.error is not None:
                found.append(f"{host}:{port}: {answer.error}")
            elif value not in answer.texts:
                found.append(f"{host}:{port} does not serve it")
        return found


async def check_delegated_txt(
    zone: str,
    owner: str,
    parents: Sequence[Server] | None = None,
    *,
    resolver: Server | None = None,
    wait: float = DEFAULT_WAIT,
    port: int = DNS_PORT,
) -> TxtCheck:
    """Ask the servers the parent zone delegates `zone` to (not a resolver: a cache or a
    spoofed answer proves nothing) for the TXT RRset at `owner`.

    The parent's servers are `parents`, else found through `resolver` (HOST, PORT; None: the
    system's) as `check_parent_ds` finds them. The first parent server that answers gives the
    delegation: its NS names and their glue; a name without glue is resolved. Each server is
    asked on `port`, recursion off, and must answer authoritatively. Raises ParentUnknown."""
    name = dns.name.from_text(zone)
    asker = _stub_resolver(resolver)
    if parents is None:
        parents = await parent_servers(name, asker, port)
    delegation: tuple[list[dns.name.Name], dict[dns.name.Name, list[str]]] | None = None
    reasons: list[str] = []
    for parent in parents:
        delegation, reason = await _delegation(name, parent, wait)
        if delegation is not None:
            break
        reasons.append(reason)
    if delegation is None:
        return TxtCheck(name.to_text(), owner, (), tuple(reasons or ["no parent server"]))
    targets, glue = delegation
    servers: list[Server] = []
    for target in targets:
        addresses = glue.get(target) or await _addresses(target, asker)
        servers.extend((address, port) for address in addresses
                       if (address, port) not in servers)
    owner_name = dns.name.from_text(owner)
    answers = await asyncio.gather(*(_ask_txt(owner_name, server, wait) for server in servers))
    missing = [] if servers else [f"no address for {', '.join(map(str, targets))}"]
    return TxtCheck(name.to_text(), owner, tuple(answers), tuple(missing))


def _stub_resolver(address: Server | None) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=address is None)
    if address is not None:
        resolver.nameservers = [address[0]]
        resolver.port = address[1]
    resolver.cache = None
    return resolver


async def _query(name: dns.name.Name, rdtype: dns.rdatatype.RdataType, server: Server,
                 wait: float) -> dns.message.Message | str:
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=OUR_UDP_PAYLOAD)
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
            return f"bad response ({exc})"
        return response
    return error


async def _delegation(zone: dns.name.Name, parent: Server, wait: float
                      ) -> tuple[tuple[list[dns.name.Name], dict[dns.name.Name, list[str]]]
                                 | None, str]:
    """The NS names a parent server gives for `zone` (a referral, or its own authoritative
    NS RRset when it serves the child too) and the glue addresses beside them."""
    host, port = parent
    response = await _query(zone, dns.rdatatype.NS, parent, wait)
    if isinstance(response, str):
        return None, f"{host}:{port}: {response}"
    if response.rcode() != dns.rcode.NOERROR:
        return None, f"{host}:{port}: {dns.rcode.to_text(response.rcode()).lower()}"
    rrset = next((found for found in (*response.answer, *response.authority)
                  if found.rdtype == dns.rdatatype.NS and found.name == zone), None)
    if rrset is None:
        return None, f"{host}:{port}: no delegation of {zone}"
    targets = sorted(rdata.target for rdata in rrset)
    glue: dict[dns.name.Name, list[str]] = {}
    for found in response.additional:
        if found.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and found.name in targets:
            glue.setdefault(found.name, []).extend(rdata.address for rdata in found)
    return (targets, glue), ""


async def _addresses(target: dns.name.Name, resolver: dns.asyncresolver.Resolver) -> list[str]:
    found: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = await resolver.resolve(target, rdtype)
        except dns.exception.DNSException:
            continue
        found.extend(rdata.address for rdata in answer)
    return found


async def _ask_txt(owner: dns.name.Name, server: Server, wait: float) -> ServerTxt:
    response = await _query(owner, dns.rdatatype.TXT, server, wait)
    if isinstance(response, str):
        return ServerTxt(server, error=response)
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return ServerTxt(server, error=dns.rcode.to_text(rcode).lower())
    if not response.flags & dns.flags.AA:
        return ServerTxt(server, error="lame")
    rrset = response.get_rrset(response.answer, owner, dns.rdataclass.IN, dns.rdatatype.TXT)
    texts = frozenset(b"".join(rdata.strings).decode("utf-8", "replace")
                      for rdata in rrset or ())
    return ServerTxt(server, texts)


__all__ = ["ParentCheck", "ParentUnknown", "ServerDs", "ServerTxt", "TxtCheck",
           "check_delegated_txt", "check_parent_ds", "parent_servers"]
