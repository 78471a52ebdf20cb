"""The SQL statements the store sends while a block runs (tests of what a request costs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from regshield.services import Services


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements the store sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engines = {services.store.engine.sync_engine, *services.store.lookup_engines}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
