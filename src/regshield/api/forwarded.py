"""The client of a request that came through a reverse proxy or load balancer.

Behind a proxy every connection comes from the proxy's address: every per-source limit (RDAP,
the API, the contact form, login throttling), the connection cap, the events' source address
and the local-host check of /metrics would see one requester, the proxy. `[http]
trusted_proxies` names the networks of the proxies in front of regshield; only for a
connection from one of them is `X-Forwarded-For` read, from its right end (the address the
nearest proxy saw) leftwards, past every address that is itself a trusted proxy, to the first
that is not: that is the client. Whatever a client writes into the header itself is to the
left of that, and is never believed. A connection from anywhere else is its own client, its
header ignored (a forged `X-Forwarded-For: 127.0.0.1` from the internet changes nothing).

An entry that is not an address ends the walk at the last address read (a trusted proxy's):
the request counts against that proxy rather than against a name its client chose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_HOPS: Final = 16  # entries read from the right of X-Forwarded-For, at most
_HEADER: Final = b"x-forwarded-for"


def is_trusted(address: str | None, trusted: tuple[Network, ...]) -> bool:
    """Whether `address` is one of the trusted proxies."""
    parsed = _address(address) if address else None
    return parsed is not None and any(parsed in network for network in trusted)


def forwarded_client(peer: str | None, headers: Iterable[tuple[bytes, bytes]],
                     trusted: tuple[Network, ...]) -> str | None:
    """The client of a request from `peer` with `headers` (lower-case names), behind the
    `trusted` proxies (see the module docstring)."""
    if not trusted or not is_trusted(peer, trusted):
        return peer
    values = [value for name, value in headers if name == _HEADER]
    if not values:
        return peer
    entries = b",".join(values).decode("latin-1").split(",")
    client = peer
    for entry in reversed(entries[-MAX_HOPS:]):
        address = _address(entry.strip())
        if address is None:
            break
        client = str(address)
        if not any(address in network for network in trusted):
            break
    return client


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, or an IPv6 address in brackets, either with a
    port (`192.0.2.1:4711`, `[2001:db8::1]:4711`)."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address
