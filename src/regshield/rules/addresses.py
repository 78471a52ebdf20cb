"""Which addresses regshield sends DNS traffic to on a customer's or operator's word.

A secondary gets NOTIFY and SOA queries from the primary, so an address stored as a secondary
is a destination this process sends packets to. Only globally reachable unicast addresses
qualify: loopback, private (RFC 1918, ULA), shared (RFC 6598), link-local, multicast,
unspecified, reserved and documentation addresses would let the DNS service probe or poke the
registrar's own network. An administrator may allow networks of their own (`[dns]
allowed_secondary_networks`); unspecified and multicast addresses are never a destination.
"""

from __future__ import annotations

from collections.abc import Collection
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def destination_problem(address: str, allowed: Collection[Network] = ()) -> str | None:
    """Why `address` may not receive regshield's DNS traffic, or None when it may.

    `allowed` holds the networks an administrator opened; `address` must be an IP address.
    """
    ip = ip_address(address)
    kind = _never_a_destination(ip)
    if kind is not None:
        return f"must be a unicast address, not {kind} ({ip})"
    if any(ip.version == network.version and ip in network for network in allowed):
        return None
    kind = _not_public(ip)
    if kind is None:
        return None
    return (f"must be a public address, not {kind} ({ip}); an administrator may allow its "
            "network in [dns] allowed_secondary_networks")


def _never_a_destination(ip: Address) -> str | None:
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    return None


def _not_public(ip: Address) -> str | None:
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped address"
        if ip.sixtofour is not None or ip.teredo is not None:
            return "a tunnel address that embeds an IPv4 address"
        if ip.is_site_local:
            return "a site-local address"
    checks = (("a loopback address", ip.is_loopback), ("a link-local address", ip.is_link_local),
              ("a private address", any(ip in network for network in _PRIVATE)),
              ("a documentation address", any(ip in network for network in _DOCUMENTATION)),
              ("a reserved address", ip.is_reserved),
              ("an address that is not globally reachable", ip.is_private or not ip.is_global))
    return next((kind for kind, applies in checks if applies), None)


_PRIVATE = tuple(ip_network(text) for text in (  # RFC 1918, RFC 4193 (ULA)
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_DOCUMENTATION = tuple(ip_network(text) for text in (  # RFC 5737, RFC 3849
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))
