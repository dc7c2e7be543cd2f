"""Small statistics shared by the selectors and the simulation engine (pure Python, no Django)."""

from __future__ import annotations

import math


def percentile(values, q: float) -> float | None:
    """Linear-interpolation percentile (PostgreSQL percentile_cont, numpy's default); None values ignored."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    pos = (len(data) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)
