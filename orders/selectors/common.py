"""Shared helpers of the orders selectors: SQL fetch, rounding, product payloads, phase names."""

from __future__ import annotations

from django.db import connection
from django.db.models import FloatField, Func

from orders.models import (
    Phase,
)
from prodplan.cache import versioned_cache

DAY = 86400.0


UNKNOWN_PRODUCT = "unknown product"


TREND_WEEKS = 12


class EpochSeconds(Func):
    """EXTRACT(EPOCH FROM <interval>) as a float."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _fetch(sql: str, params=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _product_payload(product_id, name, family) -> dict | None:
    if product_id is None:
        return None
    if name is None:
        return {"id": product_id, "name": UNKNOWN_PRODUCT, "family": "UNKNOWN", "is_known": False}
    return {"id": product_id, "name": name, "family": family, "is_known": True}


@versioned_cache("orders.phase_names", in_process=True)
def phase_names() -> dict[int, str]:
    return dict(Phase.objects.values_list("id", "name"))


@versioned_cache("orders.phase_choices")
def phase_choices() -> list[tuple[int, str]]:
    """(id, name) of every phase in route order, for a page's phase filter."""
    return list(Phase.objects.order_by("sequence", "id").values_list("id", "name"))
