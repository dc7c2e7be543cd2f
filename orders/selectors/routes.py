"""An order's timeline and the products' standard routes against the executed ones."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from django.db import connection

from orders.maths import classify_route
from orders.models import (
    Product,
    ProductPhaseStat,
    RouteStep,
)
from orders.selectors.common import _fetch, _product_payload, _r, phase_names
from prodplan.cache import versioned_cache
from prodplan.db import fetch_prepared
from prodplan.gates import (
    OBSERVED,
    figure,
    ratio,
)


def order_phases(*, order_id: int, as_of: datetime) -> dict | None:
    """The order's timeline as known at as_of (phases with names, team size where assignments match) and route comparison.

    A start or end after as_of is not known then: the phase shows as not started or in progress.

    3 queries: the order, its phases (index orders_op_order_seq_idx in every partition), and the
    product's standard route. The assignments are looked up by the order's phase ids as an array
    (an InitPlan): the primary-key index of each hash partition, ~2 ms. A plain IN (subquery) is
    planned as a hash join over every assignment (the planner expects ~2,700 phases per order from
    the sum of 57 partition estimates): 75-110 ms at full scale."""
    found = fetch_prepared(  # an order created after as_of was not known then (as order_detail)
        "SELECT id, product_id, finished_at <= %s AS finished FROM orders_manufacturingorder "
        "WHERE id = %s AND (created_at <= %s OR created_at IS NULL)",
        (as_of, order_id, as_of))
    if not found:
        return None
    order = found[0]
    phases = fetch_prepared(
        """
        SELECT p.id, p.phase_id, ph.name AS phase_name, p.sequence,
               CASE WHEN p.started_at <= %(as_of)s THEN p.started_at END AS started_at,
               CASE WHEN p.ended_at <= %(as_of)s THEN p.ended_at END AS ended_at, p.planned_at,
               CASE WHEN p.ended_at <= %(as_of)s THEN p.duration_seconds END AS duration_seconds,
               p.shift, p.is_rework, t.team_size, t.leaders
        FROM orders_orderphase p
        LEFT JOIN orders_phase ph ON ph.id = p.phase_id
        LEFT JOIN (
            SELECT a.order_phase_id, count(*) AS team_size, count(*) FILTER (WHERE a.is_leader) AS leaders
            FROM orders_phaseassignment a
            WHERE a.order_phase_id = ANY(ARRAY(SELECT id FROM orders_orderphase WHERE order_id = %(order_id)s))
            GROUP BY a.order_phase_id
        ) t ON t.order_phase_id = p.id
        WHERE p.order_id = %(order_id)s
        ORDER BY p.sequence NULLS LAST, p.id
        """,
        {"order_id": order_id, "as_of": as_of},
    )
    route = fetch_prepared(
        "SELECT phase_id, sequence FROM orders_routestep WHERE product_id = %s ORDER BY sequence, phase_id",
        (order["product_id"],),
    ) if order["product_id"] is not None else []
    names = phase_names()
    standard_ids = [step["phase_id"] for step in route]
    observed_ids = {p["phase_id"] for p in phases if p["started_at"] or p["ended_at"]}
    # A step not executed is missing once the order finished or went past it; an open order's later steps are pending.
    reached = max((step["sequence"] for step in route if step["phase_id"] in observed_ids), default=None)
    missing = [step for step in route if step["phase_id"] not in observed_ids
               and (order["finished"] or (reached is not None and step["sequence"] < reached))]
    extra_ids = sorted({pid for pid in observed_ids if pid is not None and pid not in set(standard_ids)})
    matched = sum(1 for p in phases if p["team_size"])
    return {
        "order_id": order_id,
        "product_id": order["product_id"],
        "phases": [
            {
                "id": p["id"],
                "phase": None if p["phase_id"] is None else {"id": p["phase_id"], "name": p["phase_name"]},
                "sequence": p["sequence"],
                "start": p["started_at"],
                "end": p["ended_at"],
                "duration_hours": _r(p["duration_seconds"] / 3600.0 if p["duration_seconds"] is not None else None, 4),
                "shift": p["shift"],
                "is_rework": p["is_rework"],
                "state": "done" if p["ended_at"] else ("in_progress" if p["started_at"] else "not_started"),
                "planned": p["planned_at"],
                "team_size": p["team_size"],
                "team_leaders": p["leaders"],
            }
            for p in phases
        ],
        "planned_date_coverage": _r(ratio(sum(1 for p in phases if p["planned_at"]), len(phases)), 4),
        "team_size_coverage": _r(ratio(matched, len(phases)), 4),
        "route_comparison": {
            "has_standard_route": bool(route),
            "standard_steps": [{"phase_id": s["phase_id"], "name": names.get(s["phase_id"]), "sequence": s["sequence"]} for s in route],
            "missing_steps": [{"phase_id": s["phase_id"], "name": names.get(s["phase_id"]), "sequence": s["sequence"]} for s in missing],
            "extra_steps": [{"phase_id": pid, "name": names.get(pid)} for pid in extra_ids],
        },
    }


def phase_medians_known_at(*, product_id: int, phase_ids: list[int], as_of: datetime) -> dict[int, float]:
    """Median duration (seconds) of each given phase over the product's phase executions ended by as_of (what was
    known then: no hindsight). A phase never ended by then is absent. 1 query (order ids first as an array, as route)."""
    if not phase_ids:
        return {}
    rows = fetch_prepared(
        """
        SELECT p.phase_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY p.duration_seconds) AS p50
        FROM orders_orderphase p
        WHERE p.order_id = ANY(ARRAY(SELECT o.id FROM orders_manufacturingorder o WHERE o.product_id = %(pid)s))
          AND p.phase_id = ANY(%(phases)s) AND p.ended_at <= %(as_of)s AND p.duration_seconds > 0
        GROUP BY p.phase_id
        """,
        {"pid": product_id, "phases": list(phase_ids), "as_of": as_of},
    )
    return {r["phase_id"]: float(r["p50"]) for r in rows if r["p50"] is not None}

_ROUTE_EXECUTIONS_SQL = """
SELECT p.order_id, p.phase_id, p.is_rework
FROM orders_orderphase p
WHERE p.order_id = ANY(ARRAY(
    SELECT o.id FROM orders_manufacturingorder o WHERE o.product_id = %(pid)s AND o.is_open = false
))
  AND p.started_at IS NOT NULL AND p.phase_id IS NOT NULL
ORDER BY p.order_id, p.started_at, p.sequence NULLS LAST, p.id
"""


# Every product at once (the post-ingestion warm-up): one pass over the finished orders' phases.
_ALL_ROUTE_EXECUTIONS_SQL = """
SELECT o.product_id, p.order_id, p.phase_id, p.is_rework
FROM orders_orderphase p JOIN orders_manufacturingorder o ON o.id = p.order_id
WHERE o.is_open = false AND o.product_id IS NOT NULL AND p.started_at IS NOT NULL AND p.phase_id IS NOT NULL
ORDER BY p.order_id, p.started_at, p.sequence NULLS LAST, p.id
"""


@versioned_cache("orders.route")
def route(*, product_id: int) -> dict:
    """The product's standard route with observed durations per step, and the conformance of its finished orders."""
    product = Product.objects.filter(id=product_id).values("id", "name", "family").first()
    steps = list(RouteStep.objects.filter(product_id=product_id).order_by("sequence", "phase_id").values(*_STEP_FIELDS))
    stats = {s["phase_id"]: s for s in ProductPhaseStat.objects.filter(product_id=product_id).values()}
    # Executed phases of the product's finished orders, in start order. The order ids come first as an
    # array (InitPlan on orders_mo_product_created_idx), so each partition answers from its
    # (order_id, sequence, id) index: 1-25 ms. A join is planned as a hash join over all ~520k phases
    # (80-170 ms at full scale), whatever the product.
    by_order: dict[int, list] = defaultdict(list)
    for r in _fetch(_ROUTE_EXECUTIONS_SQL, {"pid": product_id}):
        by_order[r["order_id"]].append((r["phase_id"], r["is_rework"]))
    return _route_payload(product_id, product, steps, stats, by_order, phase_names())


_STEP_FIELDS = ("phase_id", "sequence", "labour_coefficient", "machine_coefficient")


def routes_warm() -> int:
    """Compute and cache route(product_id) for every catalogued product in one pass (after an ingestion).

    Per product the answer costs 1-25 ms of SQL plus the classification of its orders; the first
    supervisor (or API client) to open each of ~900 products would pay it. Returns the products cached."""
    names = phase_names()
    products = {p["id"]: p for p in Product.objects.values("id", "name", "family")}
    steps: dict[int, list] = defaultdict(list)
    for step in RouteStep.objects.order_by("product_id", "sequence", "phase_id").values("product_id", *_STEP_FIELDS):
        steps[step.pop("product_id")].append(step)
    stats: dict[int, dict] = defaultdict(dict)
    for row in ProductPhaseStat.objects.values():
        stats[row["product_id"]][row["phase_id"]] = row
    executions: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    with connection.cursor() as cursor:
        cursor.execute(_ALL_ROUTE_EXECUTIONS_SQL)
        for product_id, order_id, phase_id, is_rework in cursor.fetchall():
            executions[product_id][order_id].append((phase_id, is_rework))
    route.prime(({"product_id": pid}, _route_payload(pid, product, steps.get(pid, []), stats.get(pid, {}),
                                                      executions.get(pid, {}), names))
                for pid, product in products.items())
    return len(products)


def _route_payload(product_id: int, product: dict | None, steps: list[dict], stats: dict, by_order: dict, names: dict) -> dict:
    standard = [s["phase_id"] for s in steps]
    tallies = Counter()
    deviations = Counter()
    for executed in by_order.values():
        result = classify_route(standard, executed)
        for key in ("conformant", "out_of_order"):
            tallies[key] += bool(result[key])
        for key in ("skipped", "extra", "rework"):
            tallies[key] += bool(result[key])
            for pid in result[key]:
                deviations[(key, pid)] += 1
        if result["out_of_order"]:
            deviations[("out_of_order", None)] += 1
    n_orders = len(by_order)

    def share(key: str) -> dict:
        return figure(_r(ratio(tallies[key], n_orders)), basis=OBSERVED, coverage=1.0 if n_orders else 0.0, n=tallies[key])

    return {
        "product": _product_payload(product_id, product and product["name"], product and product["family"]),
        "steps": [
            {
                "sequence": s["sequence"],
                "phase": {"id": s["phase_id"], "name": names.get(s["phase_id"])},
                "labour_coefficient": s["labour_coefficient"],
                "machine_coefficient": s["machine_coefficient"],
                "duration_hours_p50": figure(
                    _r(stats[s["phase_id"]]["duration_p50_seconds"] / 3600.0) if s["phase_id"] in stats else None,
                    basis=OBSERVED, coverage=None, n=stats.get(s["phase_id"], {}).get("n", 0)),
                "duration_hours_p90": figure(
                    _r(stats[s["phase_id"]]["duration_p90_seconds"] / 3600.0) if s["phase_id"] in stats else None,
                    basis=OBSERVED, coverage=None, n=stats.get(s["phase_id"], {}).get("n", 0)),
                "n": stats.get(s["phase_id"], {}).get("n", 0),
            }
            for s in steps
        ],
        "conformance": {
            "orders": n_orders,
            "followed_standard": share("conformant"),
            "skipped_steps": share("skipped"),
            "out_of_order": share("out_of_order"),
            "looped_back": share("rework"),
            "extra_steps": share("extra"),
            "most_common_deviations": [
                {"kind": kind, "phase": None if pid is None else {"id": pid, "name": names.get(pid)}, "orders": count}
                for (kind, pid), count in sorted(deviations.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or 0))[:10]
            ],
        },
    }
