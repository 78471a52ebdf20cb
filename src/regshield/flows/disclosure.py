"""Disclosure requests (Registration Data Policy §10). Placeholder until the workflow lands:
no requester has an approved disclosure, so RDAP and WHOIS answer them as anonymous."""

from __future__ import annotations

from regshield.flows.context import Actor, RequestContext
from regshield.services import Services


async def disclosed_access(services: Services, actor: Actor, context: RequestContext,
                           domain: str, channel: str) -> frozenset[str]:
    """The contact roles ("registrant", "technical") that an approved, unexpired disclosure
    request of `actor` covers for `domain` (A-label); records the access as an event when any.
    `channel` is "rdap" or "whois"."""
    return frozenset()
