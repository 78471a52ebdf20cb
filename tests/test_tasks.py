"""Stopping tasks: the stopper's own cancellation is never taken for the stopped task's."""

from __future__ import annotations

import asyncio

import pytest

from regshield.tasks import cancel_and_wait


async def test_a_stopper_cancelled_while_a_task_cleans_up_is_itself_cancelled() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # its cleanup takes a while
            raise

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([child]))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not child.done()

    release.set()
    assert await cancel_and_wait([child]) == []
    assert child.cancelled()


async def test_what_the_stopped_tasks_ended_with_is_returned_not_raised() -> None:
    async def fails_on_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    async def finished() -> int:
        return 1

    failing = asyncio.create_task(fails_on_stop())
    done = asyncio.create_task(finished())
    await asyncio.sleep(0)
    [error] = await cancel_and_wait([failing, done])
    assert isinstance(error, ValueError) and str(error) == "cleanup failed"
    assert done.result() == 1
