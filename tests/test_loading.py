"""Modules load without cyclic collection, and what they made is frozen afterwards; a serving
process freezes what its start made once it serves."""

from __future__ import annotations

import gc
import weakref

import pytest

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
