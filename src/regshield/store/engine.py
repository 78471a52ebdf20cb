"""Engine and transactions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Connection, Engine, ExceptionContext, Row
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Executable

from regshield.store import rdap_changes  # noqa: F401  (its session events record changes)

MIGRATIONS = Path(__file__).parent / "migrations"

POOL_WAIT_SECONDS = 5.0  # the wait for a free database connection (the `busy` problem)
# Connections for lookups (and on SQLite for everything), all kept once made: as many as a
# pool of 20 kept and 20 more made on demand allowed at once, without making and closing
# those 20 at every burst (the API reads' p99 on PostgreSQL: 105 ms before, 52-55 ms after).
LOOKUP_CONNECTIONS = 40

_T = TypeVar("_T")


class Store:
    """Owns the engine. `write()` opens a transaction for a flow, `read()` one for a query."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # A request that finds every connection taken waits this long, then is answered 503
        # (api/problems.py "busy"), not queued behind a flood.
        kwargs: dict[str, Any] = {"echo": echo, "pool_timeout": POOL_WAIT_SECONDS}
        if self.is_sqlite:
            # Every connection kept, none made and dropped per burst: aiosqlite starts a thread
            # for each, and SQLAlchemy's default (5 kept, 10 more made on demand and closed)
            # made and closed some at every burst of concurrent requests, which set the API
            # reads' p99 (104-117 ms at 32 in flight; 79-81 ms with this; docs/performance.md).
            kwargs.update(connect_args={"timeout": 30}, pool_size=LOOKUP_CONNECTIONS,
                          max_overflow=0)
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: writers take the write lock when they begin, so two writers never deadlock
        # upgrading read locks; readers stay concurrent under WAL.
        writer_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite
            else self.engine
        )
        self._writer = async_sessionmaker(writer_engine, expire_on_commit=False)
        self._write_turn = asyncio.Lock() if self.is_sqlite else None
        self._open_writes = 0
        # Lookups (RDAP, WHOIS) read one statement, so no transaction is wrapped around it:
        # on SQLite no BEGIN, on PostgreSQL a pool of its own in autocommit and without the
        # pre-ping (a lookup that meets a connection the server dropped is tried once more).
        self._lookups: AsyncEngine = (
            self.engine.execution_options(sqlite_begin=None) if self.is_sqlite
            else create_async_engine(url, echo=echo, pool_size=LOOKUP_CONNECTIONS,
                                     max_overflow=0,
                                     pool_timeout=POOL_WAIT_SECONDS,
                                     isolation_level="AUTOCOMMIT"))
        # SQLite: lookups a caller marks `on_loop` run on the event loop's own thread, through
        # the synchronous driver. A point lookup in SQLite costs tens of microseconds; handing
        # it to aiosqlite's thread and back costs ten times that in CPU with 32 in flight (the
        # GIL passed between the loop and a thread per connection), which was most of an API
        # read's cost on SQLite. Only for small rows of hot tables (a token, a contact): a read
        # that may wait for the disk (a large table's pages, an RDAP document) would stop the
        # whole loop for it, and with RDAP's documents it did (p99 8 ms -> 343 ms). Readers
        # never wait for writers under WAL; a lookup that would (busy) goes the asynchronous
        # way instead, so the loop never sleeps on a lock.
        self._lookups_here: Engine | None = None
        database = make_url(url).database
        # SQLite's exclusive work is locked with files beside the database (`exclusive`).
        self._locks: Path | None = None
        if self.is_sqlite and database and database != ":memory:":
            self._locks = Path(f"{database}.locks")
            self._lookups_here = create_engine(
                make_url(url).set(drivername="sqlite+pysqlite"), echo=echo,
                pool_size=1, max_overflow=4, pool_timeout=POOL_WAIT_SECONDS)
            _configure_sqlite_lookups(self._lookups_here)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        # SQLite has one writer at a time; waiting in line here, first come first served, beats
        # SQLite's busy handler, which sleeps and retries unfairly (seconds of tail latency).
        async with self._write_turn or contextlib.nullcontext():
            self._open_writes += 1
            try:
                async with _transaction(self._writer) as session:
                    yield session
            finally:
                self._open_writes -= 1

    @property
    def writing(self) -> bool:
        """Whether a write transaction of this process is open (for tests and diagnostics)."""
        return self._open_writes > 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with _transaction(self._reader) as session:
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read transaction whose statements all see the store as it was at the first one,
        for a reader of several statements that must agree with each other (the event chain
        and its head) while writers go on. SQLite's read transactions are that already (WAL);
        PostgreSQL's default (READ COMMITTED) shows each statement what was committed before
        it, so this one is REPEATABLE READ."""
        isolation = {} if self.is_sqlite else {"isolation_level": "REPEATABLE READ"}
        async with _transaction(self._reader, isolation) as session:
            yield session

    async def lookup(self, statement: Executable, parameters: dict[str, Any], *,
                     on_loop: bool = False) -> Row[Any] | None:
        """The first row of one read-only statement (an RDAP or WHOIS lookup), read outside
        any transaction and without an ORM session: a lookup costs its query and little
        else. `on_loop`: a small row of a hot table, read on the event loop's thread on
        SQLite (see __init__)."""
        if on_loop and self._lookups_here is not None:
            try:
                with self._lookups_here.connect() as connection:
                    return connection.execute(statement, parameters).first()
            except OperationalError:
                pass  # busy (a recovery or a checkpoint holds a lock): wait off the loop
        try:
            return await self._lookup_once(statement, parameters)
        except DBAPIError as error:
            if not error.connection_invalidated:  # only a dropped connection is tried again
                raise
        return await self._lookup_once(statement, parameters)

    async def _lookup_once(self, statement: Executable,
                           parameters: dict[str, Any]) -> Row[Any] | None:
        async with self._lookups.connect() as connection:
            return (await connection.execute(statement, parameters)).first()

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Whether this process is the one doing `name`'s work now, among every process and
        instance on this database, tried without waiting and held until the block ends or the
        process dies, however it ends. On PostgreSQL a session advisory lock on a connection of
        its own (autocommit: no transaction stays open), let go when that connection drops; on
        SQLite a file lock (`flock`) on a file of its own beside the database (an in-memory
        database is one process's: always True there)."""
        if self.is_sqlite:
            if self._locks is None:
                yield True
                return
            with _file_lock(self._locks, name) as held:
                yield held
            return
        key = _lock_key(name)
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            held = bool((await connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar())
            try:
                yield held
            finally:
                if held:
                    with contextlib.suppress(DBAPIError):
                        await connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                                 {"key": key})

    def sweep_locks(self) -> int:
        """Remove the lock files of SQLite's `exclusive` that no process holds (a process
        killed before it could remove its own); how many. A held lock's file is in use, and
        one a process is about to take is taken again by the inode check."""
        if self._locks is None or not self._locks.is_dir():
            return 0
        swept = 0
        for path in self._locks.glob("*.lock"):
            with contextlib.suppress(FileNotFoundError), _locked(path) as held:
                swept += held
        return swept

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade)

    @property
    def lookup_engines(self) -> list[Engine]:
        """The engines of lookups besides the main one (for tests that count statements; on
        SQLite the asynchronous way is the main engine with other options)."""
        if self._lookups_here is not None:
            return [self._lookups_here]
        return [] if self.is_sqlite else [self._lookups.sync_engine]

    async def close(self) -> None:
        if self._lookups_here is not None:
            self._lookups_here.dispose()
        if self._lookups is not self.engine and not self.is_sqlite:
            await self._lookups.dispose()
        await self.engine.dispose()


@asynccontextmanager
async def _transaction(sessions: async_sessionmaker[AsyncSession],
                       options: dict[str, Any] | None = None) -> AsyncIterator[AsyncSession]:
    """A session in a transaction whose end (commit, or rollback) runs to completion even
    when the task is cancelled meanwhile (a stopping server cancels its tasks): a commit cut
    off halfway would leave it unknown whether the change was written, and a rollback cut off
    leaves the connection to the garbage collector, which logs it as an error. The
    cancellation is raised once the transaction has ended."""
    async with sessions() as session:
        transaction = await session.begin()
        # The connection and its BEGIN, whole: SQLite runs a statement in a thread of its own,
        # which goes on when the task is cancelled; a BEGIN IMMEDIATE cut off there would take
        # the write lock for a connection that is then dropped, not rolled back.
        await _to_completion(session.connection(execution_options=options or None))
        try:
            yield session
        except BaseException as exc:
            await _to_completion(transaction.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        await _to_completion(transaction.__aexit__(None, None, None))


async def _to_completion(step: Coroutine[Any, Any, _T]) -> _T:
    task = asyncio.ensure_future(step)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.cancelled():
                raise
            cancelled = exc
    result = task.result()  # the step's own failure (a commit refused) comes first
    if cancelled is not None:
        raise cancelled
    return result


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (the driver's implicit transactions get in the way).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Freed pages are overwritten so that removed data does not linger in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "handle_error")
    def on_error(context: ExceptionContext) -> None:
        # A task cancelled while a statement runs: SQLAlchemy takes it for a lost connection
        # and drops the connection without closing the statement's cursor. The statement goes
        # on in the connection's thread regardless, and SQLite keeps a connection closed with
        # a statement still open alive, with its transaction and a writer's lock, until the
        # cursor is collected; every writer waits meanwhile (the busy timeout, 30 s). The
        # connection is sound (its thread runs one thing at a time): keep it, close the
        # cursor after the statement, and let the transaction end as any other does.
        if isinstance(context.original_exception, asyncio.CancelledError):
            context.is_disconnect = False

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:  # None: a lookup, one statement in SQLite's own autocommit
            connection.exec_driver_sql(f"BEGIN {mode}")


def _configure_sqlite_lookups(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # each statement its own read, no BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute("PRAGMA busy_timeout=0")  # never sleep on the event loop's thread
        cursor.close()


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _file_lock(directory: Path, name: str) -> Iterator[bool]:
    """`flock` on `directory`/<digest of name>, without waiting (`_locked`)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    with _locked(directory / f"{_lock_key(name) & 0xFFFFFFFFFFFFFFFF:016x}.lock") as held:
        yield held


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """`flock` on `path`, without waiting: held by one open file at a time (two in one
    process exclude each other too), and let go by the kernel when the file is closed or its
    process dies. The holder removes the file before letting go, so that locks of names used
    once (a process's life) leave nothing behind; whoever opened the file before it went
    finds, once locked, that the path no longer names it, and holds nothing."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            current = os.stat(path)
        except FileNotFoundError:
            yield False
            return
        if current.st_ino != os.fstat(descriptor).st_ino:
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    finally:
        os.close(descriptor)
