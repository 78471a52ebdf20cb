"""Figures shared by the benchmarks."""

from __future__ import annotations

import math


def percentile_ms(latencies: list[float], p: float) -> float:
    """Nearest-rank percentile of latencies in seconds, in milliseconds."""
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1] * 1000
