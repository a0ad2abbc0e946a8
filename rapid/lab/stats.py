"""Small statistics for measurements: percentiles, medians, and a ratio's median [min-max]."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(p / 100.0 * len(ordered))  # the smallest value with p % of them at or below it
    return ordered[max(0, min(len(ordered), rank) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"median", "min", "max"}`` of per-round values (ratios, say)."""
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratio_text(s: dict[str, float]) -> str:
    """``1.07 [1.01-1.12]``."""
    if not s:
        return "-"
    digits = 2 if min(s.values()) >= 0.1 else 3
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"
