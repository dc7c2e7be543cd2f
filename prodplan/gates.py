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


MATCH_RATE_RULE = (
    "match rate = the share of the distinct non-empty values of the referencing column that name an existing row "
    "of the target (the data contract's 'values match'); the rows that carry the matched values are reported "
    "beside it as matched_rows / rows"
)


def reference_match_sql(*, table: str, column: str, known_values_sql: str) -> str:
    """The one match-rate statement (MATCH_RATE_RULE): distinct values, matched distinct values, rows, orphan rows
    and a sample of orphan values of table.column against known_values_sql (a SELECT of one column named value)."""
    return (
        f"WITH v AS (SELECT {column} AS value, count(*) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY {column}), "
        f"x AS ({known_values_sql}), "
        "m AS (SELECT v.*, (x.value IS NOT NULL) AS matched FROM v LEFT JOIN x ON x.value = v.value) "
        "SELECT count(*), count(*) FILTER (WHERE matched), coalesce(sum(n) FILTER (WHERE NOT matched), 0), "
        "(SELECT coalesce(array_agg(value ORDER BY n DESC, value), '{}') FROM (SELECT value, n FROM m WHERE NOT matched ORDER BY n DESC, value LIMIT 20) t), "
        "coalesce(sum(n), 0) "
        "FROM m"
    )
