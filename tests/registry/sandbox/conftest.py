"""Fixtures shared by every test of this folder: the in-process sandbox registry, on a clock
the tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.sandbox.test_server import START, Sandbox, running_sandbox
from regshield.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def sandbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Sandbox]:
    """A running sandbox with registrar-a and registrar-b accredited."""
    async with running_sandbox(tmp_path, clock) as box:
        yield box
