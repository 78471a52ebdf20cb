"""Loading the platform's modules: without cyclic garbage collection, and frozen afterwards.

The platform's modules take about a second and a half to load (FastAPI, SQLAlchemy's
mappings, the API's schemas, some four hundred dataclasses), and nearly every object made
meanwhile lives as long as the process. Each full cyclic collection set off while they load
walks all of them again: about a tenth of the start-up. `modules_loading` pauses collection
while they load, then moves what exists out of the collector's sight (`gc.freeze`), so the
collections of a long-running process (`serve`, its workers) do not walk them either.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def modules_loading() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
