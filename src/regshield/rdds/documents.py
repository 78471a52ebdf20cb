"""Anonymous RDAP domain documents: rendered when their data changes, served from memory.

What an anonymous requester sees of a domain changes only when the domain, one of its contacts
or the registrar's record changes, so it is rendered then, not per query, as the DNS publisher
signs a zone when it changes rather than per DNS query:

- `rdap_documents` (store) holds each sponsored domain's anonymous answer as served: the JSON
  bytes and their strong ETag, keyed by name. A `Materializer` in `regshield serve` renders the
  domains that have no document (new, changed, or never rendered) in the background, in
  batches; the transaction that changes a domain deletes its document
  (store/rdap_changes.py), so a stale document is never read from the store.
- `DocumentCache` keeps documents in this process's memory (least recently used first out,
  at most `MEMORY_BYTES`). It checks the store's generation counter before answering when it
  last did so more than `CHECK_SECONDS` ago, or at once after this process committed a change,
  and drops what the changes since then touched. A change committed by any process is therefore
  never served from here more than `CHECK_SECONDS` later.
- A name with no document (unknown, or not rendered yet) is answered by the dynamic path
  (rdds/record.py), which keeps no state for names it does not know. To answer a flood of
  names never registered without a read each, a cache also learns every sponsored name at
  start (`load_names`, up to `MAX_NAMES`) and keeps the set current from the same changes
  (a domain a change touched is read again: sponsored now or not); a name outside it is
  unknown. Nothing is kept per name asked.

A document's `site` is a digest of the settings it links to: one rendered under other
settings (after a change of the public or terms URL and a restart) is not served, and is
rendered again. Redaction is the dynamic path's: `render_anonymous` is `present` for the
anonymous persona and `domain_response` for the canonical query URL; the one difference is
the "last update of RDAP database" event, which carries the time the document was rendered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime
from enum import Enum
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import structlog
from sqlalchemy import and_, bindparam, delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.config import Settings
from regshield.rdds.rdap import Site, domain_response
from regshield.rdds.record import SPONSORED_STATES, DomainRecord, load_domains_after, present
from regshield.rules.redaction import Persona
from regshield.services import Services
from regshield.store.engine import Store
from regshield.store.models import Domain, RdapChange, RdapDocument, RdapGeneration
from regshield.store.rdap_changes import local_commits

MEMORY_BYTES: Final = 256 * 1024 * 1024  # documents (deflated) kept in one process's memory
MAX_NAMES: Final = 2_000_000  # sponsored names one process keeps to answer unknown names
NAMES_RETRY_SECONDS: Final = 60.0  # after a failed or oversized load of the names
CHECK_SECONDS: Final = 0.5  # longest a change by another process goes unseen by a cache
CACHE_CONTROL: Final = "public, max-age=60"  # how long a client or proxy may reuse an answer
BATCH: Final = 100  # documents rendered and written in one transaction
KEEP_CHANGES: Final = 100_000  # generations of changes kept for caches that fell behind
IDLE_SECONDS: Final = 1.0  # between the materializer's looks for work
FULL_PASS_SECONDS: Final = 60.0  # a full pass catches domains added without the ORM
log = structlog.get_logger("regshield.rdap")


def site_of(settings: Settings) -> Site:
    """What RDAP answers link to, from the settings."""
    port43 = settings.rdds.whois_server
    if port43 is None and settings.rdds.whois_listen is not None:
        port43 = urlsplit(settings.public_url).hostname
    return Site(settings.rdap_base_url, settings.registrar_url, settings.terms_url, port43)


def site_digest(settings: Settings) -> str:
    """A digest of every setting a document shows: the site's URLs and the public URL the
    contact forms are under."""
    site = site_of(settings)
    shown = [site.base_url, site.registrar_url, site.terms_url, site.port43,
             settings.public_url]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:32]


def rdap_json(body: dict[str, Any]) -> bytes:
    """An RDAP document as bytes on the wire (every answer, materialized or not)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def render_anonymous(record: DomainRecord, site: Site, *, public_url: str,
                     now: datetime) -> bytes:
    """The anonymous answer to `domain/<name>`, exactly as the dynamic path renders it."""
    presentation = present(record, Persona.ANONYMOUS, public_url=public_url)
    return rdap_json(domain_response(presentation, site,
                                     query_url=site.url(f"domain/{record.name}"), now=now))


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class Document(NamedTuple):
    """A document as memory keeps it: the JSON deflated (about a fifth of its size, so that
    a process holds five times as many; inflating one costs far less than the query).

    Memory keeps each as a plain tuple of plain values (`DocumentCache`), which the garbage
    collector stops tracking after its first collection (it untracks exact tuples only, not
    this class's): memory holds up to some 200,000 documents, which every full collection
    walked while they were objects (pauses growing to 0.19 s while 100,000 were rendered)."""

    name: str
    domain_id: int
    contact_ids: tuple[int, ...]
    etag: str
    packed: bytes  # zlib
    size: int  # of the JSON, for Content-Length
    rendered_at: datetime
    last_modified: str  # rendered_at as Last-Modified says it

    @property
    def body(self) -> bytes:
        return zlib.decompress(self.packed)


# One statement per name not in memory: the sponsored domain, and its document if rendered.
_DOCUMENT = (select(Domain.id, RdapDocument.registrant_id, RdapDocument.tech_id,
                    RdapDocument.etag, RdapDocument.body, RdapDocument.rendered_at)
             .select_from(Domain)
             .outerjoin(RdapDocument, and_(RdapDocument.name == Domain.name,
                                           RdapDocument.site == bindparam("site")))
             .where(Domain.name == bindparam("name"), Domain.ended_at.is_(None),
                    Domain.state.in_(SPONSORED_STATES)))


class Missing(Enum):
    """Why a name has no document: no sponsored domain has it, or it is not rendered yet."""

    UNKNOWN = "unknown"
    NOT_RENDERED = "not rendered"
_GENERATION = select(RdapGeneration.generation).where(RdapGeneration.id == 1)


class DocumentCache:
    """One process's memory copy of the documents (see the module docstring)."""

    def __init__(self, store: Store, site: str, *, memory_bytes: int = MEMORY_BYTES,
                 check_seconds: float = CHECK_SECONDS) -> None:
        self.store = store
        self.site = site
        self.memory_bytes = memory_bytes
        self.check_seconds = check_seconds
        # Name -> the document's fields, as an exact tuple (see `Document`).
        self._documents: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._by_domain: dict[int, str] = {}
        self._by_contact: dict[int, set[str]] = {}
        self._bytes = 0
        self._generation: int | None = None
        self._checked = float("-inf")
        self._local = -1
        self._checking: asyncio.Task[None] | None = None
        # Every sponsored name, when known: a name outside it has no document and no record,
        # so it is answered "not found" without a read (None: unknown, ask the store).
        self._names: set[str] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._names_tried = float("-inf")

    def __len__(self) -> int:
        return len(self._documents)

    async def document(self, name: str) -> Document | Missing:
        """`name`'s document (A-label, lower case), or why it has none. Nothing is kept for a
        name without a document."""
        await self._current()
        kept = self._documents.get(name)
        if kept is not None:
            self._documents.move_to_end(name)
            return Document._make(kept)
        if self._names is not None:
            if name not in self._names:
                return Missing.UNKNOWN
        else:
            self._load_names_soon()
        generation = self._generation
        row = await self.store.lookup(_DOCUMENT, {"name": name, "site": self.site})
        if row is None:
            return Missing.UNKNOWN
        domain_id, registrant_id, tech_id, etag, body, rendered_at = tuple(row)
        if body is None:
            return Missing.NOT_RENDERED
        found = _document(name, domain_id, registrant_id, tech_id, etag, body, rendered_at)
        if self._generation == generation:  # else a change may have come in since the read
            self._keep(found)
        return found

    def peek(self, name: str) -> Document | Missing | None:
        """`name`'s document when memory holds it and memory is current (checked within
        `CHECK_SECONDS`, nothing committed here since), `Missing.UNKNOWN` when memory knows
        every sponsored name and not this one, else None; never waits. A None asks the caller
        to take `document`'s way, which brings memory up to date. Past half the interval, the
        next check starts in the background, so that a busy process keeps answering from
        memory."""
        if self._stale():
            return None
        if (time.monotonic() - self._checked >= self.check_seconds / 2
                and (self._checking is None or self._checking.done())):
            self._checking = asyncio.get_running_loop().create_task(self._check())
            self._checking.add_done_callback(_check_done)
        kept = self._documents.get(name)
        if kept is not None:
            self._documents.move_to_end(name)
            return Document._make(kept)
        if self._names is not None and name not in self._names:
            return Missing.UNKNOWN
        return None

    async def load_names(self, batch: int = 20_000) -> bool:
        """Learn every sponsored name (at most `MAX_NAMES`), so that unknown names are
        answered from memory. Returns whether memory now knows them.

        Read a batch at a time in name order, so that the event loop answers between batches
        (two million names are a second of work in one step)."""
        await self._current()
        async with self.store.read() as session:
            generation = int((await session.execute(_GENERATION)).scalar() or 0)
        names: set[str] = set()
        after = ""
        while len(names) <= MAX_NAMES:
            async with self.store.read() as session:
                found = (await session.execute(
                    select(Domain.name)
                    .where(Domain.name > after, Domain.ended_at.is_(None),
                           Domain.state.in_(SPONSORED_STATES))
                    .order_by(Domain.name).limit(batch))).scalars().all()
            if not found:
                break
            names.update(found)
            after = found[-1]
        # Read at `generation` or later: installed only if no change after it was applied
        # meanwhile (changes since are applied by the next check, which may apply some twice:
        # harmless).
        if len(names) > MAX_NAMES or (self._generation is not None
                                      and generation < self._generation):
            return False
        self._names = names | set(self._documents)
        return True

    def _load_names_soon(self) -> None:
        if (self._loading is not None and not self._loading.done()) \
                or time.monotonic() - self._names_tried < NAMES_RETRY_SECONDS:
            return
        self._names_tried = time.monotonic()

        async def load() -> None:
            try:
                known = await self.load_names()
                log.info("rdap.names_loaded", known=known,
                         count=len(self._names) if self._names is not None else None)
            except Exception as error:
                log.warning("rdap.names_load_failed", error_type=type(error).__name__)

        self._loading = asyncio.get_running_loop().create_task(load())

    def offer(self, documents: Iterable[Document], generation: int) -> int:
        """Keep documents the store held at `generation`, unless this copy already applied a
        later change (its next check drops those a change since then touched). Offers fill
        free room only: they never push out what queries brought in. Returns how many were
        kept."""
        if self._generation is None:  # never checked: the copy starts at `generation`
            self._generation = generation
        if self._generation > generation:
            return 0
        kept = 0
        for document in documents:
            if self._bytes + len(document.packed) > self.memory_bytes:
                break
            self._keep(document)
            kept += 1
        return kept

    async def preload(self, batch: int = 1000) -> int:
        """Fill memory with the store's documents (at start: a restart answers from memory at
        once), up to the memory bound. Returns how many were loaded."""
        await self._current()
        loaded, after = 0, ""
        while self._bytes < self.memory_bytes:
            async with self.store.read() as session:
                generation = int((await session.execute(_GENERATION)).scalar() or 0)
                rows = (await session.execute(
                    select(RdapDocument.name, RdapDocument.domain_id,
                           RdapDocument.registrant_id, RdapDocument.tech_id, RdapDocument.etag,
                           RdapDocument.body, RdapDocument.rendered_at)
                    .where(RdapDocument.name > after, RdapDocument.site == self.site)
                    .order_by(RdapDocument.name).limit(batch))).all()
            if not rows:
                break
            loaded += self.offer([_document(*row) for row in rows], generation)
            after = rows[-1][0]
        return loaded

    def _stale(self) -> bool:
        return (self._local != local_commits()
                or time.monotonic() - self._checked >= self.check_seconds)

    async def _current(self) -> None:
        """Bring the memory copy up to the store's generation, if it was not checked lately;
        concurrent queries wait for one check."""
        while self._stale():
            if self._checking is None or self._checking.done():
                self._checking = asyncio.create_task(self._check())
            await asyncio.shield(self._checking)

    async def _check(self) -> None:
        local, started = local_commits(), time.monotonic()
        row = await self.store.lookup(_GENERATION, {})
        generation = int(row[0]) if row is not None else 0
        seen = self._generation
        if seen is not None and generation != seen:
            await self._apply_changes(seen, generation)
        self._generation = generation
        self._local, self._checked = local, started

    async def _apply_changes(self, seen: int, generation: int) -> None:
        if generation < seen:  # the counter went back: a store restored from a backup
            self.clear()
            self._names = None
            return
        async with self.store.read() as session:
            rows = (await session.execute(
                select(RdapChange.generation, RdapChange.domain_id, RdapChange.contact_id)
                .where(RdapChange.generation > seen))).all()
            domains = sorted({row[1] for row in rows if row[1] is not None})
            if self._names is not None and domains:
                await self._update_names(session, domains)
        generations = {row[0] for row in rows}
        latest = max(generations | {generation})
        if len(generations) != latest - seen:  # pruned changes: what they touched is unknown
            self.clear()
            self._names = None
            return
        for _, domain_id, contact_id in rows:
            if domain_id is None and contact_id is None:
                self.clear()
                return
            if domain_id is not None:
                self._forget(self._by_domain.get(domain_id))
            if contact_id is not None:
                for name in list(self._by_contact.get(contact_id, ())):
                    self._forget(name)

    async def _update_names(self, session: AsyncSession, domain_ids: list[int]) -> None:
        """Bring the names of the changed domains up to date: a domain sponsored now is
        known, any other is not."""
        assert self._names is not None
        found = 0
        for start in range(0, len(domain_ids), 500):
            rows = (await session.execute(
                select(Domain.name, Domain.state, Domain.ended_at)
                .where(Domain.id.in_(domain_ids[start:start + 500])))).all()
            found += len(rows)
            for name, state, ended_at in rows:
                if ended_at is None and state in SPONSORED_STATES:
                    self._names.add(name)
                else:
                    self._names.discard(name)
        if found != len(domain_ids) or len(self._names) > MAX_NAMES:
            self._names = None  # a domain row gone: its name is unknown; learn them again

    def _keep(self, document: Document) -> None:
        self._forget(document.name)
        self._documents[document.name] = tuple(document)
        if self._names is not None:
            self._names.add(document.name)
        self._by_domain[document.domain_id] = document.name
        for contact_id in document.contact_ids:
            self._by_contact.setdefault(contact_id, set()).add(document.name)
        self._bytes += len(document.packed)
        while self._bytes > self.memory_bytes and self._documents:
            self._forget(next(iter(self._documents)))

    def _forget(self, name: str | None) -> None:
        kept = self._documents.pop(name, None) if name is not None else None
        if kept is None:
            return
        document = Document._make(kept)
        self._bytes -= len(document.packed)
        if self._by_domain.get(document.domain_id) == document.name:
            del self._by_domain[document.domain_id]
        for contact_id in document.contact_ids:
            names = self._by_contact.get(contact_id)
            if names is not None:
                names.discard(document.name)
                if not names:
                    del self._by_contact[contact_id]

    def clear(self) -> None:
        self._documents.clear()
        self._by_domain.clear()
        self._by_contact.clear()
        self._bytes = 0


def _check_done(task: asyncio.Task[None]) -> None:
    """A check started ahead of need failed: the next query's check tries again."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("rdap.generation_check_failed",
                    error_type=type(task.exception()).__name__)


def _document(name: str, domain_id: int, registrant_id: int | None, tech_id: int | None,
              etag: str, body: bytes, rendered_at: datetime) -> Document:
    return Document(name, domain_id, tuple(c for c in (registrant_id, tech_id) if c), etag,
                    zlib.compress(body, 1), len(body), rendered_at,
                    format_datetime(rendered_at, usegmt=True))


_caches: weakref.WeakKeyDictionary[Store, DocumentCache] = weakref.WeakKeyDictionary()


def document_cache(services: Services) -> DocumentCache:
    """This process's cache of the documents of `services`' store."""
    cache = _caches.get(services.store)
    if cache is None:
        cache = DocumentCache(services.store, site_digest(services.settings))
        _caches[services.store] = cache
    return cache


async def load_memory(services: Services) -> None:
    """At a process's start: fill its memory with the stored documents and learn every
    sponsored name, so that it answers from memory at once (`serve`'s materializer; each HTTP
    worker, api/workers.py)."""
    try:
        cache = document_cache(services)
        loaded = await cache.preload()
        known = await cache.load_names()
        log.info("rdap.documents_loaded", count=loaded, names_known=known)
    except Exception:  # the store is not reachable yet: documents load as they are asked
        log.exception("rdap.preload_failed")


class Materializer:
    """Renders and stores the documents that are missing (see the module docstring)."""

    def __init__(self, services: Services, *, batch: int = BATCH) -> None:
        self.services = services
        self.batch = batch
        self.site = site_digest(services.settings)

    async def render_if_first(self) -> int | None:
        """`render_missing`, unless another process or instance on this database is rendering
        (`Store.exclusive`): None then; the documents it writes reach this process's memory
        when first asked (`DocumentCache.document`), as they reach HTTP workers'. Every
        instance would render the same documents, so one at a time is enough."""
        async with self.services.store.exclusive("rdap-materializer") as first:
            if not first:
                return None
            return await self.render_missing()

    async def render_missing(self) -> int:
        """One pass over every sponsored domain: render those without a current document.
        Returns how many documents were written."""
        written, after = 0, 0
        while True:
            count, after, more = await self._render_batch(after)
            written += count
            if not more:
                return written

    async def _render_batch(self, after: int) -> tuple[int, int, bool]:
        services, settings = self.services, self.services.settings
        site = site_of(settings)
        current = exists().where(RdapDocument.name == Domain.name,
                                 RdapDocument.site == self.site)
        async with services.store.read() as session:
            # The generation first: the records read next are at least as new as it.
            read_at = int((await session.execute(_GENERATION)).scalar() or 0)
            sourced = await load_domains_after(
                session, services.sealer, after, self.batch,
                registrar_url=settings.registrar_url, where=~current)
        if not sourced:
            return 0, after, False
        rows = []
        for item in sourced:
            now = services.clock.now()
            body = render_anonymous(item.record, site, public_url=settings.public_url, now=now)
            rows.append({"name": item.record.name, "domain_id": item.domain_id,
                         "registrant_id": item.registrant_id, "tech_id": item.tech_id,
                         "site": self.site, "etag": strong_etag(body), "body": body,
                         "rendered_at": now})
            await asyncio.sleep(0)  # rendering is CPU: let queries in between
        written = await self._write(rows, read_at)
        return written, sourced[-1].domain_id, len(sourced) == self.batch

    async def _write(self, rows: list[dict[str, Any]], read_at: int) -> int:
        """Write documents rendered from data read at generation `read_at`, leaving out those
        a change committed since touched. The counter's row lock (a SQLite write holds the
        whole database) keeps a change from committing between that check and this commit."""
        async with self.services.store.write() as session:
            generation = int((await session.execute(
                _GENERATION.with_for_update())).scalar() or 0)
            if generation != read_at:
                changes = (await session.execute(
                    select(RdapChange.domain_id, RdapChange.contact_id)
                    .where(RdapChange.generation > read_at))).all()
                if any(d is None and c is None for d, c in changes):
                    return 0
                domains = {d for d, _ in changes if d is not None}
                contacts = {c for _, c in changes if c is not None}
                rows = [row for row in rows if row["domain_id"] not in domains
                        and row["registrant_id"] not in contacts
                        and row["tech_id"] not in contacts]
            if not rows:
                return 0
            # On the connection: through the session, an insert of many rows runs one statement
            # per row.
            connection = await session.connection()
            await connection.execute(delete(RdapDocument).where(
                RdapDocument.name.in_([row["name"] for row in rows])))
            await connection.execute(insert(RdapDocument), rows)
        document_cache(self.services).offer(
            [_document(row["name"], row["domain_id"], row["registrant_id"], row["tech_id"],
                       row["etag"], row["body"], row["rendered_at"]) for row in rows],
            generation)
        return len(rows)

    async def prune(self) -> None:
        """Forget changes no cache can still need."""
        async with self.services.store.write() as session:
            generation = int((await session.execute(_GENERATION)).scalar() or 0)
            await session.execute(delete(RdapChange).where(
                RdapChange.generation <= generation - KEEP_CHANGES))

    async def run_forever(self) -> None:
        """Load the stored documents into this process's memory, then render what is missing
        whenever the generation moves, and a full pass now and then."""
        seen: int | None = None
        passed = float("-inf")
        await load_memory(self.services)
        while True:
            try:
                row = await self.services.store.lookup(_GENERATION, {})
                generation = int(row[0]) if row is not None else 0
                if generation != seen or time.monotonic() - passed >= FULL_PASS_SECONDS:
                    passed = time.monotonic()
                    written = await self.render_if_first()
                    if written:
                        log.info("rdap.documents_rendered", count=written)
                    if seen is None or generation // 1000 != seen // 1000:
                        await self.prune()
                    seen = generation
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken database must not end the materializer for good
                log.exception("rdap.materialize_failed")
            await asyncio.sleep(IDLE_SECONDS)
