"""Talking to secondaries as their primary: NOTIFY of a new serial, and asking what they serve.

`send_notify` tells a secondary that a zone has a new serial (RFC 1996), TSIG-signed, and
retransmits with a doubling timeout until it answers; its `NotifyResult` says how the
secondary answered and how long that took. `query_serial` asks a secondary which serial it
serves, so the lag of each secondary behind the primary can be measured.

Both check the address again before sending (rules/addresses.py, with the networks the
configuration allows now): a secondary stored while its network was allowed gets nothing once
the configuration no longer allows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from regshield.rules.addresses import Network, destination_problem

NotifyOutcome = Literal["answered", "refused", "timeout"]
QUERY_TIMEOUT = 2.0


@dataclass(frozen=True)
class NotifyResult:
    """How a secondary took a NOTIFY.

    `answered`: it acknowledged (NOERROR). `refused`: it answered with an error, or its answer
    failed TSIG verification (`detail` says which), or its address may not receive NOTIFY
    (nothing was sent: `attempts` is 0). `timeout`: no answer after every attempt
    (`detail` names the error when the NOTIFY could not even be sent).
    `round_trip` is the seconds from the last attempt's sending to its answer.
    """

    outcome: NotifyOutcome
    attempts: int
    round_trip: float | None = None
    rcode: dns.rcode.Rcode | None = None
    detail: str = ""


async def send_notify(
    origin: dns.name.Name,
    serial: int,
    address: str,
    port: int = 53,
    key: dns.tsig.Key | None = None,
    timeout: float = 1.0,  # noqa: ASYNC109 - the first retransmission timer, not a deadline
    retries: int = 3,
    *,
    allowed: Collection[Network] = (),
) -> NotifyResult:
    """Tell the secondary at `address` that `origin` now has `serial` (RFC 1996 §3), unless
    the address is not public and not in the `allowed` networks (`[dns]
    allowed_secondary_networks`).

    The first attempt waits `timeout` seconds for an answer, each retransmission twice as long
    as the one before, `retries` retransmissions at most. The SOA in the answer section carries
    the new serial: a secondary reads only the serial from it (RFC 1996 §3.7), and skips the
    transfer when it already serves that serial.
    """
    if retries < 0 or timeout <= 0:
        raise ValueError("retries must be 0 or more and timeout positive")
    problem = destination_problem(address, allowed)
    if problem is not None:
        return NotifyResult("refused", 0, detail=f"not sent: the address {problem}")
    message = dns.message.make_query(origin, dns.rdatatype.SOA)
    message.flags = dns.flags.AA
    message.set_opcode(dns.opcode.NOTIFY)
    message.answer.append(_soa_hint(origin, serial))
    if key is not None:
        message.use_tsig(key)
    wait = timeout
    failure = ""
    for attempt in range(1, retries + 2):
        started = time.monotonic()
        try:
            answer = await dns.asyncquery.udp(message, address, timeout=wait, port=port)
        except dns.exception.Timeout:
            wait *= 2
            continue
        except OSError as exc:
            # Unreachable for now (no route, port closed): wait as for a lost answer.
            failure = f"could not send: {exc!r}"
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
            wait *= 2
            continue
        except dns.tsig.PeerError as exc:
            return NotifyResult("refused", attempt, time.monotonic() - started,
                                dns.rcode.NOTAUTH, f"TSIG error from the secondary: {exc!r}")
        except dns.exception.DNSException as exc:
            return NotifyResult("refused", attempt, time.monotonic() - started,
                                detail=f"answer not accepted: {exc!r}")
        round_trip = time.monotonic() - started
        rcode = answer.rcode()
        if rcode != dns.rcode.NOERROR:
            return NotifyResult("refused", attempt, round_trip, rcode, dns.rcode.to_text(rcode))
        return NotifyResult("answered", attempt, round_trip, rcode)
    return NotifyResult("timeout", retries + 1, detail=failure)


async def query_serial(
    origin: dns.name.Name,
    address: str,
    port: int = 53,
    key: dns.tsig.Key | None = None,
    *,
    allowed: Collection[Network] = (),
) -> int | None:
    """The serial of `origin` the server at `address` serves, or None when it gives none.

    None covers an address that is not public and not in the `allowed` networks (nothing is
    sent), a timeout, an error answer, an answer failing TSIG verification and an answer
    without the zone's SOA (a secondary that has not transferred the zone yet). The answer is
    awaited `QUERY_TIMEOUT` seconds at most.
    """
    if destination_problem(address, allowed) is not None:
        return None
    message = dns.message.make_query(origin, dns.rdatatype.SOA)
    message.flags = 0  # an authoritative question, not a recursive one
    if key is not None:
        message.use_tsig(key)
    try:
        answer = await dns.asyncquery.udp(message, address, timeout=QUERY_TIMEOUT, port=port)
    except (dns.exception.DNSException, OSError):
        return None
    if answer.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in answer.answer:
        if rrset.name == origin and rrset.rdtype == dns.rdatatype.SOA and len(rrset) == 1:
            serial: int = rrset[0].serial
            return serial
    return None


def _soa_hint(origin: dns.name.Name, serial: int) -> dns.rrset.RRset:
    """A SOA record carrying `serial`; its other fields are never read by the secondary."""
    return dns.rrset.from_text(
        origin, 0, dns.rdataclass.IN, dns.rdatatype.SOA,
        f"{origin.to_text()} {origin.to_text()} {serial} 0 0 0 0",
    )
