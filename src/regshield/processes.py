"""Worker processes of `regshield serve`: children started, watched and replaced beside the
main process (DNS workers, dns/workers.py; HTTP workers, api/workers.py).

A child is a fresh interpreter (`python -I`, as multiprocessing's "spawn" makes, never a fork
of a process that has threads) running `child_main` of a named module, given one end of a
socket pair. Down that pipe the main process sends what the child needs (pickled: only the
main process writes to it); up it the child reports in small JSON documents read with a size
limit, never pickle, since a child faces the network. A child exits when the pipe closes,
which the kernel does when the main process dies, even by SIGKILL, so none outlives it.

The main process watches each child through a pidfd and starts a new one a second after one
dies (then after a growing delay while starts fail). Each child has its own queue of messages
and a task writing them, so a child that stops reading holds up no one; one with more than
`MAX_QUEUED_BYTES` waiting is killed and replaced.

Every process of `serve`, the main one and its children, runs on libuv's event loop (uvloop,
`run_serving`) where it is installed: for the listeners' small answers it spends about two
thirds of the CPU of asyncio's own loop. Tests run the same code on asyncio's loop, and the
tests that start `serve` on libuv's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from regshield.tasks import cancel_and_wait

try:
    import uvloop
except ImportError:  # not on Windows: asyncio's loop then
    uvloop = None  # type: ignore[assignment]

log = structlog.get_logger("regshield.processes")
T = TypeVar("T")

START_TIMEOUT_SECONDS = 30.0  # a spawned interpreter imports its libraries before it listens
RESTART_DELAY_SECONDS = 1.0  # doubled after each failed start, up to the maximum
MAX_RESTART_DELAY_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 5.0
# A child that lets more than this pile up unread (beyond what the socket buffers) has stopped
# reading (hung, or stopped): it is killed and started afresh rather than left to hold the
# main process's memory.
MAX_QUEUED_BYTES = 512 << 20
MAX_REPORT = 4096  # a child's messages to the main process are small JSON documents

# A fresh interpreter, isolated from the working directory, with this process's import path,
# running `child_main(descriptor=..., **arguments)` of the module named in its arguments.
# Its modules load as `regshield.loading` has them load (without cyclic collection).
_BOOTSTRAP = ("import gc, importlib, json, sys; gc.disable(); "
              "arguments = json.loads(sys.argv[1]); sys.path[:0] = arguments.pop('path'); "
              "module = importlib.import_module(arguments.pop('module')); "
              "gc.freeze(); gc.enable(); module.child_main(**arguments)")


@dataclass
class Child:
    """One child process as the main process sees it."""

    process: subprocess.Popen[bytes]
    connection: multiprocessing.connection.Connection
    exit_watch: int  # a pidfd, readable once the process has exited
    started: asyncio.Future[int]
    # Messages wait here and one task writes them in order, so a slow child slows no one;
    # None tells that task to stop.
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    queued_bytes: int = 0
    writer: asyncio.Task[None] | None = None
    released: bool = False

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop watching the child and shut the pipe (once): the child reads its end, a write
        in progress fails at once, and the writing task closes our end when it stops (never
        while a thread may still write to it)."""
        if self.released:
            return
        self.released = True
        descriptor = self.connection.fileno()  # only this method closes the connection
        for watched in (self.exit_watch, descriptor):
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(watched)
        os.close(self.exit_watch)
        with contextlib.suppress(OSError), socket.fromfd(
                descriptor, socket.AF_UNIX, socket.SOCK_STREAM) as pipe:
            pipe.shutdown(socket.SHUT_RDWR)
        self.queue.put_nowait(None)
        if self.writer is None or self.writer.done():
            self.connection.close()
        else:
            self.writer.add_done_callback(lambda _: self.connection.close())


class Workers:
    """`count - 1` children running `child_main` of `module` beside the main process (which
    counts as one), started again when one dies.

    A kind of worker says what a child is told first (`introduce`), what its `arguments` are
    (JSON, on its command line: nothing secret) and what else its reports say
    (`handle_report`); `topic` prefixes the log events and `label` names the workers in errors.
    """

    module = ""
    topic = "workers"
    label = "worker"
    child_type: type[Child] = Child

    def __init__(self, count: int, *, log_level: str = "info") -> None:
        self.count = count
        self.log_level = log_level
        self._children: list[Child] = []
        # Held while a child is spawned and introduced, so nothing sent later reaches it first.
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def pids(self) -> list[int]:
        """The children started and alive now."""
        return [c.started.result() for c in self._children
                if c.started.done() and not c.started.exception() and c.is_alive()]

    # --- what a kind of worker says ---------------------------------------------------------

    def arguments(self) -> dict[str, Any]:
        """`child_main`'s keyword arguments besides `descriptor` (JSON on its command line)."""
        return {}

    async def introduce(self, child: Child) -> None:
        """Queue what a new child must hear first (called with the lock held)."""

    def handle_report(self, child: Child, report: dict[str, Any]) -> None:
        """A report other than `started` and `failed`."""

    def child_exited(self, child: Child) -> None:
        """A started child has exited (another is started in its place)."""

    # --- starting and stopping ----------------------------------------------------------------

    async def start_children(self) -> list[Child]:
        """Start `count - 1` children and wait until each has started; on a failure, stop
        every one and raise OSError."""
        async with self._lock:
            children = [await self.spawn() for _ in range(self.count - 1)]
        try:
            await asyncio.gather(*(self.wait_started(child) for child in children))
        except BaseException:
            await self.close()
            raise
        return children

    async def spawn(self) -> Child:
        """Start one child and queue what it is told first. Call with the lock held."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        arguments = {"path": sys.path, "module": self.module, "descriptor": theirs.fileno(),
                     **self.arguments()}
        with theirs:
            process = _start_process(arguments, theirs.fileno())
        connection = multiprocessing.connection.Connection(ours.detach())
        child = self.child_type(process, connection, os.pidfd_open(process.pid),
                                loop.create_future())
        child.writer = loop.create_task(_write_messages(child))
        self._children.append(child)
        loop.add_reader(connection.fileno(), self._receive, child)
        # uvloop makes a watched descriptor non-blocking; this pipe is written whole messages
        # at a time from a thread, and read a whole report at a time once readable: with
        # O_NONBLOCK, a message larger than the socket's buffer (a zone) failed with EAGAIN
        # half-sent, and the child never started.
        os.set_blocking(connection.fileno(), True)
        loop.add_reader(child.exit_watch, self._exited, child)
        await self.introduce(child)
        return child

    async def wait_started(self, child: Child) -> None:
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await asyncio.shield(child.started)
        except TimeoutError:
            child.process.kill()
            raise OSError(f"{self.label} did not start within {START_TIMEOUT_SECONDS:.0f} s"
                          ) from None

    def started_children(self) -> list[Child]:
        return [c for c in self._children if c.started.done()]

    def deliver(self, child: Child, payload: bytes) -> None:
        """Queue one message for a child; one that has stopped reading is killed (and started
        afresh)."""
        if child.released:
            return
        if child.queued_bytes > MAX_QUEUED_BYTES:
            log.error(f"{self.topic}:not_reading", pid=child.process.pid,
                      queued_bytes=child.queued_bytes)
            child.process.kill()
            return
        child.queued_bytes += len(payload)
        child.queue.put_nowait(payload)

    async def close(self) -> None:
        """Stop watching, shut every pipe (a child stops when it sees it close) and reap the
        children, killing one that has not exited within `STOP_TIMEOUT_SECONDS`."""
        self._closing = True
        await cancel_and_wait(list(self._tasks))
        loop = asyncio.get_running_loop()
        for child in self._children:
            child.release(loop)
        for child in self._children:
            try:
                await asyncio.to_thread(child.process.wait, STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning(f"{self.topic}:killed", pid=child.process.pid)
                child.process.kill()
                await asyncio.to_thread(child.process.wait)
        await asyncio.gather(*(c.writer for c in self._children if c.writer is not None),
                             return_exceptions=True)
        self._children = []

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- watching -----------------------------------------------------------------------------

    def _exited(self, child: Child) -> None:
        if child.released:
            return
        child.release(asyncio.get_running_loop())
        if self._closing:
            return
        self._children.remove(child)
        self.child_exited(child)
        if not child.started.done():
            child.started.set_exception(OSError(
                f"{self.label} exited with status {child.process.poll()} before it listened"))
            return
        self.background(self._restart(child))

    async def _restart(self, dead: Child) -> None:
        log.error(f"{self.topic}:exited", pid=dead.process.pid,
                  status=await asyncio.to_thread(dead.process.wait))
        delay = RESTART_DELAY_SECONDS
        while True:
            await asyncio.sleep(delay)
            if self._closing:
                return
            async with self._lock:
                child = await self.spawn()
            try:
                await self.wait_started(child)
            except OSError as error:
                log.error(f"{self.topic}:restart_failed", reason=str(error))
                delay = min(2 * delay, MAX_RESTART_DELAY_SECONDS)
                continue
            log.info(f"{self.topic}:restarted", pid=child.process.pid)
            return

    def _receive(self, child: Child) -> None:
        """Read what a child reports."""
        try:
            while child.connection.poll():
                wire = child.connection.recv_bytes(MAX_REPORT)
                try:
                    report = json.loads(wire)
                    self._handle(child, report if isinstance(report, dict) else {})
                except (ValueError, KeyError, TypeError) as error:
                    log.warning(f"{self.topic}:bad_report", error_type=type(error).__name__)
        except (EOFError, OSError):  # it has exited, or said too much: `_exited` follows
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(child.connection.fileno())

    def _handle(self, child: Child, report: dict[str, Any]) -> None:
        kind = report.get("kind")
        if kind == "started" and not child.started.done():
            child.started.set_result(int(report["pid"]))
        elif kind == "failed" and not child.started.done():
            child.started.set_exception(OSError(str(report["reason"])))
        else:
            self.handle_report(child, report)


def _start_process(arguments: dict[str, Any], descriptor: int) -> subprocess.Popen[bytes]:
    """Start a child: a fresh interpreter that inherits only the socket `descriptor` (and this
    process's standard error, where it logs)."""
    return subprocess.Popen(  # noqa: S603 - this interpreter running our own module
        [sys.executable, "-I", "-c", _BOOTSTRAP, json.dumps(arguments)],
        stdin=subprocess.DEVNULL, pass_fds=(descriptor,))


async def _write_messages(child: Child) -> None:
    """Write a child's messages in order, each in a thread (a large one takes a while), until
    told to stop."""
    while (payload := await child.queue.get()) is not None:
        try:
            await asyncio.to_thread(child.connection.send_bytes, payload)
        except (OSError, ValueError):
            return  # it has exited: `_exited` follows, and a new child is started
        child.queued_bytes -= len(payload)


SLOW_COLLECTION_SECONDS = 0.1
"""A garbage collection at least this long is logged (`runtime.collection_slow`): it held the
GIL throughout, and the event loop with it."""


def watch_collections() -> None:
    """Log each garbage collection that held this process for `SLOW_COLLECTION_SECONDS` or
    more: a stall no request or query could be answered in, which an operator sees nowhere
    else. Timed with `gc.callbacks`, which cost a clock read per collection."""
    if _timed_collection in gc.callbacks:
        return
    gc.callbacks.append(_timed_collection)


_collection_started = [0.0]


def _timed_collection(phase: str, info: dict[str, int]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _collection_started[0] = now
        return
    seconds = now - _collection_started[0]
    if seconds >= SLOW_COLLECTION_SECONDS:
        log.warning("runtime.collection_slow", generation=info.get("generation"),
                    seconds=round(seconds, 3), collected=info.get("collected"))


def settle() -> None:
    """Once a serving process has started: keep what starting made (modules, the application,
    pools, tables) out of the garbage collector's full collections. They live as long as the
    process, yet each full collection walked them all, a pause that grew with the process
    (about 0.1 s with `serve`'s start-up alone, more as memory filled; docs/performance.md).
    What is made later is collected as before.

    Only the young generations are collected first: a full collection walks everything the
    start made, stored zones read back included (1.5 s with a 100,000-record zone, the loop
    stalled meanwhile). The oldest generation's garbage, if any, is frozen with the rest: a
    full collection after the imports finds none."""
    gc.collect(1)
    gc.freeze()
    watch_collections()


def send_report(connection: multiprocessing.connection.Connection, message: dict[str, Any]) -> None:
    """In a child: tell the main process `message` (a small JSON document)."""
    with contextlib.suppress(OSError, ValueError):
        connection.send_bytes(json.dumps(message).encode())


def check_port_free(host: str, port: int,
                    transports: Iterable[socket.SocketKind] = (socket.SOCK_DGRAM,
                                                               socket.SOCK_STREAM)) -> None:
    """Raise OSError when a socket is bound to `port` already (for any of `transports`).

    Sockets that ask for SO_REUSEPORT share a port with any other process of the same user that
    asks too: a second server started by mistake would silently take half the traffic. Binding
    without it first finds such a server, as a plain bind would."""
    for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[:1]:
        for transport in transports:
            with socket.socket(family, transport) as probe:
                if transport == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)


def run_serving(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a serving process's main coroutine on libuv's event loop where uvloop is installed,
    else on asyncio's."""
    if uvloop is None:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
