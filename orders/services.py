"""Writes of the orders domain: the aggregate tables refreshed after every ingestion."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection, transaction

from prodplan.cache import bump_data_version

logger = logging.getLogger(__name__)

AGGREGATE_TABLES = (
    "orders_leadtimepercentile",
    "orders_leadtimethreshold",
    "orders_ordersummary",
    "orders_productphasestat",
    "orders_phaseflowstat",
)

# Lead time of a finished order = ManufacturingOrder.lead_time_days; negative values (finish before
# creation) are data errors and are left out of every percentile.
_LEAD_TIME_SQL = """
INSERT INTO orders_leadtimepercentile (scope, key, n, p50, p75, p90, mean, at_risk_days, late_days)
SELECT 'product', o.product_id::text, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(0.75) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY o.lead_time_days),
       avg(o.lead_time_days),
       percentile_cont(%(risk)s) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(%(late)s) WITHIN GROUP (ORDER BY o.lead_time_days)
FROM orders_manufacturingorder o
WHERE o.lead_time_days >= 0 AND o.product_id IS NOT NULL
GROUP BY o.product_id
UNION ALL
SELECT 'family', p.family, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(0.75) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY o.lead_time_days),
       avg(o.lead_time_days),
       percentile_cont(%(risk)s) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(%(late)s) WITHIN GROUP (ORDER BY o.lead_time_days)
FROM orders_manufacturingorder o JOIN orders_product p ON p.id = o.product_id
WHERE o.lead_time_days >= 0
GROUP BY p.family
UNION ALL
SELECT 'global', 'all', count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(0.75) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY o.lead_time_days),
       avg(o.lead_time_days),
       percentile_cont(%(risk)s) WITHIN GROUP (ORDER BY o.lead_time_days),
       percentile_cont(%(late)s) WITHIN GROUP (ORDER BY o.lead_time_days)
FROM orders_manufacturingorder o
WHERE o.lead_time_days >= 0
"""

# Every product id that orders name (orphans included) or the catalogue holds gets the
# percentiles of its own history when it has enough, else its family's, else the global ones.
_THRESHOLD_SQL = """
INSERT INTO orders_leadtimethreshold (product_id, scope, n, p50, p75, p90, at_risk_days, late_days)
SELECT ids.product_id, chosen.scope, chosen.n, chosen.p50, chosen.p75, chosen.p90, chosen.at_risk_days, chosen.late_days
FROM (SELECT product_id FROM orders_manufacturingorder WHERE product_id IS NOT NULL
      UNION SELECT id FROM orders_product) ids
LEFT JOIN orders_product p ON p.id = ids.product_id
LEFT JOIN orders_leadtimepercentile lp ON lp.scope = 'product' AND lp.key = ids.product_id::text
LEFT JOIN orders_leadtimepercentile lf ON lf.scope = 'family' AND lf.key = p.family
CROSS JOIN orders_leadtimepercentile lg
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES
        (1, 'product', lp.n, lp.p50, lp.p75, lp.p90, lp.at_risk_days, lp.late_days),
        (2, 'family', lf.n, lf.p50, lf.p75, lf.p90, lf.at_risk_days, lf.late_days),
        (3, 'global', lg.n, lg.p50, lg.p75, lg.p90, lg.at_risk_days, lg.late_days)
    ) AS c(rank, scope, n, p50, p75, p90, at_risk_days, late_days)
    WHERE c.rank = 3 OR c.n >= %(min_n)s
    ORDER BY c.rank LIMIT 1
) chosen
WHERE lg.scope = 'global'
"""

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

# Queue time: the previous phase of the same order (by sequence, then id) ended → this one
# started, floored at 0 (overlapping phases queue for nothing). Touch time: start → end.
_PHASE_FLOW_SQL = """
INSERT INTO orders_phaseflowstat
    (phase_id, touch_n, touch_p50_seconds, touch_p90_seconds, queue_n, queue_p50_seconds, queue_p90_seconds, executions)
SELECT phase_id,
       count(duration_seconds),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_seconds),
       count(queue_seconds),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY queue_seconds),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY queue_seconds),
       count(*)
FROM (
    SELECT phase_id, duration_seconds,
           CASE WHEN started_at IS NOT NULL AND prev_end IS NOT NULL
                THEN greatest(0, extract(epoch FROM started_at - prev_end)) END AS queue_seconds
    FROM (
        SELECT phase_id, duration_seconds, started_at,
               lag(ended_at) OVER (PARTITION BY order_id ORDER BY sequence NULLS LAST, id) AS prev_end
        FROM orders_orderphase
    ) ordered
) flows
WHERE phase_id IS NOT NULL
GROUP BY phase_id
"""


@transaction.atomic
def refresh_aggregates(*, warm_cache: bool = True) -> None:
    """Rebuild every orders aggregate table from the stored rows (idempotent; one transaction).

    warm_cache=False skips the post-commit cache warm-up (the caller knows nobody would read it)."""
    started = time.monotonic()
    params = {
        "risk": settings.ORDER_AT_RISK_PERCENTILE,
        "late": settings.ORDER_LATE_PERCENTILE,
        "min_n": settings.MIN_HISTORY_FOR_PRODUCT_PERCENTILE,
    }
    with connection.cursor() as cursor:
        # DELETE, not TRUNCATE: readers keep seeing the old rows until this transaction commits.
        for table in AGGREGATE_TABLES:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names
        cursor.execute(_LEAD_TIME_SQL, params)
        cursor.execute(_THRESHOLD_SQL, params)
        cursor.execute(_ORDER_SUMMARY_SQL)
        cursor.execute(_PRODUCT_PHASE_SQL)
        cursor.execute(_PHASE_FLOW_SQL)
        for table in AGGREGATE_TABLES:
            cursor.execute(f"ANALYZE {table}")
    bump_data_version()
    logger.info("orders aggregates refreshed", extra={"seconds": round(time.monotonic() - started, 3)})
    if warm_cache:
        from orders.tasks import warm_orders_cache_task

        # The first supervisor to open the overview after an ingestion should not pay for its analytics.
        transaction.on_commit(warm_orders_cache_task.delay, robust=True)


def orders_cache_warm() -> list[str]:
    """Compute the overview's cached analytics at the data's as-of date, and every product's route (idempotent)."""
    from orders import selectors
    from prodplan.asof import data_as_of

    as_of = data_as_of()
    if as_of is None:
        return []
    selectors.kpi_overview(as_of=as_of)
    selectors.schedule_current(as_of=as_of)
    selectors.bottlenecks(as_of=as_of)
    selectors.risk_queue(as_of=as_of)
    selectors.routes_warm()
    return ["kpi_overview", "schedule_current", "bottlenecks", "risk_queue", "routes"]
