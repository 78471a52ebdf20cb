"""The DNS publisher: turns a hosted zone as stored into the signed zone that is served.

On each `dns:publish` effect (queued by flows/zones.py) it reads the zone, its keys and its
secondaries, brings the zone's signed form up to date (dnssec/incremental.py re-signs only what
changed), records the difference in the zone's journal (for IXFR), puts the new snapshot in the
`ZoneTable` the server and the transfer service answer from, and sends NOTIFY to every
secondary. It also refreshes signatures before they expire, asks the secondaries which serial
they serve, and records the transfers they make. Secrets (private keys, TSIG secrets) are
unsealed in memory only.

What is served is kept in the store (`PublishedZone`, `ZoneJournal`): before a new snapshot
is swapped in, its difference from the last one is written (and now and then the whole zone
as a new base), so that at start `restore` serves every zone's last published serial at
once, with its journal (IXFR keeps working across restarts), without signing anything. The
first publication of a restored zone takes its signed form back into the incremental signer
(`SignedZone.restore`) and carries on from there: only the edits made since and the
signatures that are due are signed. A zone whose keys changed meanwhile is signed afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

import dns.name
import dns.rdata
import dns.rdatatype
import dns.rrset
import dns.tsig
import structlog
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from sqlalchemy import Row, Text, and_, delete, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from regshield.dns import wireform
from regshield.dns.notify import NotifyResult, query_serial, send_notify
from regshield.dns.rrl import RateLimiter
from regshield.dns.transfer import TransferKind, TransferService, diff_zones
from regshield.dns.tsig import make_key
from regshield.dns.zonedata import (
    Fingerprint,
    ServedZone,
    ZoneDiff,
    ZoneTable,
    apply_diffs,
    fingerprint,
)
from regshield.dns.zonefile import soa_record
from regshield.dns.zonekeys import ROLE_FLAGS
from regshield.dnssec import apart
from regshield.dnssec.incremental import DEFAULT_LIFETIME, SignedZone
from regshield.dnssec.keys import AnyKey
from regshield.dnssec.seal import open_private_key
from regshield.dnssec.signer import signature_time
from regshield.eventlog.chain import EventDraft, append
from regshield.flows.zone_keys import policy_of
from regshield.rules.ds import ds_text
from regshield.rules.kasp import bootstrap_signal_names
from regshield.rules.zones import serial_add, serial_gt
from regshield.services import Services
from regshield.store.models import (
    PublishedZone,
    Secondary,
    TsigKey,
    Zone,
    ZoneJournal,
    ZoneKey,
    ZoneRRset,
)
from regshield.tasks import cancel_and_wait

JOURNAL_LIMIT = 200  # differences kept per zone; older serials get the whole zone
BASE_EVERY = 50
"""Journal rows after which the whole zone is stored again as the base a restart starts
from (well under JOURNAL_LIMIT, so the rows a restart replays are kept even while a new base
is being written)."""
SOA_TTL = 3600
REFRESH_WINDOW = DEFAULT_LIFETIME / 4  # SignedZone's refresh window, as the publisher signs
LARGE_ZONE = 20_000  # RRsets from which a publication pauses the garbage collector
# RRsets from which a stored zone answers SERVFAIL at start until the background has read it
# (seconds for 100,000 records); a smaller one is served at once and read at its first
# question if the background has not come to it (`Publisher.restore`: under a millisecond).
READ_BEFORE_SERVING = 2_000
# How long what `handle_ahead` read may stand for a zone's own reading (`_nothing_new`).
LOOKED_AHEAD_SECONDS = 30.0
READ_BATCH = 2_000  # stored RRset rows turned into values between two turns of the loop
SERIAL_CHECK_DELAY = 2.0  # seconds after a NOTIFY before asking the secondary what it serves
log = structlog.get_logger("regshield.dns")

RRsetKey = tuple[dns.name.Name, int]


@dataclass(frozen=True)
class _Secondary:
    id: int
    address: str
    port: int
    key: dns.tsig.Key


@dataclass(frozen=True)
class _Stored:
    """One zone as the store holds it, read in one transaction."""

    zone_id: int
    origin: dns.name.Name
    serial: int
    revision: int
    dnssec: bool
    denial: str
    # Every RRset (`complete`), or those changed since a revision, a deleted one as None.
    rrsets: dict[RRsetKey, dns.rrset.RRset | None]
    complete: bool
    keys: tuple[AnyKey, ...]
    # The DNSKEY records shown beside the keys' own without signing (pre-published, or kept
    # until caches forget their signatures).
    published: tuple[DNSKEY, ...]
    key_ids: tuple[str, ...]
    secondaries: tuple[_Secondary, ...]
    inputs: str  # `_inputs_of` the zone, read in the same transaction


@dataclass(frozen=True)
class Publication:
    """What one publication did: the serial now served, the difference, the NOTIFY results."""

    zone: str
    serial: int | None
    diff: ZoneDiff | None
    notified: dict[str, NotifyResult]


@dataclass
class _State:
    zone_id: int
    signed: SignedZone | None
    unsigned: dict[RRsetKey, dns.rrset.RRset]
    key_ids: tuple[str, ...]
    denial: str
    journal: list[ZoneDiff]
    revision: int
    # The RFC 9615 signals served (in the zone of the registrar's nameservers only).
    signals: set[RRsetKey] = field(default_factory=set)
    # Journal rows stored since the last base (None: the store holds no base of this state).
    since_base: int | None = None
    inputs: str | None = None  # `_inputs_of` the zone as last read (None: not known)


@dataclass(frozen=True)
class _Restored:
    """A zone served at start from the store, not yet taken back into the signer."""

    revision: int
    key_ids: tuple[str, ...]
    denial: str
    dnssec: bool
    since_base: int
    expires: int | None  # the earliest signature expiry (RRSIG time), None: unsigned
    soa: str  # the SOA served, with serial 0: a change of `[dns]` settings shows here
    inputs: str | None  # `_inputs_of` the zone when it was published (None: not known)


class Publisher:
    def __init__(self, services: Services, table: ZoneTable | None = None, *,
                 notify_timeout: float = 1.0, notify_retries: int = 3) -> None:
        self.services = services
        self.notify_timeout = notify_timeout
        self.notify_retries = notify_retries
        self.table = table if table is not None else ZoneTable()
        # Shared by reference with the server: TSIG key name -> key, zone -> keys allowed.
        self.keyring: dict[dns.name.Name, dns.tsig.Key] = {}
        self._allowed: dict[dns.name.Name, frozenset[dns.name.Name]] = {}
        self._secondaries: dict[dns.name.Name, tuple[_Secondary, ...]] = {}
        self._states: dict[dns.name.Name, _State] = {}
        self._restored: dict[dns.name.Name, _Restored] = {}
        # `handle_ahead`: by zone, when it was read, its revision, serial and inputs.
        self._looked_ahead: dict[dns.name.Name, tuple[float, int, int, str]] = {}
        self._signing: ProcessPoolExecutor | None = None  # dnssec/apart.py, when needed
        self._secondaries_notified: set[int] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._settling: asyncio.Task[None] | None = None  # `restore`'s reading of the rest
        self._loop: asyncio.AbstractEventLoop | None = None
        # The secondaries are never rate limited (their SOA queries, NOTIFY answers), nor the
        # networks `[dns.rrl] exempt_networks` names; None when `[dns.rrl]` turns RRL off.
        rrl = services.settings.dns.rrl
        self._rrl_exempt = tuple(str(network) for network in rrl.exempt_networks)
        self.rate_limiter = RateLimiter(
            rrl.responses_per_second, burst=rrl.responses_per_second * rrl.window,
            slip=rrl.slip, allow=self._rrl_exempt,
        ) if rrl.enabled else None
        self.transfers = TransferService(self.table, self.allowed_keys,
                                         on_transfer=self.transfer_served)
        # Called in a worker thread with each new snapshot before it is swapped in, and the
        # snapshot it replaces (or with each zone restored at start, and None): `serve` sets
        # dns/server.py `prepare_index` here, so the DNS server's index of a large zone is
        # never built on the event loop, and an edit's is made from the last one's.
        self.prepare: Callable[[ServedZone, ServedZone | None], None] | None = None
        # Whether what `restore` reads is frozen out of the garbage collector's reach once
        # read (`gc.freeze`, with every other object then alive): `serve` does, as it
        # freezes what its start made (processes.settle).
        self.freeze_restored = False
        # The GIL's switch interval while a large zone is published (None: left as it is):
        # `serve` shortens it, so that requests wait less on the publication's threads.
        self.switch_while_large: float | None = None
        # Awaited with the zone before NOTIFY goes out: other processes answering from copies
        # of the table (dns/workers.py) serve the new serial, and take the zone's new
        # secondaries' keys, before a secondary asks them.
        self.before_notify: Callable[[dns.name.Name], Awaitable[object]] | None = None
        dns_settings = services.settings.dns
        # The SOA every zone is published with (serial 0), as the settings give it.
        self._soa = _soa_text(dns_settings.nameservers[0], dns_settings.hostmaster)

    def allowed_keys(self, origin: dns.name.Name) -> Collection[dns.name.Name]:
        return self._allowed.get(origin, frozenset())

    # --- the outbox handler and the periodic work ----------------------------------------

    async def handle(self, services: Services, payload: dict[str, Any]) -> None:
        """The `dns:publish` outbox handler. At start, once the stored copies are read: the
        thousands a crash can leave queued would otherwise read them at the same time, one
        at a time on the event loop."""
        await self.settled()
        await self.publish(str(payload["zone"]))

    async def handle_ahead(self, services: Services, payloads: list[dict[str, Any]]) -> None:
        """The `dns:publish` items the outbox claimed together, before they run: whether each
        of their zones has anything new (`_nothing_new`) is read for all of them in three
        reads, not three per item. After a restart thousands are queued, most with nothing
        new. What is read is used once, by the next publication of the zone, and only soon:
        an edit made after this read queues a publication of its own, which reads again."""
        self._looked_ahead = {}
        await self.settled()  # as `handle` does, so that this reading is still fresh
        names = sorted({str(payload["zone"]) for payload in payloads})
        if len(names) < 2:  # one zone: its publication reads as much for itself
            return
        async with self.services.store.read() as session:
            rows = (await session.execute(select(*_ZONE_INPUTS).where(
                Zone.name.in_(names), Zone.deleted_at.is_(None), Zone.state == "active"
            ))).all()
            inputs = await _inputs_of_many(session, rows, self._soa) if rows else {}
        at = asyncio.get_running_loop().time()
        self._looked_ahead = {
            dns.name.from_text(row.name): (at, row.revision, row.serial, inputs[row.id])
            for row in rows}

    async def restore(self) -> int:
        """Serve the last published serial of every active zone the store holds one of, as it
        was (at start, before DNS answers); returns how many are served or loading. Nothing
        is signed: `load_all` then brings each one up to date.

        Only the zones' rows are read here; the stored copies are read in the background
        (`settled` waits for it; queued publications wait for it too), the large ones first.
        A small zone is served at once (`ZoneTable.defer`) and read at its first question if
        the background has not come to it, well under a millisecond; a large one
        (`READ_BEFORE_SERVING` RRsets or more: seconds for 100,000 records, which must not
        fall on the event loop) is loading meanwhile (SERVFAIL; `ZoneTable.load`). So DNS
        listens at once, thousands of small zones answer from the start, and one large zone
        holds none of them back."""
        self._loop = asyncio.get_running_loop()
        began = time.monotonic()
        async with self.services.store.read() as session:
            rows = (await session.execute(
                select(PublishedZone, Zone.name).join(Zone, Zone.id == PublishedZone.zone_id)
                .where(Zone.deleted_at.is_(None), Zone.state == "active"))).all()
            journals: dict[int, list[ZoneJournal]] = {}
            for entry in (await session.execute(
                    select(ZoneJournal).join(PublishedZone,
                                             PublishedZone.zone_id == ZoneJournal.zone_id)
                    .order_by(ZoneJournal.id))).scalars():
                journals.setdefault(entry.zone_id, []).append(entry)
            secondaries = await self._secondaries_of(session, None)
        large: list[tuple[PublishedZone, str]] = []
        small: list[tuple[PublishedZone, str]] = []
        for published, name in rows:
            origin = dns.name.from_text(name)
            self._set_secondaries(origin, secondaries.get(published.zone_id, ()), allow=False)
            if published.rrset_count >= READ_BEFORE_SERVING:
                large.append((published, name))
                self.table.load(origin)
            else:
                small.append((published, name))
                self.table.defer(origin, functools.partial(
                    self._read_restored, published, name, journals))
        self._allow_secondaries()
        log.info("dns.restored", zones=len(rows), loading=len(large), unread=len(small),
                 seconds=round(time.monotonic() - began, 3))
        if rows:  # the large zones first: a question reads a small one now, never a large one
            self._settling = asyncio.get_running_loop().create_task(
                self._read_stored(large + small, journals, began))
        return len(self.table)

    async def settled(self) -> None:
        """Wait until every zone `restore` served unread or loading has been read."""
        if self._settling is not None:
            await asyncio.shield(self._settling)

    async def _read_stored(self, rows: Sequence[tuple[PublishedZone, str]],
                           journals: Mapping[int, list[ZoneJournal]], began: float) -> None:
        """Read, in the background, the zones `restore` left loading or served unread (those
        a question reached first are read already)."""
        # A thread reads (and indexes) the zones a batch at a time: one hop per zone was
        # most of the time a small zone takes. No collection of cycles meanwhile, and what
        # was read is then frozen: it is kept (a snapshot replaced later is freed by
        # reference counting, as it holds no cycle), and each collection would walk every
        # object of it (seconds, with the event loop stopped, for a 100,000-record zone)
        # only to find it alive.
        paused = gc.isenabled()
        gc.disable()
        try:
            for batch in _batches(rows):
                batch = [row for row in batch if self._unread(dns.name.from_text(row[1]))]
                if not batch:
                    continue
                outcomes = await asyncio.to_thread(self._restore_batch, batch, journals)
                for (published, name), outcome in zip(batch, outcomes, strict=True):
                    origin = dns.name.from_text(name)
                    if not self._unread(origin):  # read at a question, or published, meanwhile
                        continue
                    served = self._take_restored(published, name, outcome, journals)
                    if served is None:
                        self.table.remove(origin)
                    elif self.table.is_loading(origin):
                        self.table.put(served)
                    else:
                        self.table.settle(origin, served)
        except Exception:  # never SERVFAIL for good: `load_all` signs those zones again
            log.exception("dns.restore_stopped")
            for origin in self.table.loading:
                self.table.remove(origin)
        finally:
            _resume_collections(paused, self.freeze_restored)
        log.info("dns.restored_read", zones=len(rows),
                 seconds=round(time.monotonic() - began, 3))

    def _unread(self, origin: dns.name.Name) -> bool:
        return self.table.is_loading(origin) or self.table.is_deferred(origin)

    def _read_restored(self, published: PublishedZone, name: str,
                       journals: Mapping[int, list[ZoneJournal]]) -> ServedZone | None:
        """A small zone served unread, read at its first question (on the event loop)."""
        [outcome] = self._restore_batch([(published, name)], journals)
        return self._take_restored(published, name, outcome, journals)

    def _take_restored(self, published: PublishedZone, name: str,
                       outcome: tuple[ServedZone, int | None, str] | Exception,
                       journals: Mapping[int, list[ZoneJournal]]) -> ServedZone | None:
        """The zone `_restore_batch` read, to be served as restored (None: a damaged copy,
        which `load_all` signs again)."""
        if isinstance(outcome, Exception):
            log.error("dns.restore_failed", zone=name, reason=str(outcome),
                      error_type=type(outcome).__name__)
            return None
        served, expires, soa = outcome
        self._restored[served.origin] = _Restored(
            published.revision, tuple(published.signing), published.denial,
            published.dnssec, sum(1 for entry in journals.get(published.zone_id, [])
                                  if entry.id > published.base_journal_id),
            expires, soa, published.inputs)
        return served

    def _restore_batch(self, batch: Sequence[tuple[PublishedZone, str]],
                       journals: Mapping[int, list[ZoneJournal]]
                       ) -> list[tuple[ServedZone, int | None, str] | Exception]:
        """In a thread: each zone of `batch` as last published, prepared to be served, or
        what stopped it being read."""
        outcomes: list[tuple[ServedZone, int | None, str] | Exception] = []
        for published, name in batch:
            try:
                restored = _restored_zone(dns.name.from_text(name), published,
                                          journals.get(published.zone_id, []))
                if self.prepare is not None:
                    self.prepare(restored[0], None)
            except Exception as exc:  # one damaged copy never stops a start
                outcomes.append(exc)
                continue
            outcomes.append(restored)
        return outcomes

    async def load_all(self) -> int:
        """Publish every hosted zone that `restore` did not serve as it stands (at start): a
        zone never published, or whose stored copy was unreadable, is signed; a restored one
        whose records changed since it was stored (its revision moved on; edits also queue
        their own publication) or whose SOA the settings changed gets the change. A restored
        zone with nothing to change is left as it is, not even read: its due signatures are
        `refresh_all`'s. Returns how many zones are served."""
        await self.settled()  # a restored zone's reading says whether it is as it stands
        async with self.services.store.read() as session:
            zones = (await session.execute(
                select(Zone.name, Zone.revision)
                .where(Zone.deleted_at.is_(None), Zone.state == "active"))).all()
        soa = self._soa
        async with self.services.store.write() as session:  # zones deleted while stopped
            await _drop_copies(session, Zone.deleted_at.is_not(None) | (Zone.state != "active"))
        for name, revision in zones:
            origin = dns.name.from_text(name)
            restored = self._restored.get(origin)
            if restored is not None and (restored.revision, restored.soa) == (revision, soa):
                continue
            before = self.table.get(origin)
            try:
                publication = await self.publish(name, notify=False)
            except Exception:  # the next edit or refresh of the zone tries again
                log.exception("dns.publish_failed", zone=name)
                continue
            # A zone restored and changed since (edits made while stopped, signatures due):
            # its secondaries are told of the new serial.
            if before is not None and publication.serial not in (None, before.serial):
                assert publication.serial is not None
                await self._notify_all(origin, publication.serial)
        return len(self.table)

    async def refresh_all(self) -> int:
        """Re-sign what expires soon in every signed zone; returns how many zones changed."""
        due = signature_time(self.services.clock.now() + REFRESH_WINDOW)
        for origin, restored in list(self._restored.items()):
            if restored.expires is not None and not serial_gt(restored.expires, due):
                async with self._lock:  # taken back into the signer to be refreshed
                    if origin in self._restored and origin not in self._states:
                        await self._resume(origin)
        changed = 0
        for origin in list(self._states):
            async with self._lock:
                state = self._states.get(origin)
                if state is None or state.signed is None:
                    continue
                diff = await asyncio.to_thread(state.signed.refresh, self.services.clock.now())
                if diff is None:
                    continue
                await self._serve(origin, state, diff)
            changed += 1
            await self._record_serial(origin, diff.to_serial)
            await self._notify_all(origin, diff.to_serial)
        return changed

    async def run_forever(self, refresh_seconds: float = 3600.0,
                          check_seconds: float = 60.0) -> None:
        """Refresh signatures and ask the secondaries for their serials, now and then."""
        ticks = 0
        while True:
            try:
                if ticks % max(1, int(refresh_seconds // check_seconds)) == 0:
                    await self.refresh_all()
                await self.check_secondaries()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dns.periodic_failed")
            ticks += 1
            await asyncio.sleep(check_seconds)

    # --- publishing ----------------------------------------------------------------------

    async def publish(self, name: str, *, notify: bool = True) -> Publication:
        self._loop = asyncio.get_running_loop()
        origin = dns.name.from_text(name)
        if self.table.is_loading(origin):  # its stored copy is being read (at start)
            await self.settled()
        async with self._lock:
            served = self.table.get(origin)
            if served is not None and await self._nothing_new(origin, served):
                return Publication(name, served.serial, None, {})
            state = self._states.get(origin)
            stored = None
            if state is None and origin in self._restored:
                # What the resume read (the changes since the restored revision) is what
                # this publication reads: not read twice.
                state, stored = await self._resume(origin)
            if stored is None:
                stored = await self._read(origin, since=state.revision if state else None)
            if stored is not None and not stored.complete and state is not None and (
                    _signs_afresh(state, stored)):
                stored = await self._read(origin, since=None)  # signed afresh: every RRset
            if stored is not None and not stored.complete and state is not None:
                for key in state.signals:  # bootstrap signals withdrawn since
                    if key not in stored.rrsets:
                        stored.rrsets[key] = None
            if stored is None:
                await self._forget(origin)
                self.table.remove(origin)
                self._states.pop(origin, None)
                self._allowed.pop(origin, None)
                self._secondaries.pop(origin, None)
                return Publication(name, None, None, {})
            new_secondaries = self._set_secondaries(origin, stored.secondaries)
            previous = self.table.get(origin)
            large = max(len(stored.rrsets), len(previous.rrsets) if previous else 0
                        ) >= LARGE_ZONE
            with (_collections_paused(large),
                  _switching(self.switch_while_large if large else None)):
                changed, diff = await self._bring_up_to_date(origin, stored)
                # Every signal is read each time (they are few), so this is the whole set.
                self._states[origin].signals = {
                    key for key, rrset in stored.rrsets.items()
                    if rrset is not None and _is_signal(key[0])}
                self._states[origin].inputs = stored.inputs
                if changed:
                    await self._serve(origin, self._states[origin], diff)
            served = self.table.get(origin)
            assert served is not None
        if served.serial != stored.serial:
            await self._record_serial(origin, served.serial)
        # Publications queued by several edits find the work done by the first: NOTIFY goes
        # out for a new serial or a new secondary, not once per queued publication.
        notified: dict[str, NotifyResult] = {}
        if notify and (changed or new_secondaries):
            notified = await self._notify_all(origin, served.serial,
                                              secondaries_changed=new_secondaries)
        return Publication(name, served.serial, diff, notified)

    async def _nothing_new(self, origin: dns.name.Name, served: ServedZone) -> bool:
        """Whether a publication of `origin` would find nothing to do: the zone's revision,
        serial and inputs (`_inputs_of`) are those of the snapshot served, and each of its
        secondaries has been sent a NOTIFY since this process started. A few small reads,
        nothing unsealed: publications queued by edits that an earlier one already served
        (many after a restart) then cost a millisecond, not the zone's whole reading."""
        state, restored = self._states.get(origin), self._restored.get(origin)
        known = (state.revision, state.inputs) if state is not None else (
            (restored.revision, restored.inputs) if restored is not None else None)
        if known is None or known[1] is None or any(
                s.id not in self._secondaries_notified
                for s in self._secondaries.get(origin, ())):
            return False
        settings = self.services.settings.dns
        name = origin.to_text()
        if _carries_signals(name, settings.nameservers):  # signals come from other zones
            return False
        ahead = self._looked_ahead.pop(origin, None)
        if ahead is not None and (
                asyncio.get_running_loop().time() - ahead[0] <= LOOKED_AHEAD_SECONDS):
            _, revision, serial, inputs = ahead
            if (revision, serial, inputs) == (known[0], served.serial, known[1]):
                return True  # read with the other publications claimed with this one
        async with self.services.store.read() as session:
            zone = (await session.execute(select(*_ZONE_INPUTS).where(
                Zone.name == name, Zone.deleted_at.is_(None), Zone.state == "active"
            ))).one_or_none()
            if zone is None or (zone.revision, zone.serial) != (known[0], served.serial):
                return False
            inputs = await _inputs_of(session, zone, self._soa)
        return inputs == known[1]

    def _allow_secondaries(self) -> None:
        addresses = {s.address for zone in self._secondaries.values() for s in zone}
        if self.rate_limiter is not None:
            self.rate_limiter.allow_only([*self._rrl_exempt, *sorted(addresses)])

    async def _bring_up_to_date(self, origin: dns.name.Name, stored: _Stored
                                ) -> tuple[bool, ZoneDiff | None]:
        """Whether the served zone must change, and the journal entry of the change: worked
        out in a worker thread (signing, comparing snapshots), never on the event loop."""
        return await asyncio.to_thread(self._bring_up_to_date_now, origin, stored,
                                       self.services.clock.now())

    def _bring_up_to_date_now(self, origin: dns.name.Name, stored: _Stored, now: datetime
                              ) -> tuple[bool, ZoneDiff | None]:
        state = self._states.get(origin)
        previous = self.table.get(origin)
        journal = state.journal if state else []
        rebuild = state is None or _signs_afresh(state, stored)
        if rebuild:
            assert stored.complete
            rrsets = dict(stored.rrsets)
            if previous is not None:
                # A zone signed afresh (new keys, new denial) is a new serial, even when no
                # edit moved the stored one: secondaries fetch a zone only for a newer one.
                rrsets[(origin, dns.rdatatype.SOA)] = _soa_after(
                    rrsets[(origin, dns.rdatatype.SOA)], previous.serial)
            signed = None
            if stored.dnssec:
                signed = self._sign_whole([r for r in rrsets.values() if r is not None],
                                          stored.keys, now,
                                          "nsec3" if stored.denial == "nsec3" else "nsec")
            live = {key: rrset for key, rrset in rrsets.items() if rrset is not None}
            self._states[origin] = _State(stored.zone_id, signed, live, stored.key_ids,
                                          stored.denial,
                                          journal, stored.revision)
            if previous is None:
                return True, None
            new = signed.served() if signed is not None else ServedZone(
                origin, stored.serial, tuple(live.values()))
            return True, diff_zones(previous, new)
        assert state is not None
        try:
            return self._apply_changes(origin, state, stored, previous, now)
        except BaseException:
            # The state moved to the stored revision before the signer failed: kept, it would
            # take the edit for served. Dropped, the next publication signs from the store.
            self._states.pop(origin, None)
            raise

    def _apply_changes(self, origin: dns.name.Name, state: _State, stored: _Stored,
                       previous: ServedZone | None, now: datetime
                       ) -> tuple[bool, ZoneDiff | None]:
        changes = _changes(state.unsigned, stored)
        state.revision = stored.revision
        rekey = state.key_ids != stored.key_ids
        if not changes and not rekey:
            return False, None
        for key, rrset in changes.items():
            if rrset is None:
                state.unsigned.pop(key, None)
            else:
                state.unsigned[key] = rrset
        if state.signed is None:
            new = ServedZone(origin, stored.serial, tuple(state.unsigned.values()))
            return True, diff_zones(previous, new) if previous is not None else None
        replace = [rrset for rrset in changes.values() if rrset is not None]
        delete = [key for key, rrset in changes.items() if rrset is None]
        if not rekey:
            return True, state.signed.apply(now, replace=replace, delete=delete)
        state.key_ids = stored.key_ids
        return True, state.signed.apply(now, replace=replace, delete=delete, keys=stored.keys,
                                        publish=stored.published)

    def _sign_whole(self, rrsets: list[dns.rrset.RRset], keys: Sequence[AnyKey],
                    now: datetime, nsec: Literal["nsec", "nsec3"]) -> SignedZone:
        """A zone signed afresh: a large one in the signing process (dnssec/apart.py), which
        is started when first needed and again after it died."""
        if self._signing is None and len(rrsets) >= apart.SIGN_APART_AT:
            self._signing = apart.signing_pool()
        try:
            return apart.sign_whole(rrsets, keys, now, nsec, self._signing)
        except BrokenProcessPool:
            log.error("dns.signing_process_failed")
            if self._signing is not None:
                self._signing.shutdown(wait=False, cancel_futures=True)
                self._signing = None
            return SignedZone(rrsets, keys, now, nsec)

    async def _serve(self, origin: dns.name.Name, state: _State, diff: ZoneDiff | None
                     ) -> None:
        """Store the new serial, then swap it in. A failure on the way (gathering, storing,
        indexing) leaves the old serial served and forgets the signer's state, so that the
        next publication starts again from what the store holds."""
        try:
            journaled = diff is not None and serial_gt(diff.to_serial, diff.from_serial)
            if journaled:
                assert diff is not None
                state.journal.append(diff)
                del state.journal[:-JOURNAL_LIMIT]
            journal = tuple(state.journal)
            if state.signed is not None:  # every RRset gathered: a worker thread's work
                served = await asyncio.to_thread(state.signed.served, journal)
            else:
                soa = state.unsigned[(origin, dns.rdatatype.SOA)]
                served = ServedZone(origin, int(soa[0].serial),
                                    tuple(state.unsigned.values()), journal)
            await self._store(origin, state, served, diff if journaled else None)
            if self.prepare is not None:
                await asyncio.to_thread(self.prepare, served, self.table.get(origin))
        except BaseException:
            self._states.pop(origin, None)
            raise
        self.table.put(served)

    async def _store(self, origin: dns.name.Name, state: _State, served: ServedZone,
                     diff: ZoneDiff | None) -> None:
        """Write what is about to be served: the difference as a journal row, or the whole
        zone as the base for a zone signed afresh (or first published). Every BASE_EVERY rows
        a new base is written in the background, after the swap: the row already holds the
        change, the base only shortens what a restart replays."""
        whole = state.since_base is None or diff is None

        def encoded() -> tuple[bytes | None, tuple[bytes, bytes] | None, Fingerprint]:
            return (wireform.encode(served.rrsets) if whole else None,
                    (wireform.encode(diff.removed), wireform.encode(diff.added))
                    if diff is not None else None,
                    fingerprint(served))

        base, parts, (_, rrset_count, record_count) = await asyncio.to_thread(encoded)
        now = self.services.clock.now()
        zone_id = state.zone_id
        async with self.services.store.write() as session:
            journal_id = 0
            if parts is not None:
                assert diff is not None
                entry = ZoneJournal(zone_id=zone_id, from_serial=diff.from_serial,
                                    to_serial=diff.to_serial, removed=parts[0],
                                    added=parts[1], published_at=now)
                session.add(entry)
                await session.flush()
                journal_id = entry.id
                kept = (await session.execute(
                    select(ZoneJournal.id).where(ZoneJournal.zone_id == zone_id)
                    .order_by(ZoneJournal.id.desc()).offset(JOURNAL_LIMIT).limit(1)
                )).scalar_one_or_none()
                if kept is not None:
                    await session.execute(delete(ZoneJournal).where(
                        ZoneJournal.zone_id == zone_id, ZoneJournal.id <= kept))
            elif base is not None:  # the base includes every row so far
                journal_id = (await session.execute(
                    select(func.coalesce(func.max(ZoneJournal.id), 0))
                    .where(ZoneJournal.zone_id == zone_id))).scalar_one()
            published = await session.get(PublishedZone, zone_id)
            if published is None:
                if base is None:  # dropped meanwhile: the next publication signs afresh
                    raise RuntimeError(f"the stored copy of {origin} is gone")
                published = PublishedZone(zone_id=zone_id)
                session.add(published)
            if base is not None:
                published.base, published.base_serial = base, served.serial
                published.base_journal_id = journal_id
            published.serial, published.revision = served.serial, state.revision
            published.dnssec, published.denial = state.signed is not None, state.denial
            published.signing = list(state.key_ids)
            published.inputs = state.inputs
            published.rrset_count, published.record_count = rrset_count, record_count
            published.published_at = now
        state.since_base = 0 if base is not None else (state.since_base or 0) + 1
        if state.since_base >= BASE_EVERY:
            state.since_base = 0
            self._later(functools.partial(self._rebase, zone_id, served, journal_id), 0)

    async def _rebase(self, zone_id: int, served: ServedZone, journal_id: int) -> None:
        """Store `served` (which the journal row `journal_id` led to) as the zone's base."""
        base = await asyncio.to_thread(wireform.encode, served.rrsets)
        async with self.services.store.write() as session:
            await session.execute(
                update(PublishedZone)
                .where(PublishedZone.zone_id == zone_id,
                       PublishedZone.base_journal_id < journal_id)
                .values(base=base, base_serial=served.serial, base_journal_id=journal_id))

    async def _forget(self, origin: dns.name.Name) -> None:
        """A zone no longer served: its stored snapshot and journal go with it."""
        self._restored.pop(origin, None)
        async with self.services.store.write() as session:
            await _drop_copies(session, Zone.name == origin.to_text())

    async def _resume(self, origin: dns.name.Name) -> tuple[_State | None, _Stored | None]:
        """Take a restored zone back into the signer without signing it: its snapshot holds
        the signatures, and the store's key plan says whether they are still the right ones
        (None: they are not, or the zone is gone; it is then published from the store).
        With the state, what the store holds changed since the restored revision."""
        restored = self._restored.pop(origin)
        served = self.table.get(origin)
        stored = await self._read(origin, since=restored.revision)
        if served is None or stored is None or stored.key_ids != restored.key_ids or (
                stored.denial != restored.denial or stored.dnssec != restored.dnssec):
            return None, None
        signed = None
        if stored.dnssec:
            try:
                signed = await asyncio.to_thread(
                    SignedZone.restore, served.rrsets, stored.keys,
                    "nsec3" if stored.denial == "nsec3" else "nsec")
            except ValueError as exc:
                log.error("dns.resume_failed", zone=origin.to_text(), reason=str(exc))
                return None, None
        unsigned: dict[RRsetKey, dns.rrset.RRset] = {
            (rrset.name, rrset.rdtype): rrset for rrset in served.rrsets
                    if rrset.rdtype not in _SIGNER_TYPES or signed is None}
        state = _State(stored.zone_id, signed, unsigned, restored.key_ids, restored.denial,
                       list(served.journal), restored.revision,
                       {key for key in unsigned if _is_signal(key[0])},
                       since_base=restored.since_base)
        self._states[origin] = state
        return state, stored

    async def _read(self, origin: dns.name.Name, since: int | None) -> _Stored | None:
        """The zone as stored; with `since`, only the RRsets changed after that revision (a
        deleted one as None), which keeps a publication of a large zone fast."""
        name = origin.to_text()
        settings = self.services.settings.dns
        sealer = self.services.sealer
        async with self.services.store.read() as session:
            # Only an active zone is served: one waiting for proof of control, or suspended
            # because its name was registered here by another account, is dropped.
            zone = (await session.execute(select(Zone).where(
                Zone.name == name, Zone.deleted_at.is_(None), Zone.state == "active"
            ))).scalar_one_or_none()
            if zone is None:
                return None
            query = select(ZoneRRset.owner, ZoneRRset.ttl, ZoneRRset.rtype, ZoneRRset.records
                           ).where(ZoneRRset.zone_id == zone.id)
            if since is not None:
                query = query.where(ZoneRRset.revision > since)
            # Read a few thousand rows at a time: turning rows into values (the records' JSON)
            # runs on the event loop, and 100,000 rows at once would stall it for a second.
            rows: list[tuple[str, int, str, list[str]]] = []
            result = await session.stream(query.execution_options(yield_per=READ_BATCH))
            async for batch in result.partitions(READ_BATCH):
                rows.extend((row.owner, row.ttl, row.rtype, row.records) for row in batch)
            key_rows = (await session.execute(
                select(ZoneKey).where(ZoneKey.zone_id == zone.id, ZoneKey.removed_at.is_(None))
                .order_by(ZoneKey.id))).scalars().all()
            data_keys = await sealer.data_keys(
                session, {row.data_key_id for row in key_rows if row.data_key_id is not None})
            secondaries = (await self._secondaries_of(session, [zone.id])).get(zone.id, ())
            inputs = await _inputs_of(session, zone, self._soa)
        rrsets: dict[RRsetKey, dns.rrset.RRset | None] = {}
        soa = dns.rrset.from_text_list(
            origin, SOA_TTL, "IN", "SOA",
            [soa_record(settings.nameservers[0], settings.hostmaster, zone.serial)])
        rrsets[(origin, dns.rdatatype.SOA)] = soa
        # Parsing the records is seconds for a large zone: a worker thread's work.
        rrsets.update(await asyncio.to_thread(_parsed, rows, since is not None))
        keys: list[AnyKey] = []
        signing: list[str] = []
        published: list[str] = []
        shown: tuple[DNSKEY, ...] = ()
        if zone.dnssec:
            signing, published, cds = _plan_keys(zone.key_plan, key_rows)
            by_id = {row.public_id: row for row in key_rows}
            for key_id in signing:
                key_row = by_id[key_id]
                if key_row.hsm_label is not None:  # signs inside the PKCS#11 token
                    keys.append(self.services.hsm().load_key_by_label(
                        key_row.hsm_label, ROLE_FLAGS[key_row.role]))
                    continue
                assert key_row.data_key_id is not None and key_row.private_sealed is not None
                keys.append(open_private_key(data_keys[key_row.data_key_id],
                                             key_row.private_sealed, key_row.public_id,
                                             ROLE_FLAGS[key_row.role]))
            dnskey_ttl = int(policy_of(zone).dnskey_ttl.total_seconds())
            shown = tuple(cast(DNSKEY, dns.rdata.from_text("IN", "DNSKEY", by_id[key_id].dnskey))
                          for key_id in published)
            if shown and since is None:  # ahead of signing (pre-publication)
                rrsets[(origin, dns.rdatatype.DNSKEY)] = dns.rrset.from_rdata_list(
                    origin, dnskey_ttl, shown)
            cds_sets = _cds_rrsets(origin, dnskey_ttl, cds, by_id)
            for cds_type in (dns.rdatatype.CDS, dns.rdatatype.CDNSKEY):
                if (origin, cds_type) in cds_sets:
                    rrsets[(origin, cds_type)] = cds_sets[(origin, cds_type)]
                elif since is not None:
                    rrsets[(origin, cds_type)] = None
        if _carries_signals(name, settings.nameservers):
            rrsets.update(await self._bootstrap_signals(zone))
        key_ids = (*signing, "published:", *published) if zone.dnssec else ()
        return _Stored(zone.id, origin, zone.serial, zone.revision, zone.dnssec, zone.denial,
                       rrsets, since is None, tuple(keys), shown, key_ids, secondaries,
                       inputs)

    async def _secondaries_of(self, session: AsyncSession, zone_ids: Collection[int] | None
                              ) -> dict[int, tuple[_Secondary, ...]]:
        """The secondaries of the zones (None: of every zone), each with its TSIG key
        unsealed."""
        query = (select(Secondary, TsigKey).join(TsigKey, Secondary.tsig_key_id == TsigKey.id)
                 .where(Secondary.deleted_at.is_(None)).order_by(Secondary.id))
        if zone_ids is not None:
            query = query.where(Secondary.zone_id.in_(zone_ids))
        rows = (await session.execute(query)).all()
        sealer = self.services.sealer
        data_keys = await sealer.data_keys(session, {key.data_key_id for _, key in rows})
        found: dict[int, list[_Secondary]] = {}
        for row, key in rows:
            secret = sealer.open(data_keys[key.data_key_id], key.secret_sealed,
                                 f"tsig_key:{key.name}").decode()
            found.setdefault(row.zone_id, []).append(
                _Secondary(row.id, row.address, row.port, make_key(key.name, secret)))
        return {zone_id: tuple(secondaries) for zone_id, secondaries in found.items()}

    def _set_secondaries(self, origin: dns.name.Name, secondaries: tuple[_Secondary, ...],
                         *, allow: bool = True) -> bool:
        """Allow the zone's secondaries to transfer it; whether any of them is new. Without
        `allow`, the rate limiter is told later (`_allow_secondaries`, once for many zones:
        it reads every zone's secondaries)."""
        self._secondaries[origin] = secondaries
        for secondary in secondaries:
            self.keyring[secondary.key.name] = secondary.key
        allowed = frozenset(s.key.name for s in secondaries)
        new = allowed != self._allowed.get(origin, frozenset()) or any(
            s.id not in self._secondaries_notified for s in secondaries)
        self._allowed[origin] = allowed
        if allow:
            self._allow_secondaries()
        return new

    async def _bootstrap_signals(self, zone: Zone) -> dict[RRsetKey, dns.rrset.RRset | None]:
        """RFC 9615 signals in a zone of the registrar's own nameservers: for each signed zone
        whose NS names one of them and that publishes CDS/CDNSKEY now, the same records at
        `_dsboot.<zone>._signal.<nameserver>`, so that a parent can bootstrap its DS
        securely."""
        suffix = f".{zone.name}"
        found: dict[RRsetKey, dns.rrset.RRset | None] = {}
        async with self.services.store.read() as session:
            rows = (await session.execute(
                select(Zone, ZoneRRset.records).join(ZoneRRset, and_(
                    ZoneRRset.zone_id == Zone.id, ZoneRRset.owner == Zone.name,
                    ZoneRRset.rtype == "NS"))
                .where(Zone.deleted_at.is_(None), Zone.dnssec.is_(True), Zone.id != zone.id,
                       Zone.state == "active",
                       sql_cast(ZoneRRset.records, Text).like(f'%{suffix}"%')))).all()
            for child, records in rows:
                cds = child.key_plan.get("cds")
                hosts = [host for host in records
                         if host.endswith(suffix) and not host.endswith(f".{child.name}")]
                if not cds or cds.get("delete") or not hosts:
                    continue
                keys = {row.public_id: row for row in (await session.execute(select(ZoneKey).where(
                    ZoneKey.zone_id == child.id, ZoneKey.removed_at.is_(None)))).scalars()}
                ttl = int(policy_of(child).dnskey_ttl.total_seconds())
                child_origin = dns.name.from_text(child.name)
                for owner in bootstrap_signal_names(child.name, hosts):
                    signal = dns.name.from_text(owner)
                    for (_, rdtype), rrset in _cds_rrsets(child_origin, ttl, cds, keys).items():
                        found[(signal, rdtype)] = dns.rrset.from_rdata_list(
                            signal, ttl, list(rrset))
        return found

    # --- secondaries ---------------------------------------------------------------------

    async def _notify_all(self, origin: dns.name.Name, serial: int, *,
                          secondaries_changed: bool = False) -> dict[str, NotifyResult]:
        secondaries = self._secondaries.get(origin, ())
        self._secondaries_notified.update(s.id for s in secondaries)
        # The workers are waited for when a NOTIFY goes out, or when the keys that may
        # transfer the zone changed (the last secondary removed: its key is refused at once).
        # A zone with no secondary is not waited for: the workers catch up alone, and the
        # outbox goes on with the next publication instead of waiting on their reading.
        if self.before_notify is not None and (secondaries or secondaries_changed):
            await self.before_notify(origin)
        if not secondaries:
            return {}
        results = await asyncio.gather(*(
            send_notify(origin, serial, s.address, s.port, s.key, self.notify_timeout,
                        self.notify_retries,
                        allowed=self.services.settings.dns.allowed_secondary_networks)
            for s in secondaries))
        now = self.services.clock.now()
        async with self.services.store.write() as session:
            for secondary, result in zip(secondaries, results, strict=True):
                row = await session.get(Secondary, secondary.id)
                if row is not None:
                    row.last_notify_at, row.last_notify_result = now, result.outcome
        self._later(functools.partial(self._check_zone, origin), SERIAL_CHECK_DELAY)
        return {f"{s.address}:{s.port}": r for s, r in zip(secondaries, results, strict=True)}

    async def check_secondaries(self) -> None:
        for origin in list(self._secondaries):
            await self._check_zone(origin)

    async def _check_zone(self, origin: dns.name.Name) -> None:
        secondaries = self._secondaries.get(origin, ())
        serials = await asyncio.gather(*(
            query_serial(origin, s.address, s.port, s.key,
                         allowed=self.services.settings.dns.allowed_secondary_networks)
            for s in secondaries),
            return_exceptions=True)
        now = self.services.clock.now()
        async with self.services.store.write() as session:
            for secondary, serial in zip(secondaries, serials, strict=True):
                row = await session.get(Secondary, secondary.id)
                if row is None:
                    continue
                row.served_checked_at = now
                row.served_serial = serial if isinstance(serial, int) else None

    def transfer_served(self, origin: dns.name.Name, peer: tuple[str, int],
                         key_name: dns.name.Name, kind: TransferKind, serial: int) -> None:
        loop = self._loop
        if loop is None:
            return
        record = functools.partial(self._record_transfer, origin, peer[0], key_name, kind,
                                   serial)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._later(record, 0)
        else:
            loop.call_soon_threadsafe(self._later, record, 0)

    async def _record_transfer(self, origin: dns.name.Name, address: str,
                               key_name: dns.name.Name, kind: str, serial: int) -> None:
        now = self.services.clock.now()
        ids = [s.id for s in self._secondaries.get(origin, ()) if s.address == address]
        async with self.services.store.write() as session:
            for secondary_id in ids:
                row = await session.get(Secondary, secondary_id)
                if row is not None:
                    row.last_transfer_at, row.last_transfer_kind = now, kind
                    row.last_transfer_serial = serial
            await append(session, [EventDraft(
                tag="dns:transfer:served", actor="system:dns", channel="system",
                occurred_at=now, account=None,
                summary={"zone": origin.to_text(), "address": address,
                         "tsig_key": key_name.to_text(), "kind": kind, "serial": serial})])

    async def _record_serial(self, origin: dns.name.Name, serial: int) -> None:
        """Keep the stored serial level with the served one (a signature refresh moves it)."""
        async with self.services.store.write() as session:
            zone = (await session.execute(select(Zone).where(
                Zone.name == origin.to_text(), Zone.deleted_at.is_(None)))).scalar_one_or_none()
            if zone is not None and serial_gt(serial, zone.serial):
                zone.serial = serial

    def _later(self, work: Callable[[], Awaitable[object]], delay: float) -> None:
        """Run `work()` in the background after `delay` (made only when it runs, so that work
        cancelled before it starts leaves nothing unawaited)."""
        async def run() -> None:
            if delay:
                await asyncio.sleep(delay)
            try:
                await work()
            except Exception:
                log.exception("dns.background_failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the background work started so far (recording transfers, serial checks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._signing is not None:
            self._signing.shutdown(wait=False, cancel_futures=True)
        await cancel_and_wait([*self._tasks, *([self._settling] if self._settling else [])])



@contextlib.contextmanager
def _collections_paused(pause: bool) -> Iterator[None]:
    """With `pause`, no cyclic garbage collection while a large zone is published: its
    parsing, signing and indexing make millions of objects, and each full collection they
    would set off walks every object of the process with the GIL held, the event loop
    stopped (up to a second each). Collections resume afterwards, for the cyclic garbage
    made meanwhile (SQL statements leave some); the snapshot replaced, which holds no cycle,
    was freed by reference counting already."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_switched: list[float] = []
"""One entry per large publication running with its own switch interval, each the interval
to put back once none runs."""


@contextlib.contextmanager
def _switching(interval: float | None) -> Iterator[None]:
    """The GIL's switch interval set to `interval` meanwhile (None: unchanged). Large
    publications running together share it; the interval from before the first is put back
    when the last ends. Entered and left on the event loop only."""
    if interval is None:
        yield
        return
    _switched.append(_switched[0] if _switched else sys.getswitchinterval())
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        previous = _switched.pop()
        if not _switched:
            sys.setswitchinterval(previous)


def _resume_collections(paused: bool, freeze: bool) -> None:
    """End a pause of cyclic collection that a restore began (`paused`: it did), with
    `freeze` keeping what was made meanwhile out of later collections (`gc.freeze`)."""
    if paused:
        if freeze:
            gc.freeze()
        gc.enable()


def _parsed(rows: Sequence[tuple[str, int, str, list[str]]], changes: bool
            ) -> dict[RRsetKey, dns.rrset.RRset | None]:
    """The RRsets of stored rows (owner, TTL, type, records); with `changes`, a row without
    records is an RRset deleted (None)."""
    rrsets: dict[RRsetKey, dns.rrset.RRset | None] = {}
    for owner, ttl, rtype, records in rows:
        if records:
            rrset = dns.rrset.from_text_list(owner, ttl, "IN", rtype, records)
            rrsets[(rrset.name, rrset.rdtype)] = rrset
        elif changes:  # deleted since
            rrsets[(dns.name.from_text(owner), dns.rdatatype.from_text(rtype))] = None
    return rrsets


async def _drop_copies(session: AsyncSession, zones: ColumnElement[bool]) -> None:
    """Delete the stored snapshots and journals of the zones `zones` selects."""
    ids = select(Zone.id).where(zones).scalar_subquery()
    await session.execute(delete(ZoneJournal).where(ZoneJournal.zone_id.in_(ids)))
    await session.execute(delete(PublishedZone).where(PublishedZone.zone_id.in_(ids)))


_SIGNER_TYPES = frozenset({dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3,
                           dns.rdatatype.NSEC3PARAM, dns.rdatatype.DNSKEY})


def _soa_text(nameserver: str, hostmaster: str) -> str:
    """The SOA a zone is published with under these settings, with serial 0."""
    return dns.rdata.from_text("IN", "SOA", soa_record(nameserver, hostmaster, 0),
                               origin=dns.name.root).to_text()


# The columns of a zone's row that `_nothing_new` reads (the ORM's object costs more).
_ZONE_INPUTS = (Zone.id, Zone.name, Zone.dnssec, Zone.denial, Zone.policy, Zone.state,
                Zone.key_plan, Zone.revision, Zone.serial)


# What `_inputs_of` reads of a zone's keys and secondaries (the zone's id first).
_KEY_INPUTS = (ZoneKey.zone_id, ZoneKey.public_id, ZoneKey.role, ZoneKey.algorithm,
               ZoneKey.dnskey, ZoneKey.data_key_id, ZoneKey.private_sealed, ZoneKey.hsm_label,
               ZoneKey.timers)
_SECONDARY_INPUTS = (Secondary.zone_id, Secondary.id, Secondary.address, Secondary.port,
                     TsigKey.name, TsigKey.algorithm, TsigKey.data_key_id,
                     TsigKey.secret_sealed)


async def _inputs_of(session: AsyncSession, zone: Zone | Row[Any], soa: str) -> str:
    """A digest of what a publication of `zone` reads besides its RRsets (whose changes
    its revision counts): the zone's row, its keys, its secondaries and their TSIG keys (as
    sealed), and the SOA the settings give (`soa`). Not its serial, which the publisher
    itself moves. Of the key plan and the keys' timers, only what the publication makes of
    them: which keys sign, which are only published, and the CDS (`_plan_keys`); a step of
    the plan that waits on the parent or moves a timer leaves the zone as served."""
    return (await _inputs_of_many(session, [zone], soa))[zone.id]


async def _inputs_of_many(session: AsyncSession, zones: Sequence[Zone | Row[Any]], soa: str
                          ) -> dict[int, str]:
    """`_inputs_of` each of `zones`, by zone id, in two reads whatever their number."""
    ids = [zone.id for zone in zones]
    keys: dict[int, list[Any]] = {zone_id: [] for zone_id in ids}
    key_rows = (await session.execute(
        select(*_KEY_INPUTS).where(ZoneKey.zone_id.in_(ids), ZoneKey.removed_at.is_(None))
        .order_by(ZoneKey.id))).all()
    for row in key_rows:
        keys[row.zone_id].append(row)
    secondaries: dict[int, list[Any]] = {zone_id: [] for zone_id in ids}
    secondary_rows = (await session.execute(
        select(*_SECONDARY_INPUTS).join(TsigKey, Secondary.tsig_key_id == TsigKey.id)
        .where(Secondary.zone_id.in_(ids), Secondary.deleted_at.is_(None))
        .order_by(Secondary.id))).all()
    for row in secondary_rows:
        secondaries[row.zone_id].append(row)
    return {zone.id: _digest_inputs(zone, keys[zone.id], secondaries[zone.id], soa)
            for zone in zones}


def _digest_inputs(zone: Zone | Row[Any], keys: Sequence[Row[Any]],
                   secondaries: Sequence[Row[Any]], soa: str) -> str:
    """`_inputs_of` from what was read: rows of `_KEY_INPUTS` and `_SECONDARY_INPUTS`."""
    signing, published, cds = _plan_keys(zone.key_plan or {}, keys) if zone.dnssec else (
        [], [], None)
    parts: list[Any] = [
        zone.id, zone.name, zone.dnssec, zone.denial, zone.policy, zone.state, soa, signing,
        published, json.dumps(cds, sort_keys=True), [tuple(row[1:-1]) for row in keys],
        [tuple(row[1:]) for row in secondaries]]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _carries_signals(name: str, nameservers: Sequence[str]) -> bool:
    """Whether the zone `name` holds a registrar nameserver's name, and with it the RFC 9615
    signals of other zones (`_bootstrap_signals`)."""
    return any(ns == name or ns.endswith(f".{name}") for ns in nameservers)


def _batches(rows: Sequence[Any], size: int = 4 << 20, count: int = 500
             ) -> Iterator[Sequence[Any]]:
    """`rows` of `PublishedZone` (first in each row) in batches of about `size` octets of
    stored copies, or `count` zones, whichever comes first."""
    start, octets = 0, 0
    for at, row in enumerate(rows):
        octets += len(row[0].base)
        if octets >= size or at + 1 - start >= count:
            yield rows[start:at + 1]
            start, octets = at + 1, 0
    if start < len(rows):
        yield rows[start:]


def _restored_zone(origin: dns.name.Name, published: PublishedZone,
                   journal: Sequence[ZoneJournal]) -> tuple[ServedZone, int | None, str]:
    """The zone as last published: its base, the journal rows after it replayed, and the
    journal kept for IXFR; with its earliest signature expiry and its SOA (serial 0)."""
    diffs = [ZoneDiff(entry.from_serial, entry.to_serial,
                      tuple(wireform.decode(entry.removed)), tuple(wireform.decode(entry.added)))
             for entry in journal]
    base = ServedZone(origin, published.base_serial, tuple(wireform.decode(published.base)))
    later = [diff for diff, entry in zip(diffs, journal, strict=True)
             if entry.id > published.base_journal_id]
    zone = apply_diffs(base, later, 0) if later else base
    if zone.serial != published.serial:
        raise ValueError(f"the journal leads to {zone.serial}, not {published.serial}")
    if fingerprint(zone) != (published.serial, published.rrset_count, published.record_count):
        raise ValueError("the zone read back is not the zone that was published")
    expirations = [int(rrsig.expiration) for rrset in zone.rrsets
                   if rrset.rdtype == dns.rdatatype.RRSIG for rrsig in rrset]
    # RRSIG times compare in serial number arithmetic (RFC 4034 section 3.1.5).
    earliest = functools.reduce(lambda a, b: b if serial_gt(a, b) else a, expirations) \
        if expirations else None
    soa_rrset = next((r for r in zone.rrsets if r.rdtype == dns.rdatatype.SOA), None)
    if soa_rrset is None or len(soa_rrset) != 1:
        raise ValueError("the stored zone has no SOA")
    soa = soa_rrset[0]
    served = ServedZone(origin, zone.serial, zone.rrsets, tuple(diffs[-JOURNAL_LIMIT:]))
    if not later:  # its RRsets are the stored base's: a DNS worker is sent those octets
        served.prepared["stored"] = published.base
    return served, earliest, soa.replace(serial=0).to_text()


def _is_signal(name: dns.name.Name) -> bool:
    return bool(name.labels) and name.labels[0].lower() == b"_dsboot"


def _soa_after(soa: dns.rrset.RRset | None, serial: int) -> dns.rrset.RRset:
    """`soa` with a serial after `serial` (RFC 1982), as it is when its own is after it."""
    assert soa is not None
    rdata = soa[0]
    if serial_gt(int(rdata.serial), serial):
        return soa
    return dns.rrset.from_rdata(soa.name, soa.ttl,
                                rdata.replace(serial=serial_add(serial, 1)))


def _signs_afresh(state: _State, stored: _Stored) -> bool:
    """Whether the zone is signed afresh rather than changed in place: a change of denial or
    of signing at all, or new zone-signing keys for a large zone (every signature is made
    again, which the signing process does, off the serving process; dnssec/apart.py). Other
    key changes are made in place: a key published or withdrawn re-signs the DNSKEY RRset,
    a new KSK the RRsets it signs, a new ZSK of a small zone its data."""
    if state.denial != stored.denial or (state.signed is None) == stored.dnssec:
        return True
    if state.signed is None or state.key_ids == stored.key_ids:
        return False
    return (len(state.unsigned) >= apart.SIGN_APART_AT
            and _zone_signers(state.signed.keys) != _zone_signers(stored.keys))


def _zone_signers(keys: Sequence[AnyKey]) -> set[tuple[int, int]]:
    """The keys that sign the zone's data (`SignedZone`: the ZSKs, or with none the KSKs)."""
    signers = [key for key in keys if not key.is_ksk] or keys
    return {(key.algorithm, key.key_tag) for key in signers}


def _changes(current: dict[RRsetKey, dns.rrset.RRset], stored: _Stored
             ) -> dict[RRsetKey, dns.rrset.RRset | None]:
    """What differs between the RRsets served and those stored (all, or changed ones)."""
    changes: dict[RRsetKey, dns.rrset.RRset | None] = {}
    for key, rrset in stored.rrsets.items():
        if key[1] == dns.rdatatype.DNSKEY:
            continue  # the signer's own; a change of keys signs the zone afresh
        before = current.get(key)
        if rrset is None:
            if before is not None:
                changes[key] = None
        elif before is None or before != rrset or before.ttl != rrset.ttl:
            changes[key] = rrset
    if stored.complete:
        changes.update({key: None for key in current
                        if key not in stored.rrsets and key[1] != dns.rdatatype.DNSKEY})
    return changes


def _plan_keys(plan: dict[str, Any], rows: Sequence[ZoneKey] | Sequence[Row[Any]]
               ) -> tuple[list[str], list[str], dict[str, Any] | None]:
    """The keys that sign, those only published, and the CDS to publish, by the zone's key
    plan (flows/zone_keys.py); before any plan, every key that has become active signs."""
    known = {row.public_id for row in rows}
    if not plan:
        return [row.public_id for row in rows if row.timers.get("active")], [], None
    signing = [key for key in dict.fromkeys([*plan.get("dnskey_signers", []),
                                             *plan.get("data_signers", [])]) if key in known]
    published = [key for key in plan.get("dnskey_set", []) if key in known
                 and key not in signing]
    return signing, published, plan.get("cds")


def _cds_rrsets(origin: dns.name.Name, ttl: int, cds: dict[str, Any] | None,
                rows: dict[str, ZoneKey]) -> dict[RRsetKey, dns.rrset.RRset]:
    """CDS and CDNSKEY at the apex (RFC 7344 section 4): the keys the parent should have a
    DS for, or the RFC 8078 section 4 delete records when DNSSEC is being turned off."""
    if cds is None:
        return {}
    if cds.get("delete"):
        cds_records, cdnskey_records = ["0 0 0 00"], ["0 3 0 AA=="]
    else:
        keys = [rows[key] for key in cds.get("keys", []) if key in rows]
        if not keys:
            return {}
        cds_records = [ds_text(origin.to_text(), key.dnskey) for key in keys]
        cdnskey_records = [key.dnskey for key in keys]
    return {
        (origin, dns.rdatatype.CDS): dns.rrset.from_text_list(origin, ttl, "IN", "CDS",
                                                              cds_records),
        (origin, dns.rdatatype.CDNSKEY): dns.rrset.from_text_list(origin, ttl, "IN", "CDNSKEY",
                                                                  cdnskey_records),
    }
