"""Pure maths of the orders reads (no database): risk score, route classification, WIP age buckets, a mean.

Percentiles are prodplan.stats.percentile (shared with the simulation); Little's law lives with the what-if
capacity model that uses it (whatif)."""

from __future__ import annotations

import math
from collections import Counter

AGE_BUCKETS = ((0, 7, "0-7d"), (7, 14, "7-14d"), (14, 30, "14-30d"), (30, 60, "30-60d"), (60, math.inf, "60d+"))

# Risk score weights (sum to 1); see orders.selectors.risk_queue().
RISK_WEIGHTS = {"age": 0.40, "bottleneck": 0.25, "rework": 0.15, "defects": 0.20}
BOTTLENECK_RANK_SCORE = {1: 1.0, 2: 2 / 3, 3: 1 / 3}
REWORK_SATURATION = 2


def mean(values: list[float]) -> float | None:
    """The arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def age_buckets(ages: list[float]) -> dict:
    """How many ages (days) fall in each AGE_BUCKETS band, every band present."""
    buckets = {label: 0 for _, _, label in AGE_BUCKETS}
    for age in ages:
        for low, high, label in AGE_BUCKETS:
            if low <= age < high:
                buckets[label] += 1
                break
    return buckets


def risk_score(*, age_days: float, late_days: float | None, bottleneck_rank: int | None, reworks: int,
               defect_share: float) -> tuple[float, dict[str, float]]:
    """An active order's risk score in [0, 1] and its components, each in [0, 1] (RISK_WEIGHTS sum to 1):
    age = min(1, age / the late threshold) (0 without one), bottleneck = BOTTLENECK_RANK_SCORE of the phase's rank
    (0 off the top 3), rework = min(1, rework passes / REWORK_SATURATION), defects = the product's defect share."""
    components = {
        "age": min(1.0, age_days / late_days) if late_days else 0.0,
        "bottleneck": BOTTLENECK_RANK_SCORE.get(bottleneck_rank, 0.0),
        "rework": min(1.0, reworks / REWORK_SATURATION),
        "defects": defect_share,
    }
    return sum(RISK_WEIGHTS[name] * value for name, value in components.items()), components


def classify_route(standard: list[int], executed: list[tuple[int, bool]]) -> dict:
    """Compare one finished order's executed phases (phase id, rework flag; in start order) with the standard route.

    skipped: a standard phase never executed; out_of_order: the first executions of standard
    phases are not in standard order; rework: a rework pass or a phase executed twice; extra:
    a phase outside the standard route. Conformant: none of these."""
    standard_set = set(standard)
    seen_ids = [pid for pid, _ in executed]
    counts = Counter(seen_ids)
    skipped = [pid for pid in standard if pid not in counts]
    extra = sorted({pid for pid in seen_ids if pid not in standard_set})
    first_order = []
    for pid in seen_ids:
        if pid in standard_set and pid not in first_order:
            first_order.append(pid)
    expected = [pid for pid in standard if pid in counts]
    out_of_order = first_order != expected
    looped = sorted({pid for pid, rework in executed if rework} | {pid for pid, c in counts.items() if c > 1})
    return {
        "skipped": skipped, "extra": extra, "out_of_order": out_of_order, "rework": looped,
        "conformant": not skipped and not extra and not out_of_order and not looped,
    }
