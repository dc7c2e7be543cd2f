"""The risk queue: active orders scored by age, bottleneck, rework and product defects."""

from __future__ import annotations

from datetime import datetime

from orders.maths import RISK_WEIGHTS, risk_score
from orders.selectors.bottlenecks import bottleneck_table
from orders.selectors.common import _fetch, phase_names
from orders.selectors.state import active_orders_at, stalled_block, state_summary
from prodplan.cache import versioned_cache
from prodplan.gates import (
    THEORETICAL,
)


@versioned_cache("orders.product_defect_rates")
def _product_defect_rates(*, as_of: datetime) -> dict[int, float]:
    """Share of each product's orders finished by as_of with at least one quality error."""

    # An error is known at as_of when the order phase where it was found had started by then (errors carry no
    # date of their own), or, found at no known order phase, when its order had finished by then.
    rows = _fetch(
        """
        WITH finished AS MATERIALIZED (
            SELECT id, product_id FROM orders_manufacturingorder
            WHERE finished_at <= %(as_of)s AND product_id IS NOT NULL
        ), known_errors AS (
            SELECT DISTINCT e.order_id
            FROM quality_qualityerror e
            JOIN finished f ON f.id = e.order_id
            LEFT JOIN orders_orderphase p ON p.id = e.found_order_phase_id AND p.order_id = e.order_id
            WHERE p.started_at <= %(as_of)s OR p.id IS NULL  -- found at no known phase of the order
        )
        SELECT f.product_id, count(*) AS n, count(k.order_id) AS with_errors
        FROM finished f LEFT JOIN known_errors k ON k.order_id = f.id
        GROUP BY f.product_id
        """, {"as_of": as_of}
    )
    return {r["product_id"]: r["with_errors"] / r["n"] for r in rows if r["n"]}


@versioned_cache("orders.risk_rows", warm=True)
def _risk_rows(*, as_of: datetime) -> list[dict]:
    """Every active order at as_of (not stalled, not abandoned) with its risk components, score and reasons."""
    names = phase_names()
    ranks = {row["phase_id"]: row["rank"] for row in bottleneck_table(as_of=as_of)
             if row["enough_volume"] and row["queue_score_hours"] > 0}
    defects = _product_defect_rates(as_of=as_of)
    out = []
    for o in active_orders_at(as_of=as_of):
        age = o["age_days"] or 0.0
        late, p75 = o["late_days"], o["p75_days"]
        rank = ranks.get(o["phase_id"])
        reworks = o["reworks"]
        score, parts = risk_score(age_days=age, late_days=late, bottleneck_rank=rank, reworks=reworks,
                                  defect_share=defects.get(o["product_id"], 0.0))
        age_c, bottleneck_c, rework_c, defect_c = parts["age"], parts["bottleneck"], parts["rework"], parts["defects"]
        reasons = []
        if late and age > late:
            reasons.append({"code": "older_than_p90", "age_days": round(age, 1), "threshold_days": round(late, 1),
                            "scope": o["threshold_scope"]})
        elif p75 and age > p75:
            reasons.append({"code": "older_than_p75", "age_days": round(age, 1), "threshold_days": round(p75, 1),
                            "scope": o["threshold_scope"]})
        if bottleneck_c:
            reasons.append({"code": "at_bottleneck", "rank": rank, "state": o["state"],
                            "phase": names.get(o["phase_id"], o["phase_id"])})
        if reworks:
            reasons.append({"code": "reworks", "count": reworks})
        if defect_c >= 0.5:
            reasons.append({"code": "product_defects", "share": round(defect_c, 2)})
        out.append({
            "order_id": o["order_id"], "product_id": o["product_id"], "age_days": round(age, 3),
            "state": o["state"],
            "phase": None if o["phase_id"] is None else {"id": o["phase_id"], "name": names.get(o["phase_id"]),
                                                         "state": o["state"]},
            "placement_basis": o["placement_basis"],
            "score": round(score, 4),
            "components": {"age": round(age_c, 4), "bottleneck": round(bottleneck_c, 4),
                           "rework": round(rework_c, 4), "defects": round(defect_c, 4)},
            "reasons": reasons,
        })
    out.sort(key=lambda r: (-r["score"], r["order_id"]))
    return out


def risk_scores(*, as_of: datetime) -> dict[int, float]:
    """Active order id → risk score in [0, 1] at as_of (the risk queue's score)."""
    return {row["order_id"]: row["score"] for row in _risk_rows(as_of=as_of)}


RISK_METHOD = (
    "Active orders only (stalled and abandoned orders are listed apart). score = 0.40*age + 0.25*bottleneck + "
    "0.15*rework + 0.20*defects, each in [0, 1]: age = min(1, age / the product's ORDER_LATE_PERCENTILE lead time "
    "(product, else family, else global history of orders finished by as_of)); bottleneck = 1, 2/3, 1/3 when the "
    "order waits or works at the #1, #2, #3 bottleneck phase (measured queue time), else 0; rework = min(1, rework "
    "passes started so far / 2); defects = share of the product's orders finished by as_of with a quality error."
)


def risk_queue(*, as_of: datetime, limit: int = 100) -> dict:
    rows = _risk_rows(as_of=as_of)
    summary = state_summary(as_of=as_of)
    return {"as_of": as_of, "method": RISK_METHOD, "weights": RISK_WEIGHTS, "basis": THEORETICAL,
            "open_orders": summary["open_orders"], "active_orders": len(rows), "orders": rows[:limit],
            "stalled": stalled_block(as_of=as_of, limit=limit)}
