"""The rate-limit and listener counters of GET /metrics, added up over every HTTP process.

Each process counts what its own limiters and listeners decided (security/limits.py). With
`[http] workers` above 1 (api/workers.py) a scrape is answered by whichever process accepted
its connection, so each process must also know the others' counts: every child reports its
`LimitFigures` up its pipe each `SHARE_SECONDS`, and the main process sends each child the
sum of everyone else's (its own, the other children's, and those of children that have
exited, so that a total never falls when a child is replaced), with the DNS figures of its
DNS servers and workers. A scrape then adds the process's own counts, read at that moment,
to the others' as last heard, at most a couple of `SHARE_SECONDS` old.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from regshield.dns.server import DnsFigures
from regshield.services import Services

SERVICES = ("rdap", "whois", "contact")
REQUESTERS = ("anonymous", "authenticated")
OUTCOMES = ("answered", "refused")
SHARE_SECONDS = 1.0
MOST_KEYS = 32  # rows of one kind in a report: more than any process counts (the pipe's
# reports are small, processes.MAX_REPORT)


@dataclass
class LimitFigures:
    """One process's limit counters, or a sum of several, as numbers that add up.

    Keys: `rdds` by (service, outcome, requester), `api` by (outcome, requester), `refused`
    by (listener, reason); `fallbacks` counts requests decided by a process alone because the
    shared store failed (`store` names it).
    """

    rdds: dict[tuple[str, str, str], int] = field(default_factory=dict)
    api: dict[tuple[str, str], int] = field(default_factory=dict)
    fallbacks: int = 0
    store: str = ""
    refused: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, services: Services) -> LimitFigures:
        """This process's counts now."""
        figures = cls()
        for service in SERVICES:
            limiter = services.limiter(service)
            for outcome, counts in (("answered", limiter.answered),
                                    ("refused", limiter.refused)):
                for requester in REQUESTERS:
                    figures.rdds[service, outcome, requester] = int(counts[requester])
        limits = services.limits
        api = limits.limiter("api")
        for outcome, counts in (("answered", api.answered), ("refused", api.refused)):
            for requester in REQUESTERS:
                figures.api[outcome, requester] = int(counts[requester])
        figures.fallbacks = int(limits.buckets.fallbacks)
        figures.store = limits.buckets.store_name
        figures.refused = {key: int(count) for key, count in limits.connections_refused.items()}
        return figures

    def add(self, other: LimitFigures) -> None:
        for key, count in other.rdds.items():
            self.rdds[key] = self.rdds.get(key, 0) + count
        for pair, count in other.api.items():
            self.api[pair] = self.api.get(pair, 0) + count
        for pair, count in other.refused.items():
            self.refused[pair] = self.refused.get(pair, 0) + count
        self.fallbacks += other.fallbacks
        self.store = self.store or other.store

    def as_report(self) -> dict[str, Any]:
        """As JSON for the pipe between processes."""
        return {"rdds": [[*key, count] for key, count in sorted(self.rdds.items())],
                "api": [[*key, count] for key, count in sorted(self.api.items())],
                "fallbacks": self.fallbacks, "store": self.store,
                "refused": [[*key, count] for key, count
                            in sorted(self.refused.items())[:MOST_KEYS]]}

    @classmethod
    def of_report(cls, report: dict[str, Any]) -> LimitFigures:
        """From `as_report`'s JSON, keeping only well-formed entries of known names (it comes
        from another process of this installation, but a metric's labels are not the place
        to carry whatever it said)."""
        figures = cls()
        for row in _rows(report.get("rdds"), 3):
            if row[0] in SERVICES and row[1] in OUTCOMES and row[2] in REQUESTERS:
                figures.rdds[row[0], row[1], row[2]] = row[3]
        for row in _rows(report.get("api"), 2):
            if row[0] in OUTCOMES and row[1] in REQUESTERS:
                figures.api[row[0], row[1]] = row[2]
        for row in _rows(report.get("refused"), 2):
            figures.refused[row[0], row[1]] = row[2]
        fallbacks = report.get("fallbacks")
        figures.fallbacks = fallbacks if isinstance(fallbacks, int) and fallbacks >= 0 else 0
        store = report.get("store")
        figures.store = store if isinstance(store, str) and store.isidentifier() else ""
        return figures


def _rows(value: object, labels: int) -> Iterator[list[Any]]:
    """The rows of `value` that are `labels` short identifiers and a count."""
    if not isinstance(value, list):
        return
    for row in value[:MOST_KEYS]:
        if (isinstance(row, list) and len(row) == labels + 1
                and all(isinstance(label, str) and label.isidentifier() and len(label) <= 32
                        for label in row[:labels])
                and isinstance(row[labels], int) and row[labels] >= 0):
            yield row


class OtherProcesses(Protocol):
    """What a process knows of the other HTTP processes' counts (api/workers.py)."""

    def limit_figures(self) -> LimitFigures: ...

    def dns_figures(self) -> DnsFigures | None:
        """The DNS figures of the main process and its DNS workers, for a process that
        serves no DNS itself (None: none heard, or this process has them)."""


class Heard:
    """In an HTTP child: the others' counts, as the main process last sent them."""

    def __init__(self) -> None:
        self.figures = LimitFigures()
        self.dns: DnsFigures | None = None

    def limit_figures(self) -> LimitFigures:
        return self.figures

    def dns_figures(self) -> DnsFigures | None:
        return self.dns


def all_processes(services: Services) -> LimitFigures:
    """This process's counts now, plus the other HTTP processes' as last heard."""
    figures = LimitFigures.of(services)
    if services.other_processes is not None:
        figures.add(services.other_processes.limit_figures())
    return figures
