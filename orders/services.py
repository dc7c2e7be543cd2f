"""Writes of the orders domain: the aggregate tables refreshed after every ingestion."""

from __future__ import annotations

import logging
import time

from django.db import connection, transaction

from orders import selectors
from orders.models import BottleneckBacktest, ManufacturingOrder, OrderAbandonment
from prodplan.asof import data_as_of
from prodplan.cache import bump_data_version
from prodplan.task_queue import task_named
from prodplan.warmup import warm_app_caches

logger = logging.getLogger(__name__)

AGGREGATE_TABLES = (
    "orders_ordersummary",
    "orders_productphasestat",
)

_ORDER_SUMMARY_SQL = """
INSERT INTO orders_ordersummary
    (order_id, phase_count, started_count, done_count, rework_count, error_count, first_started_at, last_ended_at)
SELECT o.id, coalesce(ph.n, 0), coalesce(ph.started, 0), coalesce(ph.done, 0), coalesce(ph.rework, 0),
       coalesce(er.n, 0), ph.first_started_at, ph.last_ended_at
FROM orders_manufacturingorder o
LEFT JOIN (
    SELECT order_id, count(*) AS n, count(started_at) AS started, count(ended_at) AS done,
           count(*) FILTER (WHERE is_rework) AS rework, min(started_at) AS first_started_at,
           max(ended_at) AS last_ended_at
    FROM orders_orderphase GROUP BY order_id
) ph ON ph.order_id = o.id
LEFT JOIN (SELECT order_id, count(*) AS n FROM quality_qualityerror GROUP BY order_id) er ON er.order_id = o.id
"""

_PRODUCT_PHASE_SQL = """
INSERT INTO orders_productphasestat (product_id, phase_id, n, duration_p50_seconds, duration_p90_seconds)
SELECT o.product_id, p.phase_id, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.duration_seconds),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY p.duration_seconds)
FROM orders_orderphase p JOIN orders_manufacturingorder o ON o.id = p.order_id
WHERE p.duration_seconds IS NOT NULL AND p.phase_id IS NOT NULL AND o.product_id IS NOT NULL
GROUP BY o.product_id, p.phase_id
"""

@transaction.atomic
def refresh_aggregates(*, warm_cache: bool = True) -> None:
    """Rebuild every orders aggregate table from the stored rows (idempotent; one transaction).

    warm_cache=False skips the post-commit cache warm-up (the caller knows nobody would read it)."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        # DELETE, not TRUNCATE: readers keep seeing the old rows until this transaction commits.
        for table in AGGREGATE_TABLES:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names
        cursor.execute(_ORDER_SUMMARY_SQL)
        cursor.execute(_PRODUCT_PHASE_SQL)
        for table in AGGREGATE_TABLES:
            cursor.execute(f"ANALYZE {table}")
    bump_data_version()
    logger.info("orders aggregates refreshed", extra={"seconds": round(time.monotonic() - started, 3)})
    if warm_cache:
        # The first supervisor to open the overview after an ingestion should not pay for its analytics.
        transaction.on_commit(task_named("orders.warm_cache").delay, robust=True)


def orders_cache_warm() -> list[str]:
    """Compute the overview's cached analytics (the selectors marked warm=...) at the data's as-of date, and every
    product's route (idempotent); returns their cache names."""
    warmed = warm_app_caches(selectors)
    if not warmed:
        return []
    selectors.routes_warm()
    return [*warmed, selectors.route.cache_name]


class OrderNotAbandonable(ValueError):
    """The order cannot be marked abandoned (unknown, or finished in the data)."""


@transaction.atomic
def order_abandon(*, order_id: int, marked_by: str, reason: str = "") -> OrderAbandonment:
    """Mark an open order as abandoned: kept in the data, hidden from planning (its state becomes 'abandoned')."""
    order = ManufacturingOrder.objects.filter(id=order_id).values("finished_at").first()
    if order is None:
        raise OrderNotAbandonable(f"order {order_id} is not in the data")
    if order["finished_at"] is not None:
        raise OrderNotAbandonable(f"order {order_id} is finished: only open orders can be abandoned")
    mark, _ = OrderAbandonment.objects.update_or_create(
        order_id=order_id, defaults={"marked_by": marked_by, "reason": reason})
    bump_data_version()  # every cached state, WIP and ranking changes with it
    logger.info("order marked abandoned", extra={"order_id": order_id})
    return mark


@transaction.atomic
def order_unabandon(*, order_ids: list[int]) -> int:
    """Take the abandonment mark off these orders (they return to planning); returns how many were marked."""
    deleted, _ = OrderAbandonment.objects.filter(order_id__in=order_ids).delete()
    if deleted:
        bump_data_version()
    return deleted


@transaction.atomic
def bottleneck_backtest_record(*, start, weeks: int, horizon_days: int | None = None) -> BottleneckBacktest:
    """Replay the bottleneck ranking at weekly dates from start and store how often #1 was right."""
    horizon = horizon_days or selectors.BOTTLENECK_BACKTEST_HORIZON_DAYS
    weekly = selectors.bottleneck_backtest(start=start, weeks=weeks, horizon_days=horizon)
    scored = [w for w in weekly if w["hit"] is not None]
    result = BottleneckBacktest.objects.create(
        start=start, weeks=weeks, horizon_days=horizon, scored_weeks=len(scored),
        hits=sum(1 for w in scored if w["hit"]), data_as_of=data_as_of(),
        weekly=[{**w, "date": w["date"].isoformat()} for w in weekly],
    )
    bump_data_version()  # the ranking's pages and API show the latest score
    return result
