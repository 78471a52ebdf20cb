"""Anchors keep copies of the chain head outside the database, so that cutting events off the
end of the chain (and rewriting the head row to match) is found too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import World
from sqlalchemy import delete, update

from eventlog.test_chain import (
    all_events,
    append_only_triggers_removed,
    execute,
    make_history,
    regshield,
)
from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.eventlog.anchors import anchor_head, check_anchors, read_anchors
from regshield.services import Services
from regshield.store.models import Event, EventChainHead


async def test_verify_records_the_head_as_an_anchor_outside_the_database(
        services: Services, settings: Settings) -> None:
    events = await make_history(services, 2)

    result = await regshield(settings, "events", "verify")

    assert result.code == 0, result.stderr
    anchors = read_anchors(settings.anchor_file)
    assert [(a.seq, a.hash) for a in anchors] == [(events[-1].seq, events[-1].hash)]
    assert settings.anchor_file.stat().st_mode & 0o777 == 0o600


async def test_cutting_anchored_events_off_the_end_is_found(
        services: Services, settings: Settings) -> None:
    events = await make_history(services, 3)
    assert (await regshield(settings, "events", "verify")).code == 0
    cut_from = events[-2].seq

    # The attacker removes the newest events and makes the head agree with what is left.
    async with append_only_triggers_removed(services):
        await execute(services, delete(Event).where(Event.seq >= cut_from))
        await execute(services, update(EventChainHead).values(
            last_seq=cut_from - 1, last_hash=events[-3].hash))
    result = await regshield(settings, "events", "verify")

    assert result.code != 0
    assert f"event {events[-1].seq} does not verify" in result.stderr
    assert "missing" in result.stderr
    assert "Traceback" not in result.stderr


async def test_anchoring_appends_only_when_the_head_moved(
        services: Services, settings: Settings, clock: FakeClock, world: World) -> None:
    await world.account()
    async with services.store.read() as session:
        first = await anchor_head(session, settings.anchor_file, clock.now())
        again = await anchor_head(session, settings.anchor_file, clock.now())
    await world.account()
    clock.advance(timedelta(minutes=5))
    async with services.store.read() as session:
        moved = await anchor_head(session, settings.anchor_file, clock.now())
        assert await check_anchors(session, read_anchors(settings.anchor_file)) is None

    assert first is not None and again is None and moved is not None
    assert moved.seq > first.seq
    assert [a.seq for a in read_anchors(settings.anchor_file)] == [first.seq, moved.seq]
    assert (await all_events(services))[-1].hash == moved.hash


def test_a_damaged_anchor_file_is_named(settings: Settings) -> None:
    settings.anchor_file.parent.mkdir(parents=True, exist_ok=True)
    settings.anchor_file.write_text("12 not-a-hash\n")
    with pytest.raises(ValueError, match=r"event-anchors\.log:1"):
        read_anchors(settings.anchor_file)
