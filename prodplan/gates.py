"""Honest figures: basis/coverage wrappers and the NOT_SUPPORTED_BY_DATA payload."""

from __future__ import annotations

from typing import Any

OBSERVED = "observed"
THEORETICAL = "theoretical"
IMPUTED = "imputed"
NOT_SUPPORTED = "NOT_SUPPORTED_BY_DATA"


def figure(value: Any, *, basis: str, coverage: float | None, **extra: Any) -> dict:
    """A number with what it stands on: basis and coverage (share of rows that support it)."""
    return {"value": value, "basis": basis, "coverage": None if coverage is None else round(float(coverage), 4), **extra}


def not_supported(*, feature: str, reason: str, measured: float | None, threshold: float | None, **extra: Any) -> dict:
    return {
        "status": NOT_SUPPORTED,
        "feature": feature,
        "reason": reason,
        "measured": None if measured is None else round(float(measured), 4),
        "threshold": threshold,
        **extra,
    }


def ratio(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator
