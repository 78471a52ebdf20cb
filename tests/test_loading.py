"""Modules load without cyclic collection, and what they made is frozen afterwards; a serving
process freezes what its start made once it serves."""

from __future__ import annotations

import contextlib
import gc
import weakref

import pytest
from structlog.testing import capture_logs

from regshield import processes
from regshield.loading import modules_loading
from regshield.processes import settle


def test_collection_pauses_while_modules_load_and_resumes_after() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    made = []
    try:
        with modules_loading():
            assert not gc.isenabled()
            made = [[index] for index in range(1000)]  # what a module would keep
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made)
    finally:
        gc.unfreeze()


def test_collection_resumes_when_a_module_fails_to_load() -> None:
    try:
        with pytest.raises(ImportError), modules_loading():
            import regshield.no_such_module  # type: ignore[import-not-found]  # noqa: F401
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_collection_stays_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with modules_loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


class _Node:
    other: _Node | None = None


def test_a_served_process_collects_the_young_garbage_and_freezes_what_lives() -> None:
    garbage, live = _Node(), _Node()
    garbage.other, live.other = garbage, live  # two cycles, one unreachable after the del
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    try:
        settle()
        assert gone() is None  # collected, not frozen for the life of the process
        assert gc.get_freeze_count() > before
        assert not any(found is live for found in gc.get_objects())  # frozen: not walked
    finally:
        gc.unfreeze()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(processes._timed_collection)


def test_a_collection_that_holds_the_process_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each collection at least `SLOW_COLLECTION_SECONDS` long is a stall of the event loop:
    logged with its generation and length, once per collection, the watch set up once."""
    monkeypatch.setattr(processes, "SLOW_COLLECTION_SECONDS", 0.0)
    try:
        processes.watch_collections()
        processes.watch_collections()
        with capture_logs() as logged:
            gc.collect(1)
        slow = [entry for entry in logged if entry["event"] == "runtime.collection_slow"]
        assert len(slow) == 1, logged
        assert slow[0]["generation"] == 1 and slow[0]["seconds"] >= 0
        assert slow[0]["log_level"] == "warning"
        monkeypatch.setattr(processes, "SLOW_COLLECTION_SECONDS", 60.0)
        with capture_logs() as quiet:
            gc.collect(1)
        assert quiet == []
    finally:
        gc.callbacks.remove(processes._timed_collection)
