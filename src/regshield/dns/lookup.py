"""What the DNS serves now for a customer's zone: its DNSKEY RRset, asked of a resolver.

`live_dnskeys` asks the configured resolver (HOST:PORT) or, without one, the system's
resolvers, with the DO bit set, no cache, and TCP when the UDP answer is truncated. The keys
cross this module's boundary as presentation text (`257 3 13 <key>`); a zone that publishes no
DNSKEY RRset gives an empty list, and a lookup that fails gives a kind of error and a short
message a customer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: no fragmented UDP answers


class LookupFailure(StrEnum):
    TIMEOUT = "timeout"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    NXDOMAIN = "nxdomain"
    UNREACHABLE = "unreachable"
    FAILED = "failed"


@dataclass(frozen=True)
class LiveKeys:
    """The DNSKEY RRset of `zone` as served now, or why it could not be read.

    `records` is empty both for an unsigned zone (no error) and for a failed lookup (`error`
    set, `message` saying what happened).
    """

    zone: str
    records: tuple[str, ...] = ()
    error: LookupFailure | None = None
    message: str = ""

    @property
    def signed(self) -> bool:
        return self.error is None and bool(self.records)


async def live_dnskeys(
    zone: str,
    resolver: tuple[str, int] | None,
    timeout: float = 3.0,  # noqa: ASYNC109 - the resolver's own lifetime, spent on retries
) -> LiveKeys:
    """The DNSKEY RRset of `zone` (`example.com`, ASCII form), asked of `resolver` (host and
    port; None for the system's resolvers), giving up after `timeout` seconds in all."""
    name = dns.name.from_text(zone)
    where = f"{resolver[0]}:{resolver[1]}" if resolver else "the system's resolvers"
    try:
        asker = _resolver(resolver, timeout)
    except dns.resolver.NoResolverConfiguration:
        return LiveKeys(zone, error=LookupFailure.UNREACHABLE,
                        message="no resolver is configured on this system")
    try:
        answer = await asker.resolve(name, dns.rdatatype.DNSKEY, raise_on_no_answer=False,
                                     search=False)
    except dns.resolver.NXDOMAIN:
        return LiveKeys(zone, error=LookupFailure.NXDOMAIN,
                        message=f"{zone} does not exist (NXDOMAIN from {where})")
    except dns.resolver.LifetimeTimeout:
        return LiveKeys(zone, error=LookupFailure.TIMEOUT,
                        message=f"no answer from {where} within {timeout:g} s")
    except dns.resolver.NoNameservers as failure:
        return _failure(zone, where, failure)
    except dns.exception.DNSException as failure:
        return LiveKeys(zone, error=LookupFailure.FAILED,
                        message=f"asking {where} failed: {failure}")
    rrset = answer.rrset
    if rrset is None or rrset.name != name:
        return LiveKeys(zone)  # no DNSKEY RRset at the name: an unsigned zone
    return LiveKeys(zone, tuple(sorted(rdata.to_text() for rdata in rrset)))


def _resolver(address: tuple[str, int] | None,
              timeout: float) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=address is None)
    if address is not None:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(address[0], address[1])]
    resolver.use_edns(0, dns.flags.DO, EDNS_PAYLOAD)
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None  # what is served now, not what was served a TTL ago
    resolver.retry_servfail = False
    return resolver


def _failure(zone: str, where: str, failure: dns.resolver.NoNameservers) -> LiveKeys:
    """Every server failed: report the last answer's rcode, or the network error."""
    errors = failure.kwargs.get("errors") or []
    for _server, _tcp, _port, error, response in reversed(errors):
        if isinstance(response, dns.message.Message):
            rcode = response.rcode()
            if rcode == dns.rcode.SERVFAIL:
                return LiveKeys(zone, error=LookupFailure.SERVFAIL, message=(
                    f"SERVFAIL from {where} for the DNSKEY RRset of {zone}: its servers "
                    "fail, or its signatures do not validate"))
            if rcode == dns.rcode.REFUSED:
                return LiveKeys(zone, error=LookupFailure.REFUSED,
                                message=f"{where} refused to answer for {zone} (REFUSED)")
            return LiveKeys(zone, error=LookupFailure.FAILED, message=(
                f"{dns.rcode.to_text(rcode)} from {where} for {zone}"))
        if isinstance(error, OSError):
            return LiveKeys(zone, error=LookupFailure.UNREACHABLE,
                            message=f"{where} could not be reached: {error.strerror or error}")
    return LiveKeys(zone, error=LookupFailure.FAILED, message=f"asking {where} failed: {failure}")
