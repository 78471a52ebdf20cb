"""`GET /metrics`: counters in the Prometheus text exposition format (version 0.0.4).

`regshield_rdds_queries_total{service, outcome, requester}` counts the queries to RDAP, WHOIS
and the contact form that this process's rate limiters let through (`answered`) or refused
(`refused`), for anonymous and authenticated requesters (security/limits.py);
`regshield_api_requests_total{outcome, requester}` the same for the API's own limit.
`regshield_rate_limit_fallbacks_total{store}` counts requests decided by this process's own
buckets because the shared store (Redis or the database) failed, and
`regshield_connections_refused_total{listener, reason}` the connections the WHOIS, HTTP and
sandbox registry (`sandbox`) listeners closed early (a source over its cap, an idle one
dropped for a newcomer, a deadline passed, a broken frame). A sudden rise of refusals is a
flood or a scraper.

Who may read: a client on the loopback interface (a Prometheus agent on the same host), or
registrar staff with an API token. Anyone else gets 401 or 403: the figures say how hard
the services are being hit, which is of use to whoever is hitting them. Behind a reverse
proxy on the same host every request comes from loopback, so such a proxy must not forward
/metrics.

The embedded DNS server (`regshield serve`, `[dns] listen`) adds:
- `regshield_dns_queries_total{transport, rcode}`: queries over `udp` and `tcp` by the rcode
  of the response (`NOERROR`, `NXDOMAIN`, `REFUSED`, ...; `none` when none was sent: dropped
  by RRL, or not a DNS query);
- `regshield_dns_rrl_responses_total{action}`: UDP responses the rate limiter let through
  (`answered`), sent truncated (`slipped`) or dropped (`dropped`), secondaries and exempt
  networks included in `answered`;
- `regshield_dns_answer_cache_hits_total`, `regshield_dns_answer_cache_misses_total` and the
  gauge `regshield_dns_answer_cache_entries`: the cached responses (per question for data,
  per proof for denials and referrals, and those the C UDP loop answers from, dns/udp.py);
  under a random-name flood the misses stay flat;
- `regshield_dns_tcp_connections_closed_total{reason}`: TCP connections the server closed
  on arrival (`per_source_limit`, `no_slot`) or to make room (`idle_evicted`).

The figures are read from the limiters and servers at each scrape (a collector of
prometheus_client), so nothing is counted twice and nothing is kept beside them.

The DNS figures add up every DNS process: the main process asks its `[dns] workers`
(dns/workers.py) for theirs at each scrape (a worker that has not answered within a few
seconds is left out of that scrape). The limit and listener figures add up every HTTP
process: with `[http] workers` above 1 (api/workers.py) a scrape is answered by the process
that accepted its connection, which adds its own counts to the other processes' as last
shared, a second or two old (api/figures.py); an HTTP worker's scrape shows the DNS figures
the main process last shared with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from regshield.api.deps import bearer, services_of
from regshield.api.figures import REQUESTERS, SERVICES, all_processes
from regshield.dns.server import DnsFigures
from regshield.errors import PermissionDenied
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services

router = APIRouter(include_in_schema=False)


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
    workers = [counted.figures for children in list(services.dns_workers)
               for counted in await children.counters()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LimiterCollector(services))
    registry.register(DnsCollector(services, workers))
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)


class LimiterCollector(Collector):
    """`regshield_rdds_queries_total` and the other limit counters of the rate limiters
    (security/limits.py) of every HTTP process (api/figures.py)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        figures = all_processes(self.services)
        family = CounterMetricFamily(
            "regshield_rdds_queries",
            "Queries to RDAP, WHOIS and the contact form, by rate-limit outcome and requester.",
            labels=["service", "outcome", "requester"])
        for service in SERVICES:
            for outcome in ("answered", "refused"):
                for requester in REQUESTERS:
                    family.add_metric([service, outcome, requester],
                                      figures.rdds.get((service, outcome, requester), 0))
        yield family
        requests = CounterMetricFamily(
            "regshield_api_requests", "API requests, by rate-limit outcome and requester.",
            labels=["outcome", "requester"])
        for outcome in ("answered", "refused"):
            for requester in REQUESTERS:
                requests.add_metric([outcome, requester],
                                    figures.api.get((outcome, requester), 0))
        yield requests
        fallbacks = CounterMetricFamily(
            "regshield_rate_limit_fallbacks",
            "Requests limited by one process alone because the shared store failed.",
            labels=["store"])
        fallbacks.add_metric([figures.store], figures.fallbacks)
        yield fallbacks
        refused = CounterMetricFamily(
            "regshield_connections_refused",
            "Connections closed early by a listener, by listener and reason.",
            labels=["listener", "reason"])
        for (listener, reason), count in sorted(figures.refused.items()):
            refused.add_metric([listener, reason], count)
        yield refused


class DnsCollector(Collector):
    """The `regshield_dns_*` figures of the embedded DNS servers of this process, and of its
    DNS workers (`workers`, as they reported them); in an HTTP worker, those the main process
    last shared (api/figures.py)."""

    def __init__(self, services: Services, workers: Iterable[DnsFigures] = ()) -> None:
        self.services = services
        self.workers = list(workers)

    def collect(self) -> Iterator[Metric]:
        servers = list(self.services.dns_servers)
        others = self.services.other_processes
        heard = others.dns_figures() if others is not None and not servers else None
        if not servers and heard is None:
            return
        total = DnsFigures()
        for figures in (*(server.figures() for server in servers), *self.workers,
                        *([heard] if heard is not None else [])):
            total.add(figures)
        queries = CounterMetricFamily(
            "regshield_dns_queries", "DNS queries by transport and response code.",
            labels=["transport", "rcode"])
        for transport in ("udp", "tcp"):
            for rcode, count in sorted(total.by_rcode(transport).items()):
                queries.add_metric([transport, rcode], count)
        yield queries
        rrl = CounterMetricFamily(
            "regshield_dns_rrl_responses", "UDP responses by response rate limiting action.",
            labels=["action"])
        for action in ("answered", "slipped", "dropped"):
            rrl.add_metric([action], total.rrl[action])
        yield rrl
        yield CounterMetricFamily(
            "regshield_dns_answer_cache_hits", "DNS responses served from the answer cache.",
            value=total.cache_hits)
        yield CounterMetricFamily(
            "regshield_dns_answer_cache_misses", "DNS responses built because none was cached.",
            value=total.cache_misses)
        yield GaugeMetricFamily(
            "regshield_dns_answer_cache_entries", "Responses held in the DNS answer cache.",
            value=total.cache_entries)
        closed = CounterMetricFamily(
            "regshield_dns_tcp_connections_closed", "DNS TCP connections the server closed, "
            "by reason.", labels=["reason"])
        for reason in ("per_source_limit", "no_slot", "idle_evicted"):
            closed.add_metric([reason], total.tcp_closed[reason])
        yield closed


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
