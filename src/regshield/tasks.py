"""Stopping asyncio tasks without losing the stopper's own cancellation.

`task.cancel()` followed by `with suppress(CancelledError): await task` cannot tell the
cancelled task's ending from a cancellation of the task that waits: a server stopping while
one of its parts is being stopped would swallow its own cancellation and run on. Wait for the
task with `asyncio.wait` instead, which raises only the waiter's cancellation.

For the same reason, timeouts are `async with asyncio.timeout(...)`, never
`asyncio.wait_for`: on Python 3.11 `wait_for` returns the result, and drops the caller's
cancellation, when both arrive in the same turn of the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> list[BaseException]:
    """Cancel `tasks` and wait until each has ended. Returns the exceptions they ended with
    other than their cancellation (each is retrieved, so none is reported as lost); the
    caller decides whether one matters. A cancellation of the caller while it waits is
    raised."""
    stopping = list(tasks)
    for task in stopping:
        task.cancel()
    if stopping:
        await asyncio.wait(stopping)
    return [error for task in stopping
            if not task.cancelled() and (error := task.exception()) is not None]


__all__ = ["cancel_and_wait"]
