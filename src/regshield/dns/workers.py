"""DNS workers: more processes answering on the DNS port, each from its own copy of the zones.

With `[dns] workers = N`, `regshield serve` answers DNS in N processes: the main one, which
runs the publisher and a `DnsServer` of its own, and N - 1 children started here. Every one
binds the same UDP and TCP port with SO_REUSEPORT, and the kernel spreads datagrams and
connections over them by a hash of the source address and port.

The main process stays the only one that reads the store and signs; the children never hold
a private key. After each change to the `ZoneTable` (a `WatchedTable` tells of every put and
removal) and before each NOTIFY, it sends, for the zones named since the last batch, in one
pickled batch down a pipe to every child:
- a zone it has not sent before whole (its RRsets, serial and journal), and each later serial
  as the journal entries that lead to it (IXFR differences), which the child applies to its
  copy and checks against a count of RRsets and records; a child whose copy does not match
  says so and is sent the zone whole;
- the zones removed, the TSIG keys, which keys may transfer which zone, and the allow-list
  of the rate limiter (the secondaries);
- a mark, which the child acknowledges once everything before it is served. The publisher
  waits for those acknowledgements before it sends NOTIFY, so a secondary that asks any
  process for the SOA after a NOTIFY sees the new serial.

A child swaps each zone into its own `ZoneTable` in one assignment, as the publisher does, so
a query sees one whole serial. It answers everything the main process does, zone transfers
included (it holds the journal and the keys), and tells the main process of each transfer
served, which records it. A child started late, or restarted after it died, is sent every zone
before it binds the port, so it never answers REFUSED for a zone that is served. Children
answer the main process in JSON, never pickle: a child faces the network, and what it says
must not be able to run code in the process that holds the keys. Children are started,
watched and replaced as every worker process is (processes.py): a child exits when the pipe
from the main process closes, so none outlives it.

Each process limits its own UDP responses (RRL): a client whose queries come from many source
ports is counted by several processes, so it may receive up to N times the configured rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing.connection
import os
import pickle
import signal
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rrset
import dns.tsig
import structlog

from regshield.dns import wireform
from regshield.dns.rrl import RateLimiter
from regshield.dns.server import DnsFigures, DnsServer, prepare_index
from regshield.dns.transfer import TransferKind, TransferListener, TransferService
from regshield.dns.zonedata import ServedZone, ZoneDiff, ZoneTable, apply_diffs, fingerprint
from regshield.processes import Child, Workers, run_serving, send_report, settle

log = structlog.get_logger("regshield.dns")

CATCH_UP_TIMEOUT_SECONDS = 2.0

# What the main process tells a child, one pickled list of these per batch.
_Message = tuple[Any, ...]


class WatchedTable(ZoneTable):
    """A `ZoneTable` that calls `on_change(origin)` after every put and removal (on the event
    loop)."""

    def __init__(self, zones: Iterable[ServedZone] = ()) -> None:
        super().__init__(zones)
        self.on_change: Callable[[dns.name.Name], None] | None = None

    def put(self, zone: ServedZone) -> None:
        super().put(zone)
        if self.on_change is not None:
            self.on_change(zone.origin)

    def remove(self, origin: dns.name.Name) -> None:
        super().remove(origin)
        if self.on_change is not None:
            self.on_change(origin)

    def _settled(self, zone: ServedZone) -> None:
        if self.on_change is not None:
            self.on_change(zone.origin)


@dataclass(frozen=True)
class WorkerCounters:
    """What one process's server counted, for GET /metrics; its rate limiter's UDP responses
    sent, dropped and slipped among them."""

    pid: int
    figures: DnsFigures = field(default_factory=DnsFigures)

    @property
    def answered(self) -> int:
        return self.figures.rrl["answered"]

    @property
    def dropped(self) -> int:
        return self.figures.rrl["dropped"]

    @property
    def slipped(self) -> int:
        return self.figures.rrl["slipped"]


@dataclass
class _DnsChild(Child):
    acknowledged: int = 0
    counted: dict[int, WorkerCounters] = field(default_factory=dict)


class DnsWorkers(Workers):
    """The child processes answering DNS beside the main one, and what keeps them current.

    `table`, `keyring`, `allowed_keys` and `rate_limiter` are the publisher's (read, never
    changed here; each child limits with the same settings and allow-list, or not at all
    without one); `on_transfer` is told of each transfer a child serves.
    """

    module = __name__
    topic = "dns:workers"
    label = "a DNS worker"
    child_type = _DnsChild

    def __init__(
        self,
        count: int,
        table: WatchedTable,
        *,
        keyring: dict[dns.name.Name, dns.tsig.Key],
        allowed_keys: Callable[[dns.name.Name], Collection[dns.name.Name]],
        rate_limiter: RateLimiter | None,
        on_transfer: TransferListener | None = None,
        log_level: str = "info",
        tcp_connections_per_source: int | None = None,
    ) -> None:
        super().__init__(count, log_level=log_level)
        self.tcp_connections_per_source = tcp_connections_per_source
        self.table = table
        self.keyring = keyring
        self.allowed_keys = allowed_keys
        self.rate_limiter = rate_limiter
        self.on_transfer = on_transfer
        self.catch_up_seconds = CATCH_UP_TIMEOUT_SECONDS
        self.host = ""
        self.port = 0
        self._sent: dict[dns.name.Name, ServedZone] = {}
        self._stale: set[dns.name.Name] = set()
        # Zones to look at in the next batch: changed in the table, or about to be notified
        # (their allowed keys may have changed alone). Batches cost what changed, not the table.
        self._dirty: set[dns.name.Name] = set()
        self._keys: dict[dns.name.Name, tuple[bytes, str]] = {}
        self._allowed: dict[dns.name.Name, frozenset[dns.name.Name]] = {}
        self._allow: tuple[str, ...] = ()
        self._mark = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()

    async def start(self, host: str, port: int) -> None:
        """Start `count - 1` children answering on `host`:`port`, where the main process
        already listens with `reuse_port`; returns once every one listens."""
        self.host, self.port = host, port
        self.table.on_change = self._note
        self._dirty.update(zone.origin for zone in self.table)
        async with self._lock:
            await self._send_changes()
        await self.start_children()
        self.background(self._sync_forever())

    async def caught_up(self, origin: dns.name.Name | None = None) -> bool:
        """Send what changed (and what `origin` is now: its zone, the keys that may transfer
        it) and wait until every child serves it; False when one has not within
        `catch_up_seconds`."""
        timeout = self.catch_up_seconds
        if origin is not None:
            self._dirty.add(origin)
        async with self._lock:
            mark = await self._send_changes()
        children = self._dns_children(self.started_children())
        async with self._progress:
            try:
                async with asyncio.timeout(timeout):
                    await self._progress.wait_for(
                        lambda: all(c.acknowledged >= mark or not c.is_alive()
                                    for c in children))
            except TimeoutError:
                log.warning("dns:workers:behind", mark=mark, timeout=timeout)
                return False
        return True

    async def counters(self) -> list[WorkerCounters]:
        """Every child's counters, asked now (a child that has not answered within
        `catch_up_seconds` is left out)."""
        timeout = self.catch_up_seconds
        async with self._lock:
            self._mark += 1
            mark = self._mark
            payload = pickle.dumps([("count", mark)])
            children = self._dns_children(self.started_children())
            for child in children:
                self.deliver(child, payload)
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._progress.wait_for(
                        lambda: all(mark in c.counted or not c.is_alive()
                                    for c in children))
        return [c.counted.pop(mark) for c in children if mark in c.counted]

    async def close(self) -> None:
        self.table.on_change = None
        await super().close()

    # --- children ------------------------------------------------------------------------

    def arguments(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "log_level": self.log_level,
                "tcp_connections_per_source": self.tcp_connections_per_source,
                "limiter": None if self.rate_limiter is None else {
                    "responses_per_second": self.rate_limiter.responses_per_second,
                    "burst": self.rate_limiter.burst, "slip": self.rate_limiter.slip}}

    async def introduce(self, child: Child) -> None:
        """Send a new child everything served; it binds once it has read that."""
        messages: list[_Message] = [("keys", self._keys), ("allowed", self._allowed),
                                    ("allow", self._allow)]
        messages += [_whole(zone) for zone in self._sent.values()]
        messages.append(("start",))
        # The whole table may be large: pickled in a thread, not on the loop.
        self.deliver(child, await asyncio.to_thread(_pickle_batch, messages))

    @staticmethod
    def _dns_children(children: list[Child]) -> list[_DnsChild]:
        return [c for c in children if isinstance(c, _DnsChild)]

    def handle_report(self, child: Child, report: dict[str, Any]) -> None:
        """Acknowledged, counters, stale, a transfer served."""
        assert isinstance(child, _DnsChild)
        kind = report.get("kind")
        if kind == "acknowledged":
            child.acknowledged = max(child.acknowledged, int(report["mark"]))
            self._notify_progress()
        elif kind == "counters":
            child.counted[int(report["mark"])] = WorkerCounters(
                child.process.pid or 0, DnsFigures.of_report(report.get("figures", {})))
            self._notify_progress()
        elif kind == "stale":
            origin = dns.name.from_text(str(report["zone"]))
            if origin not in self._stale:
                log.warning("dns:workers:resent", zone=origin.to_text())
                self._stale.add(origin)
                self._sent.pop(origin, None)  # sent whole next time, to every child
                self._note(origin)
        elif kind == "transfer" and self.on_transfer is not None:
            self.on_transfer(dns.name.from_text(str(report["zone"])),
                             (str(report["address"]), int(report["port"])),
                             dns.name.from_text(str(report["key"])),
                             "IXFR" if report["transfer"] == "IXFR" else "AXFR",
                             int(report["serial"]))

    def _notify_progress(self) -> None:
        async def notify() -> None:
            async with self._progress:
                self._progress.notify_all()
        self.background(notify())

    # --- keeping children current --------------------------------------------------------

    def _note(self, origin: dns.name.Name) -> None:
        self._dirty.add(origin)
        self._wake.set()

    async def _sync_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                async with self._lock:
                    await self._send_changes()
            except Exception:
                log.exception("dns:workers:sync_failed")

    async def _send_changes(self) -> int:
        """Send every child what changed since the last batch, then a mark; returns the mark."""
        messages: list[_Message] = []
        dirty, self._dirty = self._dirty, set()
        allowed: dict[dns.name.Name, frozenset[dns.name.Name]] = {}
        for origin in dirty:
            zone, sent = self.table.get(origin), self._sent.get(origin)
            if zone is None:
                if sent is not None:
                    messages.append(("remove", origin))
                    del self._sent[origin]
                if self._allowed.pop(origin, None) is not None:
                    allowed[origin] = frozenset()
                continue
            if sent is not zone:
                # The journal entries since the serial the children hold, when the journal
                # reaches back that far (several publications may come between two batches).
                diffs = zone.diffs_since(sent.serial) if sent is not None else None
                if diffs and diffs[-1].to_serial == zone.serial:
                    messages.append(("diffs", origin, tuple(diffs), len(zone.journal), zone))
                else:
                    messages.append(_whole(zone))
                self._sent[origin] = zone
                self._stale.discard(origin)
            keys_allowed = frozenset(self.allowed_keys(origin))
            if self._allowed.get(origin, frozenset()) != keys_allowed:
                self._allowed[origin] = allowed[origin] = keys_allowed
        if allowed:
            messages.append(("allowed", allowed))
        if dirty:  # the keyring changes only with a publication
            keys = {name: (key.secret, str(key.algorithm)) for name, key in self.keyring.items()}
            if keys != self._keys:
                self._keys = keys
                messages.append(("keys", keys))
        allow = () if self.rate_limiter is None else tuple(
            str(network) for network in self.rate_limiter.allowed)
        if allow != self._allow:
            self._allow = allow
            messages.append(("allow", allow))
        self._mark += 1
        messages.append(("mark", self._mark))
        payload = await asyncio.to_thread(_pickle_batch, messages)
        for child in list(self._children):
            self.deliver(child, payload)
        return self._mark


def _whole(zone: ServedZone) -> _Message:
    return ("zone", zone)


def _pickle_batch(messages: list[_Message]) -> bytes:
    """The batch as sent: RRsets in the store's form (dns/wireform.py: a third of the size
    of dnspython's objects pickled, and faster both ways; a zone read back from the store
    goes as it was read), and a difference with the fingerprint of the zone it leads to
    rather than the zone."""
    sent: list[_Message] = []
    for message in messages:
        if message[0] == "zone":
            zone = message[1]
            stored = zone.prepared.get("stored")
            message = ("zone", zone.origin, zone.serial,
                       stored if stored is not None else wireform.encode(zone.rrsets),
                       _diffs_sent(zone.journal))
        elif message[0] == "diffs":
            kind, origin, diffs, length, zone = message
            message = (kind, origin, _diffs_sent(diffs), length, fingerprint(zone))
        sent.append(message)
    return pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL)


def _diffs_sent(diffs: Sequence[ZoneDiff]) -> list[tuple[int, int, bytes, bytes]]:
    return [(diff.from_serial, diff.to_serial, wireform.encode(diff.removed),
             wireform.encode(diff.added)) for diff in diffs]


def _diffs_read(sent: Sequence[tuple[int, int, bytes, bytes]]) -> tuple[ZoneDiff, ...]:
    return tuple(ZoneDiff(start, end, tuple(wireform.decode(removed)),
                          tuple(wireform.decode(added))) for start, end, removed, added in sent)


# --- the child process -----------------------------------------------------------------------


def child_main(descriptor: int, host: str, port: int, limiter: dict[str, float] | None,
               log_level: str, tcp_connections_per_source: int | None = None) -> None:
    """A worker process: answer DNS from what the main process sends down the socket
    `descriptor` until it closes."""
    from regshield import logs

    logs.configure(log_level)
    connection = multiprocessing.connection.Connection(descriptor)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    run_serving(_serve(connection, host, port, limiter, tcp_connections_per_source))


async def _serve(connection: multiprocessing.connection.Connection, host: str, port: int,
                 limiter: dict[str, float] | None,
                 tcp_connections_per_source: int | None) -> None:
    await _Worker(connection, limiter, tcp_connections_per_source).run(host, port)


class _Worker:
    """One child: its own table, keys and rate limiter, fed by the main process."""

    def __init__(self, connection: multiprocessing.connection.Connection,
                 limiter: dict[str, float] | None,
                 tcp_connections_per_source: int | None = None) -> None:
        self.connection = connection
        self.table = ZoneTable()
        self.keyring: dict[dns.name.Name, dns.tsig.Key] = {}
        self.allowed: dict[dns.name.Name, frozenset[dns.name.Name]] = {}
        self.rate_limiter = None if limiter is None else RateLimiter(
            limiter["responses_per_second"], burst=limiter["burst"], slip=int(limiter["slip"]))
        transfers = TransferService(
            self.table, lambda origin: self.allowed.get(origin, frozenset()),
            on_transfer=self._transfer_served)
        options: dict[str, Any] = (
            {} if tcp_connections_per_source is None
            else {"tcp_connections_per_source": tcp_connections_per_source})
        self.server = DnsServer(self.table, keyring=self.keyring, transfers=transfers,
                                rrl=self.rate_limiter, **options)
        self._latest: dict[dns.name.Name, ServedZone] = {}  # the reading thread's view
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._bind: asyncio.Future[None] = self._loop.create_future()

    async def run(self, host: str, port: int) -> None:
        self._loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        reader = threading.Thread(target=self._read, name="dns-worker-pipe", daemon=True)
        reader.start()
        stop = asyncio.ensure_future(self._stop.wait())
        waiting: list[asyncio.Future[Any]] = [self._bind, stop]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self._stop.is_set():
            return
        try:
            await self.server.start(host, port, reuse_port=True)
        except OSError as error:
            self._report({"kind": "failed",
                          "reason": f"DNS could not listen on {host}:{port}: {error.strerror}"})
            return
        self._report({"kind": "started", "pid": os.getpid()})
        settle()
        try:
            await stop
        finally:
            await self.server.close()

    def _read(self) -> None:
        """In a thread: read, unpickle and prepare each batch, then hand it to the loop, so
        a large zone arriving does not stop the answering."""
        while True:
            try:
                # Only the main process writes to this pipe (it started this one).
                batch = pickle.loads(self.connection.recv_bytes())  # noqa: S301
            except (EOFError, OSError):
                break
            prepared = [self._prepare(message) for message in batch]
            self._loop.call_soon_threadsafe(self._apply, prepared)
        self._loop.call_soon_threadsafe(self._stop.set)

    def _prepare(self, message: _Message) -> _Message:
        kind = message[0]
        if kind == "zone":
            _, origin, serial, stored, journal = message
            zone = self._latest[origin] = ServedZone(
                origin, serial, tuple(wireform.decode(stored)), _diffs_read(journal))
            prepare_index(zone)  # here, in the thread that reads the pipe, not on the loop
            return ("put", zone)
        if kind == "diffs":
            _, origin, sent, length, expected = message
            current = self._latest.get(origin)
            try:
                if current is None:
                    raise ValueError("no copy of the zone")
                zone = apply_diffs(current, _diffs_read(sent), length)
                if fingerprint(zone) != tuple(expected):
                    raise ValueError("the zone does not match its fingerprint")
            except ValueError as error:
                log.warning("dns:worker:stale", zone=origin.to_text(), reason=str(error))
                return ("stale", origin)
            self._latest[origin] = zone
            prepare_index(zone, current)  # `apply_diffs` keeps the RRsets that did not change
            return ("put", zone)
        if kind == "remove":
            self._latest.pop(message[1], None)
        return message

    def _apply(self, batch: list[_Message]) -> None:
        for message in batch:
            kind = message[0]
            if kind == "put":
                self.table.put(message[1])
            elif kind == "remove":
                self.table.remove(message[1])
            elif kind == "stale":
                self._report({"kind": "stale", "zone": message[1].to_text()})
            elif kind == "keys":
                keys = {name: dns.tsig.Key(name, secret, algorithm)
                        for name, (secret, algorithm) in message[1].items()}
                self.keyring.clear()
                self.keyring.update(keys)
            elif kind == "allowed":  # an empty set: none (the zone is gone, or has none)
                for origin, names in message[1].items():
                    if names:
                        self.allowed[origin] = names
                    else:
                        self.allowed.pop(origin, None)
            elif kind == "allow" and self.rate_limiter is not None:
                self.rate_limiter.allow_only(message[1])
            elif kind == "start" and not self._bind.done():
                self._bind.set_result(None)
            elif kind == "mark":
                self._report({"kind": "acknowledged", "mark": message[1]})
            elif kind == "count":
                self._report({"kind": "counters", "mark": message[1],
                              "figures": dataclasses.asdict(self.server.figures())})

    def _transfer_served(self, origin: dns.name.Name, peer: tuple[str, int],
                         key_name: dns.name.Name, kind: TransferKind, serial: int) -> None:
        # Called from the thread that rendered the transfer.
        self._loop.call_soon_threadsafe(self._report, {
            "kind": "transfer", "zone": origin.to_text(), "address": peer[0], "port": peer[1],
            "key": key_name.to_text(), "transfer": kind, "serial": serial})

    def _report(self, report: dict[str, Any]) -> None:
        send_report(self.connection, report)
