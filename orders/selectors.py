"""Reads of the orders domain: order status, timelines, routes, WIP, bottlenecks, risk and KPIs.

Definitions used throughout (and in the API schema):

- Lead time of an order: finished - created, in days (ManufacturingOrder.lead_time_days); negative
  values are data errors and are left out. Historical percentiles use percentile_cont (linear).
- Order status at the as-of time T: DONE (finished at or before T); otherwise LATE when its age
  (T - created) exceeds the product's ORDER_LATE_PERCENTILE lead time, AT_RISK when it exceeds the
  ORDER_AT_RISK_PERCENTILE one, CREATED when no phase has started by T, else IN_PROGRESS. The
  percentiles are the product's own when it has at least MIN_HISTORY_FOR_PRODUCT_PERCENTILE finished
  orders, else its family's (when that has enough), else the global ones. Basis: theoretical.
- Position of an open order at T: the phase it is in (started, not ended at T; the latest start
  wins), else the first phase (by sequence, then id) not started by T, where it waits. It entered
  that state at the phase's start (in progress) or at its last phase end (waiting; creation if none).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce

from orders.choices import OrderStatus
from orders.models import (
    Employee,
    LeadTimePercentile,
    LeadTimeThreshold,
    ManufacturingOrder,
    OrderSummary,
    Phase,
    PhaseFlowStat,
    Product,
    ProductPhaseStat,
    RouteStep,
)
from prodplan.cache import cached, cached_in_process
from prodplan.db import fetch_prepared
from prodplan.gates import OBSERVED, THEORETICAL, figure, not_supported, ratio
from prodplan.stats import percentile

DAY = 86400.0
UNKNOWN_PRODUCT = "unknown product"
THROUGHPUT_WINDOW_DAYS = 28
TREND_WEEKS = 12
AGE_BUCKETS = ((0, 7, "0-7d"), (7, 14, "7-14d"), (14, 30, "14-30d"), (30, 60, "30-60d"), (60, math.inf, "60d+"))

# Risk score weights (sum to 1); see risk_queue().
RISK_WEIGHTS = {"age": 0.40, "bottleneck": 0.25, "rework": 0.15, "defects": 0.20}
BOTTLENECK_RANK_SCORE = {1: 1.0, 2: 2 / 3, 3: 1 / 3}
REWORK_SATURATION = 2


# --- helpers -------------------------------------------------------------------------------------


class EpochSeconds(Func):
    """EXTRACT(EPOCH FROM <interval>) as a float."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _fetch(sql: str, params=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 4)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _product_payload(product_id, name, family) -> dict | None:
    if product_id is None:
        return None
    if name is None:
        return {"id": product_id, "name": UNKNOWN_PRODUCT, "family": "UNKNOWN", "is_known": False}
    return {"id": product_id, "name": name, "family": family, "is_known": True}


def phase_names() -> dict[int, str]:
    return cached_in_process("orders.phase_names", lambda: dict(Phase.objects.values_list("id", "name")))


# --- lead-time percentiles and order status ------------------------------------------------------


def lead_time_percentiles() -> dict:
    """Historical lead-time percentiles (days) of finished orders: p50/p75/p90/mean and n.

    {"product": {product_id: {...}}, "family": {family: {...}}, "global": {...}}; read from the
    aggregate table refreshed after every ingestion."""

    def compute() -> dict:
        result: dict = {"product": {}, "family": {}, "global": None}
        for row in LeadTimePercentile.objects.values("scope", "key", "n", "p50", "p75", "p90", "mean"):
            stats = {k: row[k] for k in ("n", "p50", "p75", "p90", "mean")}
            if row["scope"] == "product":
                result["product"][int(row["key"])] = stats
            elif row["scope"] == "family":
                result["family"][row["key"]] = stats
            else:
                result["global"] = stats
        if result["global"] is None:
            result["global"] = {"n": 0, "p50": None, "p75": None, "p90": None, "mean": None}
        return result

    return cached_in_process("orders.lead_time_percentiles", compute)


def global_threshold() -> dict:
    def compute() -> dict:
        row = LeadTimePercentile.objects.filter(scope="global").values(
            "n", "p50", "p75", "p90", "at_risk_days", "late_days"
        ).first()
        return row or {"n": 0, "p50": None, "p75": None, "p90": None, "at_risk_days": None, "late_days": None}

    return cached_in_process("orders.global_threshold", compute)


def order_queryset(*, as_of: datetime) -> QuerySet:
    """Orders that exist at as_of, annotated with product, current phase, thresholds, age and status.

    One SQL statement: correlated subqueries on primary keys (product, phase, threshold, summary)."""
    glob = global_threshold()
    as_of_value = Value(as_of, output_field=DateTimeField())
    product = Product.objects.filter(id=OuterRef("product_id"))
    threshold = LeadTimeThreshold.objects.filter(product_id=OuterRef("product_id"))
    summary = OrderSummary.objects.filter(order_id=OuterRef("id"))
    phase = Phase.objects.filter(id=OuterRef("current_phase_id"))
    done = Q(finished_at__isnull=False, finished_at__lte=as_of)
    return (
        ManufacturingOrder.objects.filter(Q(created_at__lte=as_of) | Q(created_at__isnull=True))
        .annotate(
            product_name=Subquery(product.values("name")[:1]),
            product_family=Subquery(product.values("family")[:1]),
            current_phase_name=Subquery(phase.values("name")[:1]),
            at_risk_days=Coalesce(Subquery(threshold.values("at_risk_days")[:1]), Value(glob["at_risk_days"], FloatField())),
            late_days=Coalesce(Subquery(threshold.values("late_days")[:1]), Value(glob["late_days"], FloatField())),
            threshold_scope=Coalesce(Subquery(threshold.values("scope")[:1]), Value("global"), output_field=CharField()),
            first_started_at=Subquery(summary.values("first_started_at")[:1]),
            is_done_at=Case(When(done, then=Value(True)), default=Value(False), output_field=BooleanField()),
            age_days=EpochSeconds(as_of_value - F("created_at")) / DAY,
        )
        .annotate(
            status=Case(
                When(done, then=Value(OrderStatus.DONE)),
                When(age_days__gt=F("late_days"), then=Value(OrderStatus.LATE)),
                When(age_days__gt=F("at_risk_days"), then=Value(OrderStatus.AT_RISK)),
                When(Q(first_started_at__isnull=True) | Q(first_started_at__gt=as_of), then=Value(OrderStatus.CREATED)),
                default=Value(OrderStatus.IN_PROGRESS),
                output_field=CharField(),
            )
        )
        .order_by("-id")
    )


ORDER_FIELDS = (
    "id", "product_id", "product_name", "product_family", "created_at", "finished_at", "shipped_at",
    "current_phase_id", "current_phase_name", "status", "is_done_at", "age_days", "lead_time_days",
    "at_risk_days", "late_days", "threshold_scope",
)


def order_row_payload(row: dict) -> dict:
    """The API shape of one annotated order row (a dict of ORDER_FIELDS)."""
    done = row["is_done_at"]
    return {
        "id": row["id"],
        "product": _product_payload(row["product_id"], row["product_name"], row["product_family"]),
        "created": row["created_at"],
        "finished": row["finished_at"] if done else None,
        "status": row["status"],
        "current_phase": None if done or row["current_phase_id"] is None else {
            "id": row["current_phase_id"], "name": row["current_phase_name"],
        },
        "age_days": None if done or row["age_days"] is None else round(row["age_days"], 3),
        "lead_time_days": _r(row["lead_time_days"], 3) if done else None,
        "status_basis": {
            "basis": THEORETICAL,
            "threshold_scope": row["threshold_scope"],
            "at_risk_days": _r(row["at_risk_days"], 3),
            "late_days": _r(row["late_days"], 3),
        },
    }


# Compiled statements of order_queryset(...).filter(id=?) per (as_of, global thresholds): building and
# compiling that annotated queryset costs 5-8 ms of CPU per call, four times the query itself (~1.5 ms,
# primary-key lookups only), and it is the same statement for every order id.
_ORDER_ROW_SQL: dict[tuple, tuple[str, tuple, int]] = {}
_ORDER_ROW_SQL_MAX = 64
_ID_PLACEHOLDER = -7_316_209_153  # never an order id: marks the id's parameter slot in the compiled statement


def _order_row(*, order_id: int, as_of: datetime) -> dict | None:
    """order_queryset(as_of).filter(id=order_id).values(*ORDER_FIELDS).first(), from a memoized compiled statement."""
    glob = global_threshold()
    key = (as_of, glob["at_risk_days"], glob["late_days"])
    compiled = _ORDER_ROW_SQL.get(key)
    if compiled is None:
        queryset = order_queryset(as_of=as_of).filter(id=_ID_PLACEHOLDER).values(*ORDER_FIELDS)[:1]
        sql, params = queryset.query.sql_with_params()
        compiled = (sql, tuple(params), list(params).index(_ID_PLACEHOLDER))
        if len(_ORDER_ROW_SQL) >= _ORDER_ROW_SQL_MAX:
            _ORDER_ROW_SQL.clear()
        _ORDER_ROW_SQL[key] = compiled
    sql, params, slot = compiled
    rows = fetch_prepared(sql, params[:slot] + (order_id,) + params[slot + 1:])
    return rows[0] if rows else None


def order_detail(*, order_id: int, as_of: datetime) -> dict | None:
    """One order with status, thresholds and counts of phases, reworks and errors (2 queries)."""
    row = _order_row(order_id=order_id, as_of=as_of)
    if row is None:
        return None
    payload = order_row_payload(row)
    summaries = fetch_prepared("SELECT * FROM orders_ordersummary WHERE order_id = %s", (order_id,))
    summary = summaries[0] if summaries else {}
    payload["counts"] = {
        "phases": summary.get("phase_count", 0),
        "phases_started": summary.get("started_count", 0),
        "phases_done": summary.get("done_count", 0),
        "reworks": summary.get("rework_count", 0),
        "errors": summary.get("error_count", 0),
    }
    payload["first_phase_started"] = summary.get("first_started_at")
    payload["last_phase_ended"] = summary.get("last_ended_at")
    late = row["late_days"]
    reference = row["lead_time_days"] if row["is_done_at"] else row["age_days"]
    payload["age_vs_late_threshold"] = figure(
        _r(reference / late, 4) if reference is not None and late else None, basis=THEORETICAL, coverage=1.0 if late else 0.0
    )
    return payload


# --- timeline and routes ---------------------------------------------------------------------------


def order_phases(*, order_id: int) -> dict | None:
    """The order's timeline (phases with names, team size where assignments match) and route comparison.

    3 queries: the order, its phases (index orders_op_order_seq_idx in every partition), and the
    product's standard route. The assignments are looked up by the order's phase ids as an array
    (an InitPlan): the primary-key index of each hash partition, ~2 ms. A plain IN (subquery) is
    planned as a hash join over every assignment (the planner expects ~2,700 phases per order from
    the sum of 57 partition estimates): 75-110 ms at full scale."""
    found = fetch_prepared("SELECT id, product_id FROM orders_manufacturingorder WHERE id = %s", (order_id,))
    if not found:
        return None
    order = found[0]
    phases = fetch_prepared(
        """
        SELECT p.id, p.phase_id, ph.name AS phase_name, p.sequence, p.started_at, p.ended_at, p.planned_at,
               p.duration_seconds, p.shift, p.is_rework, p.is_open, p.is_done, t.team_size, t.leaders
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
        {"order_id": order_id},
    )
    route = fetch_prepared(
        "SELECT phase_id, sequence FROM orders_routestep WHERE product_id = %s ORDER BY sequence, phase_id",
        (order["product_id"],),
    ) if order["product_id"] is not None else []
    names = phase_names()
    standard_ids = [step["phase_id"] for step in route]
    observed_ids = {p["phase_id"] for p in phases}
    missing = [step for step in route if step["phase_id"] not in observed_ids]
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
                "state": "done" if p["is_done"] else ("in_progress" if p["is_open"] else "not_started"),
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


def route(*, product_id: int) -> dict:
    """The product's standard route with observed durations per step, and the conformance of its finished orders."""

    def compute() -> dict:
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

    return cached("orders.route", {"product_id": product_id}, compute)


_STEP_FIELDS = ("phase_id", "sequence", "labour_coefficient", "machine_coefficient")


def routes_warm() -> int:
    """Compute and cache route(product_id) for every catalogued product in one pass (after an ingestion).

    Per product the answer costs 1-25 ms of SQL plus the classification of its orders; the first
    supervisor (or API client) to open each of ~900 products would pay it. Returns the products cached."""
    from prodplan.cache import cache_key

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
    entries = {
        cache_key("orders.route", {"product_id": pid}): _route_payload(
            pid, product, steps.get(pid, []), stats.get(pid, {}), executions.get(pid, {}), names)
        for pid, product in products.items()
    }
    cache.set_many(entries, settings.CACHE_TTL_SECONDS)
    return len(entries)


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


# --- positions of open orders (WIP) -----------------------------------------------------------------

# Open orders at each snapshot (created <= t < finished) joined to their phases; the window max
# gives the last phase end before t; DISTINCT ON picks the in-progress phase (latest start) else
# the first not-started phase. Expected plan: hash/nested join of the few open orders per
# snapshot to orders_op_order_seq_idx in each partition.
_POSITIONS_SQL = """
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

_THROUGHPUT_SQL = """
SELECT s.t, p.phase_id, count(*) AS done
FROM (SELECT unnest(%(snaps)s::timestamptz[]) AS t) s
JOIN orders_orderphase p
  ON p.ended_at > s.t - make_interval(days => %(days)s) AND p.ended_at <= s.t
 AND p.event_time > s.t - make_interval(days => %(days)s) AND p.event_time <= s.t
WHERE p.phase_id IS NOT NULL
GROUP BY s.t, p.phase_id
"""


def positions(*, snapshots: list[datetime]) -> dict[datetime, list[dict]]:
    """Where every open order stands at each snapshot (see the module docstring), one query."""
    out: dict[datetime, list[dict]] = {t: [] for t in snapshots}
    rows = _fetch(_POSITIONS_SQL, {"snaps": list(snapshots)})
    index = {t: t for t in snapshots}
    for row in rows:
        t = index.get(row["t"], row["t"])
        out.setdefault(t, []).append(row)
    return out


def throughput(*, snapshots: list[datetime], days: int = THROUGHPUT_WINDOW_DAYS) -> dict[datetime, dict[int, int]]:
    """Phases ended in (t - days, t] per phase, per snapshot; one query (event_time = end for ended phases)."""
    out: dict[datetime, dict[int, int]] = {t: {} for t in snapshots}
    for row in _fetch(_THROUGHPUT_SQL, {"snaps": list(snapshots), "days": days}):
        out.setdefault(row["t"], {})[row["phase_id"]] = row["done"]
    return out


def open_order_count(*, as_of: datetime) -> int:
    return ManufacturingOrder.objects.filter(created_at__lte=as_of).filter(
        Q(finished_at__isnull=True) | Q(finished_at__gt=as_of)).count()


def schedule_current(*, as_of: datetime) -> dict:
    """WIP at as_of per phase: waiting vs in progress, the orders' age distribution, the oldest orders."""

    def compute() -> dict:
        names = phase_names()
        pos = positions(snapshots=[as_of])[as_of]
        open_total = open_order_count(as_of=as_of)
        per_phase: dict[int, list] = defaultdict(list)
        for p in pos:
            per_phase[p["phase_id"]].append(p)
        phases = []
        for phase_id, items in per_phase.items():
            ages = [(as_of - p["created_at"]).total_seconds() / DAY for p in items]
            buckets = {label: 0 for _, _, label in AGE_BUCKETS}
            for age in ages:
                for low, high, label in AGE_BUCKETS:
                    if low <= age < high:
                        buckets[label] += 1
                        break
            oldest = sorted(items, key=lambda p: (p["created_at"], p["order_id"]))[:5]
            phases.append({
                "phase": {"id": phase_id, "name": names.get(phase_id)},
                "wip": len(items),
                "waiting": sum(1 for p in items if not p["in_progress"]),
                "in_progress": sum(1 for p in items if p["in_progress"]),
                "age_days": {
                    "p50": _r(percentile(ages, 0.5), 3), "p90": _r(percentile(ages, 0.9), 3),
                    "max": _r(max(ages), 3), "buckets": buckets,
                },
                "oldest_orders": [
                    {"order_id": p["order_id"], "age_days": _r((as_of - p["created_at"]).total_seconds() / DAY, 3),
                     "state": "in_progress" if p["in_progress"] else "waiting",
                     "in_state_days": _r((as_of - p["entered_at"]).total_seconds() / DAY, 3)}
                    for p in oldest
                ],
            })
        phases.sort(key=lambda x: (-x["wip"], x["phase"]["id"]))
        return {
            "as_of": as_of,
            "open_orders": open_total,
            "positioned_orders": len(pos),
            "coverage": _r(ratio(len(pos), open_total), 4),
            "basis": OBSERVED,
            "phases": phases,
        }

    return cached("orders.schedule_current", {"as_of": as_of}, compute)


def _rank_phases(pos: list[dict], done: dict[int, int], t: datetime) -> list[dict]:
    """Per-phase WIP, time in state and Little's-law wait at t, ranked (longest expected wait first)."""
    per_phase: dict[int, list] = defaultdict(list)
    for p in pos:
        per_phase[p["phase_id"]].append(p)
    table = []
    for phase_id in set(per_phase) | set(done):
        items = per_phase.get(phase_id, [])
        ages = [(t - p["entered_at"]).total_seconds() / DAY for p in items if p["entered_at"] is not None]
        rate = done.get(phase_id, 0) / THROUGHPUT_WINDOW_DAYS
        wip = len(items)
        table.append({
            "phase_id": phase_id,
            "queue": sum(1 for p in items if not p["in_progress"]),
            "in_progress": sum(1 for p in items if p["in_progress"]),
            "wip": wip,
            "wip_age_p50_days": percentile(ages, 0.5),
            "wip_age_p90_days": percentile(ages, 0.9),
            "throughput_per_day": rate,
            "expected_wait_days": wip / rate if rate else None,
            "stalled": bool(wip and not rate),
        })
    # Stalled phases (WIP, nothing finished in the window) first: their wait is unbounded.
    table.sort(key=lambda r: (not r["stalled"], -(r["expected_wait_days"] or 0), -r["wip"], r["phase_id"]))
    for rank, row in enumerate(table, start=1):
        row["rank"] = rank
    return table


def bottleneck_table(*, as_of: datetime) -> list[dict]:
    """Phases ranked by bottleneck severity at as_of (numbers only; cached)."""
    return cached("orders.bottleneck_table", {"as_of": as_of}, lambda: _rank_phases(
        positions(snapshots=[as_of])[as_of], throughput(snapshots=[as_of])[as_of], as_of))


def bottlenecks(*, as_of: datetime) -> dict:
    """Per phase: queue, WIP age, historical queue/touch times, 28-day throughput, Little's-law wait, rank; weekly trend."""

    def compute() -> dict:
        names = phase_names()
        table = bottleneck_table(as_of=as_of)
        flows = {f["phase_id"]: f for f in PhaseFlowStat.objects.values()}
        weeks = [as_of - timedelta(days=7 * k) for k in range(TREND_WEEKS - 1, -1, -1)]
        pos = positions(snapshots=weeks)
        done = throughput(snapshots=weeks)
        trend = []
        for t in weeks:
            ranked = _rank_phases(pos.get(t, []), done.get(t, {}), t)
            top = ranked[0] if ranked and ranked[0]["wip"] else None
            trend.append({
                "week_ending": t,
                "top_phase": None if top is None else {"id": top["phase_id"], "name": names.get(top["phase_id"])},
                "wip": top and top["wip"],
                "expected_wait_days": _r(top and top["expected_wait_days"], 3),
                "stalled": bool(top and top["stalled"]),
            })
        phases = []
        for row in table:
            flow = flows.get(row["phase_id"], {})
            executions = flow.get("executions") or 0
            phases.append({
                "rank": row["rank"],
                "phase": {"id": row["phase_id"], "name": names.get(row["phase_id"])},
                "queue_size": row["queue"],
                "in_progress": row["in_progress"],
                "wip": row["wip"],
                "wip_age_days": figure({"p50": _r(row["wip_age_p50_days"], 3), "p90": _r(row["wip_age_p90_days"], 3)},
                                       basis=OBSERVED, coverage=1.0 if row["wip"] else None),
                "queue_time_hours": figure(
                    {"p50": _hours(flow.get("queue_p50_seconds")), "p90": _hours(flow.get("queue_p90_seconds"))},
                    basis=OBSERVED, coverage=ratio(flow.get("queue_n", 0), executions), n=flow.get("queue_n", 0)),
                "touch_time_hours": figure(
                    {"p50": _hours(flow.get("touch_p50_seconds")), "p90": _hours(flow.get("touch_p90_seconds"))},
                    basis=OBSERVED, coverage=ratio(flow.get("touch_n", 0), executions), n=flow.get("touch_n", 0)),
                "throughput_per_day": figure(_r(row["throughput_per_day"], 4), basis=OBSERVED, coverage=1.0,
                                             window_days=THROUGHPUT_WINDOW_DAYS),
                "expected_wait_days": figure(_r(row["expected_wait_days"], 3), basis=THEORETICAL,
                                             coverage=1.0 if row["throughput_per_day"] else 0.0, method="little_law"),
                "stalled": row["stalled"],
            })
        return {"as_of": as_of, "phases": phases, "top_bottleneck_by_week": trend}

    return cached("orders.bottlenecks", {"as_of": as_of}, compute)


# --- risk ------------------------------------------------------------------------------------------------


def _product_defect_rates() -> dict[int, float]:
    """Share of each product's finished orders with at least one quality error (historical)."""

    def compute() -> dict[int, float]:
        rows = _fetch(
            """
            SELECT o.product_id, count(*) AS n, count(*) FILTER (WHERE s.error_count > 0) AS with_errors
            FROM orders_manufacturingorder o JOIN orders_ordersummary s ON s.order_id = o.id
            WHERE o.is_open = false AND o.product_id IS NOT NULL
            GROUP BY o.product_id
            """
        )
        return {r["product_id"]: r["with_errors"] / r["n"] for r in rows if r["n"]}

    return cached_in_process("orders.product_defect_rates", compute)


def _risk_rows(*, as_of: datetime) -> list[dict]:
    """Every open order at as_of with its risk components, score and reasons (see risk_queue)."""
    names = phase_names()
    glob = global_threshold()
    orders = _fetch(
        """
        SELECT o.id, o.product_id, o.created_at, o.current_phase_id,
               coalesce(t.late_days, %(glate)s) AS late_days, coalesce(t.p75, %(gp75)s) AS p75,
               coalesce(t.scope, 'global') AS scope
        FROM orders_manufacturingorder o
        LEFT JOIN orders_leadtimethreshold t ON t.product_id = o.product_id
        WHERE o.created_at <= %(as_of)s AND (o.finished_at IS NULL OR o.finished_at > %(as_of)s)
        """,
        {"as_of": as_of, "glate": glob["late_days"], "gp75": glob["p75"]},
    )
    pos = {p["order_id"]: p for p in positions(snapshots=[as_of])[as_of]}
    ranks = {row["phase_id"]: row["rank"] for row in bottleneck_table(as_of=as_of) if row["wip"]}
    defects = _product_defect_rates()
    out = []
    for o in orders:
        age = (as_of - o["created_at"]).total_seconds() / DAY
        p = pos.get(o["id"])
        age_c = min(1.0, age / o["late_days"]) if o["late_days"] else 0.0
        rank = ranks.get(p["phase_id"]) if p else None
        bottleneck_c = BOTTLENECK_RANK_SCORE.get(rank, 0.0)
        reworks = p["reworks"] if p else 0
        rework_c = min(1.0, reworks / REWORK_SATURATION)
        defect_c = defects.get(o["product_id"], 0.0)
        score = (RISK_WEIGHTS["age"] * age_c + RISK_WEIGHTS["bottleneck"] * bottleneck_c
                 + RISK_WEIGHTS["rework"] * rework_c + RISK_WEIGHTS["defects"] * defect_c)
        reasons = []
        if o["late_days"] and age > o["late_days"]:
            reasons.append(f"older than the p90 lead time ({age:.1f} > {o['late_days']:.1f} days, {o['scope']} history)")
        elif o["p75"] and age > o["p75"]:
            reasons.append(f"older than the p75 lead time ({age:.1f} > {o['p75']:.1f} days, {o['scope']} history)")
        if bottleneck_c:
            reasons.append(f"{'waiting' if not p['in_progress'] else 'in progress'} at bottleneck #{rank} "
                           f"({names.get(p['phase_id'], p['phase_id'])})")
        if reworks:
            reasons.append(f"{reworks} rework pass(es) so far")
        if defect_c >= 0.5:
            reasons.append(f"product has defects on {defect_c:.0%} of its finished orders")
        out.append({
            "order_id": o["id"], "product_id": o["product_id"], "age_days": round(age, 3),
            "phase": None if not p else {"id": p["phase_id"], "name": names.get(p["phase_id"]),
                                         "state": "in_progress" if p["in_progress"] else "waiting"},
            "score": round(score, 4),
            "components": {"age": round(age_c, 4), "bottleneck": round(bottleneck_c, 4),
                           "rework": round(rework_c, 4), "defects": round(defect_c, 4)},
            "reasons": reasons,
        })
    out.sort(key=lambda r: (-r["score"], r["order_id"]))
    return out


def risk_scores(*, as_of: datetime) -> dict[int, float]:
    """Open order id → risk score in [0, 1] at as_of (the risk queue's score)."""
    return {row["order_id"]: row["score"] for row in cached("orders.risk_rows", {"as_of": as_of}, lambda: _risk_rows(as_of=as_of))}


RISK_METHOD = (
    "score = 0.40*age + 0.25*bottleneck + 0.15*rework + 0.20*defects, each in [0, 1]: age = min(1, age / the "
    "product's ORDER_LATE_PERCENTILE lead time (product, else family, else global history)); bottleneck = 1, 2/3, "
    "1/3 when the order waits or works at the #1, #2, #3 bottleneck phase (Little's-law ranking), else 0; "
    "rework = min(1, rework passes started so far / 2); defects = share of the product's finished orders with "
    "at least one quality error."
)


def risk_queue(*, as_of: datetime, limit: int = 100) -> dict:
    rows = cached("orders.risk_rows", {"as_of": as_of}, lambda: _risk_rows(as_of=as_of))
    return {"as_of": as_of, "method": RISK_METHOD, "weights": RISK_WEIGHTS, "basis": THEORETICAL,
            "open_orders": len(rows), "orders": rows[:limit]}


# --- KPIs ------------------------------------------------------------------------------------------------


def _finished_rows(*, start: datetime, end: datetime) -> list[dict]:
    """Orders finished in [start, end) with lead time, p75 threshold and rework flag (one query)."""
    glob = global_threshold()
    return _fetch(
        """
        SELECT o.id, o.product_id, o.lead_time_days, coalesce(t.p75, %(gp75)s) AS p75,
               coalesce(s.rework_count, 0) > 0 AS reworked
        FROM orders_manufacturingorder o
        LEFT JOIN orders_leadtimethreshold t ON t.product_id = o.product_id
        LEFT JOIN orders_ordersummary s ON s.order_id = o.id
        WHERE o.finished_at >= %(start)s AND o.finished_at < %(end)s
        """,
        {"start": start, "end": end, "gp75": glob["p75"]},
    )


def _wip_rows(*, t: datetime) -> list[dict]:
    return _fetch(
        """
        SELECT o.id, o.product_id, extract(epoch FROM %(t)s - o.created_at) / 86400.0 AS age_days
        FROM orders_manufacturingorder o
        WHERE o.created_at <= %(t)s AND (o.finished_at IS NULL OR o.finished_at > %(t)s)
        """,
        {"t": t},
    )


def _kpi_block(finished: list[dict], wip: list[dict], weeks: float) -> dict:
    valid = [r["lead_time_days"] for r in finished if r["lead_time_days"] is not None and r["lead_time_days"] >= 0]
    judged = [r for r in finished if r["p75"] is not None and r["lead_time_days"] is not None and r["lead_time_days"] >= 0]
    ages = [float(r["age_days"]) for r in wip]
    n = len(finished)
    return {
        "finished_orders": n,
        "lead_time_days": figure({"p50": _r(percentile(valid, 0.5)), "p90": _r(percentile(valid, 0.9)), "mean": _r(_mean(valid))},
                                 basis=OBSERVED, coverage=ratio(len(valid), n), n=len(valid)),
        "throughput_per_week": figure(_r(n / weeks) if weeks else None, basis=OBSERVED, coverage=1.0),
        "wip": figure({"count": len(ages), "age_days_p50": _r(percentile(ages, 0.5)), "age_days_p90": _r(percentile(ages, 0.9)),
                       "age_days_mean": _r(_mean(ages))}, basis=OBSERVED, coverage=1.0),
        "on_time_rate": figure(_r(ratio(sum(1 for r in judged if r["lead_time_days"] <= r["p75"]), len(judged))),
                               basis=THEORETICAL, coverage=ratio(len(judged), n),
                               note="against the product's historical p75 lead time (no due date in the data)"),
        "rework_rate": figure(_r(ratio(sum(1 for r in finished if r["reworked"]), n)), basis=OBSERVED, coverage=1.0 if n else None,
                              note="share of finished orders with at least one rework pass"),
    }


def kpi_range(*, date_from, date_to, as_of: datetime) -> tuple[datetime, datetime, float]:
    """[start, end) of the KPI window from dates (inclusive), default the 12 weeks up to as_of; its length in weeks."""
    from django.utils import timezone

    end_date = date_to or as_of.astimezone(timezone.get_current_timezone()).date()
    start_date = date_from or end_date - timedelta(days=7 * TREND_WEEKS - 1)
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(start_date, datetime.min.time()), tz)
    end = timezone.make_aware(datetime.combine(end_date + timedelta(days=1), datetime.min.time()), tz)
    return start, end, (end - start).total_seconds() / (7 * DAY)


def kpi_overview(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    """Lead time, throughput, WIP (at the window's end, capped at as_of), on-time and rework rates."""
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    def compute() -> dict:
        return {"from": start, "to": end, "wip_at": wip_at, **_kpi_block(_finished_rows(start=start, end=end), _wip_rows(t=wip_at), weeks)}

    return cached("orders.kpi_overview", {"start": start, "end": end, "as_of": as_of}, compute)


def kpi_by_product(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    def compute() -> dict:
        finished = defaultdict(list)
        wip = defaultdict(list)
        for r in _finished_rows(start=start, end=end):
            finished[r["product_id"]].append(r)
        for r in _wip_rows(t=wip_at):
            wip[r["product_id"]].append(r)
        products = {p["id"]: p for p in Product.objects.filter(id__in=[k for k in set(finished) | set(wip) if k is not None])
                    .values("id", "name", "family")}
        rows = []
        for pid in sorted(set(finished) | set(wip), key=lambda k: (k is None, k or 0)):
            prod = products.get(pid)
            rows.append({"product": _product_payload(pid, prod and prod["name"], prod and prod["family"]),
                         **_kpi_block(finished.get(pid, []), wip.get(pid, []), weeks)})
        rows.sort(key=lambda r: -r["finished_orders"])
        return {"from": start, "to": end, "wip_at": wip_at, "products": rows}

    return cached("orders.kpi_by_product", {"start": start, "end": end, "as_of": as_of}, compute)


def kpi_by_phase(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    """Per phase: duration (start → end) p50/p90/mean of phases ended in the window, throughput, WIP, rework share."""
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    def compute() -> dict:
        names = phase_names()
        # Partition pruning on event_time (= end for ended phases), then the aggregate per phase.
        stats = {r["phase_id"]: r for r in _fetch(
            """
            SELECT phase_id, count(*) AS n, count(duration_seconds) AS timed,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) / 3600.0 AS p50,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_seconds) / 3600.0 AS p90,
                   avg(duration_seconds) / 3600.0 AS mean,
                   count(*) FILTER (WHERE is_rework) AS reworks
            FROM orders_orderphase
            WHERE ended_at >= %(start)s AND ended_at < %(end)s AND event_time >= %(start)s AND event_time < %(end)s
              AND phase_id IS NOT NULL
            GROUP BY phase_id
            """, {"start": start, "end": end})}
        per_phase: dict[int, list] = defaultdict(list)
        for p in positions(snapshots=[wip_at])[wip_at]:
            per_phase[p["phase_id"]].append((wip_at - p["entered_at"]).total_seconds() / DAY)
        rows = []
        for pid in sorted(set(stats) | set(per_phase)):
            s = stats.get(pid, {"n": 0, "timed": 0, "p50": None, "p90": None, "mean": None, "reworks": 0})
            ages = per_phase.get(pid, [])
            rows.append({
                "phase": {"id": pid, "name": names.get(pid)},
                "executions": s["n"],
                "duration_hours": figure({"p50": _r(s["p50"]), "p90": _r(s["p90"]), "mean": _r(s["mean"])},
                                         basis=OBSERVED, coverage=ratio(s["timed"], s["n"]), n=s["timed"]),
                "throughput_per_week": figure(_r(s["n"] / weeks), basis=OBSERVED, coverage=1.0),
                "wip": figure({"count": len(ages), "in_state_days_p50": _r(percentile(ages, 0.5)),
                               "in_state_days_p90": _r(percentile(ages, 0.9))}, basis=OBSERVED, coverage=1.0),
                "on_time_rate": figure(None, basis=THEORETICAL, coverage=0.0,
                                       note="no per-phase due date or standard duration in the data"),
                "rework_rate": figure(_r(ratio(s["reworks"], s["n"])), basis=OBSERVED, coverage=1.0 if s["n"] else None,
                                      note="share of the phase's executions that were rework passes"),
            })
        rows.sort(key=lambda r: -r["executions"])
        return {"from": start, "to": end, "wip_at": wip_at, "phases": rows}

    return cached("orders.kpi_by_phase", {"start": start, "end": end, "as_of": as_of}, compute)


# --- per employee (gated) -----------------------------------------------------------------------------


def employee_match_rate() -> dict:
    """Share of phase assignments whose order phase exists (hash semi-join over the distinct phase ids)."""

    def compute() -> dict:
        row = _fetch(
            """
            SELECT count(*) AS n, count(p.id) AS matched
            FROM orders_phaseassignment a
            LEFT JOIN (SELECT DISTINCT id FROM orders_orderphase) p ON p.id = a.order_phase_id
            """
        )[0]
        return {"assignments": row["n"], "matched": row["matched"], "rate": ratio(row["matched"], row["n"])}

    return cached("orders.employee_match_rate", {}, compute)


def kpi_by_employee(*, include_names: bool) -> dict:
    """Per-employee phases worked and elapsed hours of those phases — only when assignments match order phases.

    NOT_SUPPORTED_BY_DATA (HTTP 200) while the measured match rate is under settings.EMPLOYEE_MATCH_RATE_GATE."""
    gate = settings.EMPLOYEE_MATCH_RATE_GATE
    match = employee_match_rate()
    rate = match["rate"] or 0.0
    if rate < gate:
        return not_supported(
            feature="kpis.by_employee",
            reason=(f"Only {rate:.1%} of employee assignments point at a known order phase "
                    f"(gate {gate:.0%}): per-employee figures would describe a biased minority."),
            measured=rate, threshold=gate, assignments=match["assignments"], matched=match["matched"],
        )

    def compute() -> list[dict]:
        return _fetch(
            """
            SELECT a.employee_id, count(*) AS phases_worked, count(*) FILTER (WHERE a.is_leader) AS phases_led,
                   coalesce(sum(p.duration_seconds), 0) / 3600.0 AS elapsed_hours, count(p.duration_seconds) AS timed
            FROM orders_phaseassignment a
            JOIN (SELECT DISTINCT ON (id) id, duration_seconds FROM orders_orderphase ORDER BY id) p
              ON p.id = a.order_phase_id
            GROUP BY a.employee_id
            ORDER BY a.employee_id
            """
        )

    rows = cached("orders.kpi_by_employee", {}, compute)
    names = dict(Employee.objects.values_list("id", "name")) if include_names else {}
    return {
        "status": "OK",
        "match_rate": figure(_r(rate), basis=OBSERVED, coverage=1.0, threshold=gate),
        "employees": [
            {
                "employee_id": r["employee_id"],
                **({"name": names.get(r["employee_id"])} if include_names else {}),
                "phases_worked": r["phases_worked"],
                "phases_led": r["phases_led"],
                "elapsed_hours": figure(_r(float(r["elapsed_hours"]), 3), basis=OBSERVED,
                                        coverage=ratio(r["timed"], r["phases_worked"]),
                                        note="elapsed time of phases worked as a team member, not labour hours"),
            }
            for r in rows
        ],
    }


def order_ids_matching(q: str) -> Q:
    """Search by order id: exact id, or ids whose digits start with q."""
    q = q.strip()
    if not q.isdigit():
        return Q(pk__in=[])
    return Q(id=int(q)) | Q(id_text__startswith=q)


def annotate_id_text(qs: QuerySet) -> QuerySet:
    return qs.annotate(id_text=Cast("id", CharField()))
