"""Modules load without cyclic collection, and what they made is frozen afterwards."""

from __future__ import annotations

import gc

import pytest

from regshield.loading import modules_loading


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
