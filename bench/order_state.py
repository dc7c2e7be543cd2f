"""Benchmark: the order-state query for one as-of at full scale, against the previous schedule/current query.

Usage: DATABASE_URL=... .venv/bin/python bench/order_state.py [--as-of DATE] [--repeat 7]
Runs, in one process and one run (this machine is shared and noisy: compare the ratio, not the seconds):
- reference: the WIP-positions statement that schedule/current ran before the order-state model (kept here
  verbatim as the yardstick), for one as-of;
- the order-state function at that as-of as orders.selectors.open_orders_at runs it (every order created by
  then is placed; the open ones' rows come back), its thresholds already computed (what every reader runs once
  the per-as-of thresholds are cached), and cold (thresholds computed too); and the count of every state;
- schedule/current end to end with the cache off.
Prints and saves bench/results/order_state.json with medians and the ratio to the reference (goal: <= 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")

# The statement schedule/current ran before the order-state model (orders/selectors.py at commit 9ed0147).
REFERENCE_POSITIONS_SQL = """
WITH snaps AS (SELECT unnest(%(snaps)s::timestamptz[]) AS t),
open_orders AS (
    SELECT s.t, o.id AS order_id, o.created_at, o.product_id
    FROM snaps s JOIN orders_manufacturingorder o
      ON o.created_at <= s.t AND (o.finished_at IS NULL OR o.finished_at > s.t)
),
ph AS (
    SELECT oo.t, oo.order_id, oo.created_at, oo.product_id, p.phase_id, p.sequence, p.id, p.started_at,
           (p.started_at <= oo.t AND (p.ended_at IS NULL OR p.ended_at > oo.t)) AS in_progress,
           (p.started_at IS NULL OR p.started_at > oo.t) AS not_started,
           max(CASE WHEN p.ended_at <= oo.t THEN p.ended_at END) OVER w AS last_end,
           count(*) FILTER (WHERE p.is_rework AND p.started_at <= oo.t) OVER w AS reworks
    FROM open_orders oo JOIN orders_orderphase p ON p.order_id = oo.order_id
    WINDOW w AS (PARTITION BY oo.t, oo.order_id)
)
SELECT DISTINCT ON (t, order_id) t, order_id, created_at, product_id, phase_id, in_progress, reworks,
       CASE WHEN in_progress THEN started_at ELSE coalesce(last_end, created_at) END AS entered_at
FROM ph
WHERE (in_progress OR not_started) AND phase_id IS NOT NULL
ORDER BY t, order_id, in_progress DESC, CASE WHEN in_progress THEN started_at END DESC NULLS LAST,
         sequence NULLS LAST, id
"""


def _median_seconds(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    import django

    django.setup()
    from django.core.cache import cache
    from django.db import connection
    from ingest import cpu_calibration_seconds

    from orders import selectors
    from prodplan.asof import data_as_of, parse_as_of

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "order_state.json"))
    args = parser.parse_args()
    as_of = parse_as_of(args.as_of) or data_as_of()
    if as_of is None:
        sys.exit("no data: ingest a workbook first (make bench-ingest, or manage.py ingest)")

    def fetch(sql: str, params) -> list:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def reference():
        return fetch(REFERENCE_POSITIONS_SQL, {"snaps": [as_of]})

    state_sql = f"SELECT * FROM {selectors.ORDER_STATE_CALL} WHERE state <> 'finished'"  # noqa: S608 - constant text
    counts_sql = f"SELECT state, count(*) FROM {selectors.ORDER_STATE_CALL} GROUP BY state"  # noqa: S608

    def state_counts():
        return fetch(counts_sql, selectors.order_state_params(as_of=as_of))

    def state_warm():
        return fetch(state_sql, selectors.order_state_params(as_of=as_of))

    def state_cold():
        cache.clear()
        return fetch(state_sql, selectors.order_state_params(as_of=as_of))

    def schedule_uncached():
        cache.clear()
        return selectors.schedule_current(as_of=as_of)

    reference()  # warm the buffers and the plan caches for both
    state_warm()
    ref_s, ref_rows = _median_seconds(reference, args.repeat)
    warm_s, rows = _median_seconds(state_warm, args.repeat)
    cold_s, _ = _median_seconds(state_cold, args.repeat)
    counts_s, counts = _median_seconds(state_counts, args.repeat)
    schedule_s, schedule = _median_seconds(schedule_uncached, args.repeat)
    figures = {
        "as_of": as_of.isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "cpu_calibration_seconds": cpu_calibration_seconds()},
        "repeat": args.repeat,
        "orders": {"created_by_as_of": sum(n for _, n in counts), "open": len(rows), "reference_positions": len(ref_rows),
                   "states": schedule["states"], "placement": schedule["placement"]},
        "seconds_median": {"reference_schedule_positions": round(ref_s, 4), "order_state_warm": round(warm_s, 4),
                           "order_state_cold_with_thresholds": round(cold_s, 4),
                           "order_state_counts_all_orders": round(counts_s, 4),
                           "schedule_current_uncached": round(schedule_s, 4)},
        "ratio_order_state_to_reference": round(warm_s / ref_s, 3),
        "ratio_cold_to_reference": round(cold_s / ref_s, 3),
        "ratio_counts_to_reference": round(counts_s / ref_s, 3),
        "goal": "order-state query for one as_of within 2x of the previous schedule/current query",
    }
    figures["met"] = {"order_state_within_2x_of_schedule_current": figures["ratio_order_state_to_reference"] <= 2.0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
