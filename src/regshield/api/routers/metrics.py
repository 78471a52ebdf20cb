"""`GET /metrics`: counters in the Prometheus text exposition format (version 0.0.4).

`regshield_rdds_queries_total{service, outcome, requester}` counts the queries to RDAP, WHOIS
and the contact form that this process's rate limiters let through (`answered`) or refused
(`refused`), for anonymous and authenticated requesters (rdds/limits.py). A sudden rise of
refusals is a flood or a scraper.

Who may read: a client on the loopback interface (a Prometheus agent on the same host), or
registrar staff with an API token. Anyone else gets 401 or 403: the figures say how hard
the services are being hit, which is of use to whoever is hitting them. Behind a reverse
proxy on the same host every request comes from loopback, so such a proxy must not forward
/metrics.

Written by hand rather than with prometheus_client: a few counters in one format.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials

from regshield.api.deps import bearer, services_of
from regshield.errors import PermissionDenied
from regshield.security.authentication import actor_for_bearer

router = APIRouter(include_in_schema=False)

SERVICES = ("rdap", "whois", "contact")
REQUESTERS = ("anonymous", "authenticated")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics")
async def metrics(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> PlainTextResponse:
    services = services_of(request)
    if not is_loopback(request.client.host if request.client else None):
        actor = await actor_for_bearer(services, credentials.credentials if credentials
                                       else None)
        if actor.kind != "staff":
            raise PermissionDenied("metrics are for registrar staff and the local host")
    lines = [
        "# HELP regshield_rdds_queries_total Queries to RDAP, WHOIS and the contact form, "
        "by rate-limit outcome and requester.",
        "# TYPE regshield_rdds_queries_total counter",
    ]
    for service in SERVICES:
        limiter = services.limiter(service)
        for outcome, counts in (("answered", limiter.answered), ("refused", limiter.refused)):
            for requester in REQUESTERS:
                lines.append(f'regshield_rdds_queries_total{{service="{service}",'
                             f'outcome="{outcome}",requester="{requester}"}} '
                             f"{counts[requester]}")
    return PlainTextResponse("\n".join(lines) + "\n", media_type=CONTENT_TYPE)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
