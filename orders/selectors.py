"""Reads of the orders domain: the order state, order status, timelines, routes, WIP, bottlenecks, risk and KPIs.

Definitions used throughout (and in the API schema):

- The order state at the as-of time T (ORDER_STATE_RULE): the one definition of where every order is, the
  SQL function orders_order_state (migration orders.0004), always called through ORDER_STATE_CALL with
  order_state_params(as_of=T). Only what was known at T: orders created by T, phase starts and ends at or
  before T; thresholds from orders finished (and gaps measured) before T.
- Lead time of an order: finished - created, in days (ManufacturingOrder.lead_time_days); negative
  values are data errors and are left out. Percentiles use percentile_cont (linear).
- Order status at T (in the state function): DONE (finished), ABANDONED, STALLED; otherwise LATE when its
  age exceeds the product's ORDER_LATE_PERCENTILE lead time, AT_RISK when it exceeds the
  ORDER_AT_RISK_PERCENTILE one, CREATED when no phase has started, else IN_PROGRESS. The percentiles are of
  the orders finished by T: the product's own with at least MIN_HISTORY_FOR_PRODUCT_PERCENTILE of them, else
  its family's (when that has enough), else all orders'. Basis: theoretical.
- WIP at T: the active orders (not started, waiting, in progress); stalled and abandoned orders are apart.
- Bottlenecks at T: phases ranked by the queue forecast for the next 4 weeks from the measured flow (BOTTLENECK_RULE).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import CharField, FloatField, Func, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from orders.choices import OrderState, PlacementBasis
from orders.models import (
    Employee,
    ManufacturingOrder,
    Phase,
    Product,
    ProductPhaseStat,
    RouteStep,
)
from prodplan.asof import data_as_of
from prodplan.cache import versioned_cache
from prodplan.db import fetch_prepared
from prodplan.gates import (
    MATCH_RATE_RULE,
    OBSERVED,
    THEORETICAL,
    figure,
    not_supported,
    ratio,
    reference_match_sql,
)
from prodplan.stats import percentile

DAY = 86400.0
UNKNOWN_PRODUCT = "unknown product"
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


# --- the order state: where every order is at an as-of time (the one definition) ------------------

ORDER_STATE_RULE = (
    "At as_of, every order created by then is in exactly one state, from what was known at as_of only (orders "
    "created, phase starts and ends at or before as_of; a phase that ended later is in progress): finished "
    "(finished by as_of); abandoned (marked by a data steward); stalled (open, and no event (creation, a phase "
    "start or end) for longer than its position's stall threshold); in_progress at the phase started and not "
    "ended (the latest start wins); not_started (no phase started); else waiting before its next phase. The "
    "phase is placed, strongest basis first, by: the phase in progress; the first phase row not started after "
    "the furthest row reached (by sequence); the next step of the product's standard route after the furthest "
    "step reached; the phase that most often followed the last finished one (or came first) in the phases seen "
    "in the 180 days before as_of; the ERP's current phase (Of_FaseId, only when as_of is at or after the snapshot); else "
    "unknown. Time in state ('since'): the phase's start (in progress), the last phase end (waiting), the "
    "creation (not started), the last event (stalled)."
)
STALL_RULE = (
    "stalled when the time since the order's last event exceeds max(floor, p{pct} of the event-free gaps "
    "measured at that phase (the wait before it: its start minus the previous phase's end or the order's "
    "creation; and its duration) over the {window} days before the first day of as_of's month (Lisbon), using "
    "all phases' gaps when a phase has fewer than {min_n}; learnt once a month, so every date of a month (and a "
    "trend over weeks) shares them, with nothing from after as_of"
)
OPEN_STATES = (OrderState.NOT_STARTED, OrderState.WAITING, OrderState.IN_PROGRESS, OrderState.STALLED)
# The orders a supervisor plans: open, neither stalled nor abandoned (WIP, flow KPIs, bottlenecks, risk).
ACTIVE_STATES = (OrderState.NOT_STARTED, OrderState.WAITING, OrderState.IN_PROGRESS)
STALL_PERCENTILE = 0.99
STALL_WINDOW_DAYS = 180
STALL_MIN_GAPS = 30

# The function is created by migration orders.0004_order_state; every reader calls it through here.
ORDER_STATE_CALL = "orders_order_state(%(as_of)s, %(snapshot_at)s, %(stall)s, %(lead)s, %(order_ids)s)"

# Gaps with no event of an order, per phase it was at, measured over the window before as_of (partitions
# pruned on event_time): the wait before a phase (its start minus the previous phase's end, or the order's
# creation for an order's first phase in the window when the order was created inside it) and its duration.
_STALL_GAPS_SQL = """
WITH r AS (
    SELECT p.phase_id, p.started_at, p.ended_at,
           CASE WHEN row_number() OVER w = 1 THEN CASE WHEN o.created_at > %(start)s THEN o.created_at END
                ELSE lag(CASE WHEN p.ended_at <= %(as_of)s THEN p.ended_at END) OVER w END AS previous_end,
           CASE WHEN row_number() OVER w = 1 THEN CASE WHEN o.created_at > %(start)s THEN 'start' END
                ELSE (lag(p.phase_id) OVER w)::text END AS previous_phase
    FROM {phases} p JOIN orders_manufacturingorder o ON o.id = p.order_id
    -- no upper bound on event_time (an end after as_of): a phase started by as_of and ended later was in
    -- progress then, and the wait before it was known (its end is cut above and below)
    WHERE p.started_at <= %(as_of)s AND p.phase_id IS NOT NULL
    WINDOW w AS (PARTITION BY p.order_id ORDER BY p.started_at, p.sequence, p.id)
), gaps AS (
    SELECT phase_id, extract(epoch FROM started_at - previous_end) AS gap FROM r WHERE previous_end <= started_at
    UNION ALL
    SELECT phase_id, extract(epoch FROM ended_at - started_at) FROM r WHERE ended_at <= %(as_of)s
)
SELECT 'gap' AS kind, phase_id, NULL AS previous_phase, count(*) AS n,
       percentile_cont(%(pct)s) WITHIN GROUP (ORDER BY gap) AS threshold
FROM gaps GROUP BY ROLLUP (phase_id)
UNION ALL
SELECT 'next', phase_id, previous_phase, count(*), NULL FROM r WHERE previous_phase IS NOT NULL
GROUP BY previous_phase, phase_id
"""


def phases_since(start: str) -> str:
    """The order phases a window starting at `start` (a SQL parameter or expression) can need, partitions pruned.

    event_time is a phase's end when it has one, so a phase that started before the window and was still open
    at as_of has event_time = its end (later data) or its start (a snapshot taken at as_of, where it has no end
    yet). Both must give the same rows: the phases with event_time after the start, plus every phase still open
    in the data (partial index orders_op_open_phase_idx)."""
    return (f"(SELECT * FROM orders_orderphase WHERE event_time > {start} "
            f"UNION ALL SELECT * FROM orders_orderphase WHERE is_open AND event_time <= {start})")


def stall_learnt_at(as_of: datetime) -> datetime:
    """When the stall thresholds used at as_of were learnt: the first instant of as_of's month, Lisbon time."""
    from django.utils import timezone

    local = timezone.localtime(as_of)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def stall_thresholds(*, as_of: datetime) -> dict:
    """The stall threshold (seconds) per phase at as_of (STALL_RULE) and the usual next phases, learnt from the
    gaps measured before the first day of as_of's month; cached per month."""
    return _learn_stall_thresholds(as_of=stall_learnt_at(as_of))


@versioned_cache("orders.stall_thresholds")
def _learn_stall_thresholds(*, as_of: datetime) -> dict:
    """Learn STALL_RULE's thresholds and the usual next phases from the gaps measured before as_of (one query;
    cached, so per month through stall_thresholds)."""
    floor = settings.ORDER_STALLED_FLOOR_DAYS * DAY
    start = as_of - timedelta(days=STALL_WINDOW_DAYS)
    found = _fetch(_STALL_GAPS_SQL.format(phases=phases_since("%(start)s")),
                   {"as_of": as_of, "start": start, "pct": STALL_PERCENTILE})
    rows = [r for r in found if r["kind"] == "gap"]
    # The phase that most often came next after each phase (or first: 'start'), ties to the lowest id.
    successors: dict[str, tuple[int, int]] = {}
    for r in found:
        if r["kind"] == "next":
            best = successors.get(r["previous_phase"])
            if best is None or (r["n"], -r["phase_id"]) > (best[1], -best[0]):
                successors[r["previous_phase"]] = (int(r["phase_id"]), r["n"])
    overall = next((r for r in rows if r["phase_id"] is None), None)
    default = max(floor, float(overall["threshold"])) if overall and overall["n"] else floor
    per_phase = {int(r["phase_id"]): max(floor, float(r["threshold"]))
                 for r in rows if r["phase_id"] is not None and r["n"] >= STALL_MIN_GAPS}
    return {
        "default_seconds": default,
        "phase_seconds": per_phase,
        "next_phase": {previous: phase for previous, (phase, _) in sorted(successors.items())},
        "floor_days": settings.ORDER_STALLED_FLOOR_DAYS,
        "percentile": STALL_PERCENTILE,
        "window_days": STALL_WINDOW_DAYS,
        "min_gaps": STALL_MIN_GAPS,
        "gaps_measured": overall["n"] if overall else 0,
        "rule": STALL_RULE.format(pct=int(STALL_PERCENTILE * 100), window=STALL_WINDOW_DAYS, min_n=STALL_MIN_GAPS),
        "learnt_at": as_of,
    }


# Lead-time percentiles (days) of the orders finished by as_of, per product, per family and over all.
_LEAD_TIME_AT_SQL = """
SELECT o.product_id, p.family, GROUPING(o.product_id, p.family) AS level, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.lead_time_days) AS p50,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY o.lead_time_days) AS p75,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY o.lead_time_days) AS p90,
       avg(o.lead_time_days) AS mean,
       percentile_cont(%(risk)s) WITHIN GROUP (ORDER BY o.lead_time_days) AS at_risk_days,
       percentile_cont(%(late)s) WITHIN GROUP (ORDER BY o.lead_time_days) AS late_days
FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
WHERE o.finished_at <= %(as_of)s AND o.lead_time_days >= 0
GROUP BY GROUPING SETS ((o.product_id, p.family), (p.family), ())
"""


@versioned_cache("orders.lead_time_thresholds")
def lead_time_thresholds(*, as_of: datetime) -> dict:
    """Status thresholds at as_of from the orders finished by then (no hindsight), cached per as_of.

    {"global": {...}, "family": {family: {...}}, "product": {product_id: {...}}}: a product gets its own
    percentiles with at least MIN_HISTORY_FOR_PRODUCT_PERCENTILE finished orders, else its family's (when
    that has enough), else the global ones; each entry carries its scope, n, p50, p75, p90, mean,
    at_risk_days and late_days."""
    rows = _fetch(_LEAD_TIME_AT_SQL, {"as_of": as_of, "risk": settings.ORDER_AT_RISK_PERCENTILE,
                                      "late": settings.ORDER_LATE_PERCENTILE})
    keys = ("n", "p50", "p75", "p90", "mean", "at_risk_days", "late_days")
    empty = {"scope": "global", **{k: None for k in keys}, "n": 0}
    result: dict = {"global": empty, "family": {}, "product": {}}
    own: dict = {}
    for r in rows:
        stats = {k: (float(r[k]) if r[k] is not None and k != "n" else r[k]) for k in keys}
        if r["level"] == 3:
            result["global"] = {"scope": "global", **stats}
        elif r["level"] == 2 and r["family"] is not None:  # GROUPING: product_id (high bit) left out
            result["family"][r["family"]] = {"scope": "family", **stats}
        elif r["level"] == 0 and r["product_id"] is not None:
            own[int(r["product_id"])] = (r["family"], {"scope": "product", **stats})
    minimum = settings.MIN_HISTORY_FOR_PRODUCT_PERCENTILE
    for product_id, family in Product.objects.values_list("id", "family"):
        own.setdefault(product_id, (family, None))
    for product_id, (family, stats) in own.items():
        if stats is not None and stats["n"] >= minimum:
            result["product"][product_id] = stats
        elif family in result["family"] and result["family"][family]["n"] >= minimum:
            result["product"][product_id] = result["family"][family]
    return result


def _lead_param(thresholds: dict) -> dict:
    """The thresholds as the SQL function reads them (product entries only where they differ from global)."""
    fields = ("scope", "at_risk_days", "late_days", "p75")
    glob = {k: thresholds["global"][k] for k in fields}
    return {"global": glob, "product": {str(pid): {k: t[k] for k in fields} for pid, t in thresholds["product"].items()}}


@versioned_cache("orders.export_has_unstarted_rows")
def export_has_unstarted_rows() -> bool:
    """Whether the ERP export writes phase rows before work on them starts (rows with neither start nor end).

    An export that writes a row only once work starts had, at a past as_of, no row for a phase started later;
    the order state must then not see one (no hindsight). Cached per data version."""
    return _fetch(
        "SELECT EXISTS (SELECT 1 FROM orders_orderphase WHERE started_at IS NULL AND ended_at IS NULL) AS found")[0]["found"]


def order_state_params(*, as_of: datetime, order_ids: list[int] | None = None) -> dict:
    """The parameters of ORDER_STATE_CALL at as_of (thresholds computed once per as_of and cached)."""
    from psycopg.types.json import Jsonb

    stall = stall_thresholds(as_of=as_of)
    return {
        "as_of": as_of,
        "snapshot_at": data_as_of() or datetime.max.replace(tzinfo=as_of.tzinfo),
        # What the function needs to know besides the rows: the stall thresholds, the usual next phases, the shape.
        "stall": Jsonb({"default": stall["default_seconds"], "phase": {str(k): v for k, v in stall["phase_seconds"].items()},
                        "next": stall["next_phase"], "unstarted_rows": export_has_unstarted_rows()}),
        "lead": Jsonb(_lead_param(lead_time_thresholds(as_of=as_of))),
        "order_ids": None if order_ids is None else [int(i) for i in order_ids],
    }


_STATE_COLUMNS = (
    "order_id, product_id, created_at, finished_at, state, flow_state, phase_id, placement_basis, since, "
    "last_event_at, reworks, stall_threshold_seconds, age_days, status, threshold_scope, at_risk_days, late_days, "
    "p75_days"
)


def order_states(*, as_of: datetime, order_ids: list[int]) -> dict[int, dict]:
    """The state rows of these orders at as_of (those created by then), by order id; one query."""
    if not order_ids:
        return {}
    sql = f"SELECT {_STATE_COLUMNS} FROM {ORDER_STATE_CALL}"  # noqa: S608 - constant text
    return {r["order_id"]: r for r in _fetch(sql, order_state_params(as_of=as_of, order_ids=order_ids))}


@versioned_cache("orders.open_orders_at")
def open_orders_at(*, as_of: datetime) -> list[dict]:
    """The state rows of every order open at as_of (not finished; stalled and abandoned included), cached per as_of.

    One query; expected plan: the orders created by as_of (seq scan, 27k rows), the phase rows of the open
    ones by order id (orders_op_order_seq_idx in each partition), one aggregate per order."""
    sql = f"SELECT {_STATE_COLUMNS} FROM {ORDER_STATE_CALL} WHERE state <> 'finished' ORDER BY order_id"  # noqa: S608
    return _fetch(sql, order_state_params(as_of=as_of))


def active_orders_at(*, as_of: datetime) -> list[dict]:
    """The open orders a supervisor plans at as_of: neither stalled nor abandoned."""
    return [r for r in open_orders_at(as_of=as_of) if r["state"] in ACTIVE_STATES]


def order_ids_where(*, as_of: datetime, column: str, values: list) -> RawSQL:
    """A subquery of the ids of orders whose state row at as_of has column IN values (for list filters)."""
    if column not in {"state", "status", "phase_id"}:
        raise ValueError(column)
    sql = f"SELECT order_id FROM {ORDER_STATE_CALL} WHERE {column} = ANY(%(values)s)"  # noqa: S608 - checked column
    params = {**order_state_params(as_of=as_of), "values": list(values)}
    # RawSQL takes positional parameters: compile the named ones in order.
    names = ["as_of", "snapshot_at", "stall", "lead", "order_ids", "values"]
    positional = sql
    for name in names:
        positional = positional.replace(f"%({name})s", "%s")
    return RawSQL(positional, [params[n] for n in names])


@versioned_cache("orders.state_summary")
def state_summary(*, as_of: datetime) -> dict:
    """Counts of orders per state at as_of, the placement bases of open orders and the coverage (cached)."""
    rows = open_orders_at(as_of=as_of)
    finished = _fetch(
        f"SELECT count(*) AS n FROM {ORDER_STATE_CALL} WHERE state = 'finished'",  # noqa: S608
        order_state_params(as_of=as_of))[0]["n"]
    states = Counter(r["state"] for r in rows)
    bases = Counter(r["placement_basis"] for r in rows)
    placed = sum(n for basis, n in bases.items() if basis != PlacementBasis.UNKNOWN)
    stall = stall_thresholds(as_of=as_of)
    return {
        "as_of": as_of,
        "rule": ORDER_STATE_RULE,
        "states": {state: (finished if state == OrderState.FINISHED else states.get(state, 0))
                   for state in OrderState.values},
        "open_orders": len(rows),
        "placement": figure({basis: bases.get(basis, 0) for basis in PlacementBasis.values if basis != "none"},
                            basis=OBSERVED, coverage=_r(ratio(placed, len(rows)), 4), placed=placed),
        "stall_threshold": {
            "floor_days": stall["floor_days"], "default_days": _r(stall["default_seconds"] / DAY, 3),
            "by_phase_days": {pid: _r(s / DAY, 3) for pid, s in sorted(stall["phase_seconds"].items())},
            "percentile": stall["percentile"], "window_days": stall["window_days"],
            "gaps_measured": stall["gaps_measured"], "rule": stall["rule"], "learnt_at": stall["learnt_at"],
        },
    }


def stalled_orders(*, as_of: datetime, limit: int | None = None) -> list[dict]:
    """Stalled orders at as_of, longest-idle first, with the phase where they stopped and days since their last event."""
    names = phase_names()
    rows = sorted((r for r in open_orders_at(as_of=as_of) if r["state"] == OrderState.STALLED),
                  key=lambda r: (r["last_event_at"], r["order_id"]))
    return [
        {
            "order_id": r["order_id"],
            "product_id": r["product_id"],
            "phase": None if r["phase_id"] is None else {"id": r["phase_id"], "name": names.get(r["phase_id"])},
            "stalled_while": r["flow_state"],
            "placement_basis": r["placement_basis"],
            "last_event_at": r["last_event_at"],
            "idle_days": _r((as_of - r["last_event_at"]).total_seconds() / DAY, 3),
            "threshold_days": _r(r["stall_threshold_seconds"] / DAY, 3),
            "age_days": _r(r["age_days"], 3),
        }
        for r in rows[:limit]
    ]


def stalled_block(*, as_of: datetime, limit: int | None = None) -> dict:
    """Stalled orders at as_of as every reader shows them: how many, the threshold rule, the longest idle first."""
    summary = state_summary(as_of=as_of)
    return {"count": summary["states"][OrderState.STALLED], "threshold": summary["stall_threshold"],
            "orders": stalled_orders(as_of=as_of, limit=limit)}


def state_payload(row: dict, *, as_of: datetime) -> dict:
    """The API shape of one order's state at as_of (a row of ORDER_STATE_CALL)."""
    names = phase_names()
    finished = row["state"] == OrderState.FINISHED
    return {
        "state": row["state"],
        "phase": None if finished or row["phase_id"] is None else {"id": row["phase_id"], "name": names.get(row["phase_id"])},
        "placement_basis": row["placement_basis"],
        "since": row["since"],
        "in_state_days": None if row["since"] is None else _r((as_of - row["since"]).total_seconds() / DAY, 3),
        "last_event_at": row["last_event_at"],
        "stall_threshold_days": None if row["stall_threshold_seconds"] is None else _r(row["stall_threshold_seconds"] / DAY, 3),
        "stalled_while": row["flow_state"] if row["state"] in (OrderState.STALLED, OrderState.ABANDONED) else None,
    }


# --- the order list and detail --------------------------------------------------------------------


def order_queryset(*, as_of: datetime) -> QuerySet:
    """Orders that exist at as_of (created by then, or undated), with their product; newest first.

    State, status and position come from order_states() for the rows shown, and the list filters on them
    through order_ids_where() (both the one SQL definition)."""
    product = Product.objects.filter(id=OuterRef("product_id"))
    return (
        ManufacturingOrder.objects.filter(Q(created_at__lte=as_of) | Q(created_at__isnull=True))
        .annotate(product_name=Subquery(product.values("name")[:1]), product_family=Subquery(product.values("family")[:1]))
        .order_by("-id")
    )


ORDER_FIELDS = ("id", "product_id", "product_name", "product_family", "created_at", "finished_at", "lead_time_days")


def order_rows(*, as_of: datetime, rows: list[dict]) -> list[dict]:
    """The API shape of order rows (dicts of ORDER_FIELDS) at as_of: one query for their states."""
    states = order_states(as_of=as_of, order_ids=[r["id"] for r in rows])
    return [order_row_payload(r, states.get(r["id"]), as_of=as_of) for r in rows]


def order_row_payload(row: dict, state: dict | None, *, as_of: datetime) -> dict:
    """One order at as_of: its base columns (ORDER_FIELDS) and its state row."""
    state = state or {"state": None, "status": None, "phase_id": None, "placement_basis": None, "since": None,
                      "last_event_at": None, "stall_threshold_seconds": None, "flow_state": None, "age_days": None,
                      "threshold_scope": None, "at_risk_days": None, "late_days": None}
    done = state["state"] == OrderState.FINISHED
    position = state_payload(state, as_of=as_of) if state["state"] else None
    return {
        "id": row["id"],
        "product": _product_payload(row["product_id"], row["product_name"], row["product_family"]),
        "created": row["created_at"],
        "finished": row["finished_at"] if done else None,
        "status": state["status"],
        "state": state["state"],
        "current_phase": position and position["phase"],
        "position": position,
        "age_days": _r(state["age_days"], 3),
        "lead_time_days": _r(row["lead_time_days"], 3) if done else None,
        "status_basis": {
            "basis": THEORETICAL,
            "threshold_scope": state["threshold_scope"],
            "at_risk_days": _r(state["at_risk_days"], 3),
            "late_days": _r(state["late_days"], 3),
            "history": "orders finished by as_of",
        },
    }


_ORDER_SQL = """
SELECT o.id, o.product_id, p.name AS product_name, p.family AS product_family, o.created_at, o.finished_at,
       o.lead_time_days
FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
WHERE o.id = %s AND (o.created_at <= %s OR o.created_at IS NULL)
"""

# Counts of one order's phase rows as known at as_of (orders_op_order_seq_idx in each partition).
_ORDER_COUNTS_SQL = """
SELECT count(*) AS phases,
       count(*) FILTER (WHERE started_at <= %(as_of)s) AS phases_started,
       count(*) FILTER (WHERE ended_at <= %(as_of)s) AS phases_done,
       count(*) FILTER (WHERE is_rework AND started_at <= %(as_of)s) AS reworks,
       min(started_at) FILTER (WHERE started_at <= %(as_of)s) AS first_phase_started,
       max(ended_at) FILTER (WHERE ended_at <= %(as_of)s) AS last_phase_ended,
       (SELECT count(*) FROM quality_qualityerror e WHERE e.order_id = %(order_id)s) AS errors
FROM orders_orderphase WHERE order_id = %(order_id)s
"""


def order_detail(*, order_id: int, as_of: datetime) -> dict | None:
    """One order at as_of: state and position, status thresholds, counts of phases, reworks and errors (3 queries)."""
    found = fetch_prepared(_ORDER_SQL, (order_id, as_of))
    if not found:
        return None
    row = found[0]
    state = order_states(as_of=as_of, order_ids=[order_id]).get(order_id)
    payload = order_row_payload(row, state, as_of=as_of)
    counts = _fetch(_ORDER_COUNTS_SQL, {"order_id": order_id, "as_of": as_of})[0]
    payload["counts"] = {
        "phases": counts["phases"], "phases_started": counts["phases_started"], "phases_done": counts["phases_done"],
        "reworks": counts["reworks"], "errors": counts["errors"],
    }
    payload["first_phase_started"] = counts["first_phase_started"]
    payload["last_phase_ended"] = counts["last_phase_ended"]
    done = payload["state"] == OrderState.FINISHED
    late = state and state["late_days"]
    reference = row["lead_time_days"] if done else (state and state["age_days"])
    payload["age_vs_late_threshold"] = figure(
        _r(reference / late, 4) if reference is not None and late else None, basis=THEORETICAL, coverage=1.0 if late else 0.0
    )
    return payload


# --- timeline and routes ---------------------------------------------------------------------------


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


# --- WIP and the schedule at as_of (from the order state) -------------------------------------------


def _ages(items: list[dict], as_of: datetime) -> list[float]:
    return [(as_of - r["created_at"]).total_seconds() / DAY for r in items if r["created_at"] is not None]


def _age_buckets(ages: list[float]) -> dict:
    buckets = {label: 0 for _, _, label in AGE_BUCKETS}
    for age in ages:
        for low, high, label in AGE_BUCKETS:
            if low <= age < high:
                buckets[label] += 1
                break
    return buckets


@versioned_cache("orders.schedule_current", warm=True)
def schedule_current(*, as_of: datetime) -> dict:
    """WIP at as_of per phase from the order state: not started, waiting, in progress; stalled orders apart."""
    names = phase_names()
    summary = state_summary(as_of=as_of)
    rows = open_orders_at(as_of=as_of)
    active = [r for r in rows if r["state"] in ACTIVE_STATES]
    per_phase: dict = defaultdict(list)
    for r in active:
        per_phase[r["phase_id"]].append(r)
    stalled_per_phase = Counter(r["phase_id"] for r in rows if r["state"] == OrderState.STALLED)
    phases = []
    for phase_id, items in per_phase.items():
        ages = _ages(items, as_of)
        oldest = sorted(items, key=lambda r: (r["created_at"] is None, r["created_at"], r["order_id"]))[:5]
        phases.append({
            "phase": None if phase_id is None else {"id": phase_id, "name": names.get(phase_id)},
            "wip": len(items),
            "not_started": sum(1 for r in items if r["state"] == OrderState.NOT_STARTED),
            "waiting": sum(1 for r in items if r["state"] == OrderState.WAITING),
            "in_progress": sum(1 for r in items if r["state"] == OrderState.IN_PROGRESS),
            "stalled": stalled_per_phase.get(phase_id, 0),
            "age_days": {
                "p50": _r(percentile(ages, 0.5), 3), "p90": _r(percentile(ages, 0.9), 3),
                "max": _r(max(ages), 3) if ages else None, "buckets": _age_buckets(ages),
            },
            "oldest_orders": [
                {"order_id": r["order_id"], "age_days": _r(r["age_days"], 3), "state": r["state"],
                 "in_state_days": _r((as_of - r["since"]).total_seconds() / DAY, 3) if r["since"] else None}
                for r in oldest
            ],
        })
    phases.sort(key=lambda x: (-x["wip"], x["phase"] is None, (x["phase"] or {}).get("id") or 0))
    placed = sum(1 for r in active if r["placement_basis"] != PlacementBasis.UNKNOWN)
    return {
        "as_of": as_of,
        "rule": ORDER_STATE_RULE,
        "states": summary["states"],
        "open_orders": len(rows),
        "active_orders": len(active),
        "positioned_orders": placed,
        "coverage": _r(ratio(placed, len(active)), 4),
        "placement": summary["placement"],
        "basis": OBSERVED,
        "phases": phases,
        "stalled": stalled_block(as_of=as_of, limit=20),
        "abandoned": summary["states"][OrderState.ABANDONED],
    }


# --- bottlenecks from measured flow ---------------------------------------------------------------------

BOTTLENECK_WINDOW_DAYS = 14
BOTTLENECK_MIN_QUEUE_EVENTS = 5
BOTTLENECK_BACKTEST_HORIZON_DAYS = 28
BOTTLENECK_WAIT_DAYS = 28  # the mean wait per visit is measured over this many days
BOTTLENECK_ROUTE_STEPS = 2  # how many next steps of an order's route count as work coming to a phase
BOTTLENECK_RECENT_WEIGHT = 1.0  # the weight of the recent queue (it stands for the work further away)
BOTTLENECK_RULE = (
    "Phases ranked by the queue forecast for the next {horizon} days, the figure the backtest scores: forecast "
    "hours = expected visits x mean wait + {recent_weight} x the queue measured in the last {window} days. "
    "Expected visits: the active orders waiting for the phase now, plus those that have it among the next {steps} "
    "steps of their product's standard route (else of the phases that usually followed) after the phase they wait "
    "for or work at. Mean wait: the waits measured before the phase's starts in the {wait_days} days before as_of "
    "(a wait runs from the previous phase's end, or the order's creation for its first phase, to the phase's "
    "start). Recent queue: the hours orders spent waiting for the phase inside the {window} days before as_of "
    "(orders still waiting at as_of count up to as_of); it stands for the work further upstream and not yet "
    "created. A phase needs at least {min_n} waits in the window (measured or still running) to rank among the "
    "phases that have them (one order cannot make a phase #1). Shown beside: utilisation (busy time over the "
    "window times the most orders seen in the phase at once), work waiting now, throughput."
)


def bottleneck_rule() -> str:
    """BOTTLENECK_RULE with its parameters."""
    return BOTTLENECK_RULE.format(
        horizon=BOTTLENECK_BACKTEST_HORIZON_DAYS, recent_weight=BOTTLENECK_RECENT_WEIGHT, window=BOTTLENECK_WINDOW_DAYS,
        steps=BOTTLENECK_ROUTE_STEPS, wait_days=BOTTLENECK_WAIT_DAYS, min_n=BOTTLENECK_MIN_QUEUE_EVENTS)


# Per phase, over the window (t - days, t]: the waits measured before the phases started in it (previous end
# by start order; the order's creation for the first phase of an order created in the lookback), the phases
# ended in it, and the busy time clipped to the window; over (t - wait_days, t] the waits again (the mean wait
# per visit of the forecast). Partitions are pruned on event_time: a phase's
# event_time is its end (else its start), so the lookback (window + LOOKBACK) covers the previous phases.
_FLOW_SQL = """
WITH snaps AS (SELECT unnest(%(snaps)s::timestamptz[]) AS t),
r AS (
    SELECT s.t, p.order_id, p.phase_id, p.started_at,
           CASE WHEN p.ended_at <= s.t THEN p.ended_at END AS ended_at,
           CASE WHEN row_number() OVER w = 1
                THEN CASE WHEN o.created_at > s.t - make_interval(days => %(lookback)s) THEN o.created_at END
                ELSE lag(CASE WHEN p.ended_at <= s.t THEN p.ended_at END) OVER w END AS previous_end
    FROM snaps s
    JOIN {phases} p
      ON (p.event_time > s.t - make_interval(days => %(lookback)s) OR p.is_open) AND p.started_at <= s.t
    JOIN orders_manufacturingorder o ON o.id = p.order_id
    WHERE p.phase_id IS NOT NULL
    WINDOW w AS (PARTITION BY s.t, p.order_id ORDER BY p.started_at, p.sequence, p.id)
)
SELECT t, phase_id,
       count(*) FILTER (WHERE started_at > t - make_interval(days => %(days)s) AND previous_end <= started_at) AS queue_n,
       coalesce(sum(extract(epoch FROM started_at - previous_end))
           FILTER (WHERE started_at > t - make_interval(days => %(days)s) AND previous_end <= started_at), 0) AS queue_seconds,
       count(*) FILTER (WHERE ended_at > t - make_interval(days => %(days)s)) AS done,
       coalesce(sum(extract(epoch FROM least(coalesce(ended_at, t), t)
                                   - greatest(started_at, t - make_interval(days => %(days)s))))
           FILTER (WHERE coalesce(ended_at, t) > t - make_interval(days => %(days)s)), 0) AS busy_seconds,
       coalesce(sum(extract(epoch FROM started_at - greatest(previous_end, t - make_interval(days => %(days)s))))
           FILTER (WHERE started_at > t - make_interval(days => %(days)s) AND previous_end <= started_at), 0)
           AS queue_overlap_seconds,
       count(*) FILTER (WHERE started_at > t - make_interval(days => %(wait_days)s) AND previous_end <= started_at)
           AS wait_n,
       coalesce(sum(extract(epoch FROM started_at - previous_end))
           FILTER (WHERE started_at > t - make_interval(days => %(wait_days)s) AND previous_end <= started_at), 0)
           AS wait_seconds,
       max(started_at) AS last_start
FROM r GROUP BY t, phase_id
"""
FLOW_LOOKBACK_DAYS = 120


def measured_flow(*, snapshots: list[datetime], days: int = BOTTLENECK_WINDOW_DAYS,
                  wait_days: int = BOTTLENECK_WAIT_DAYS) -> dict[datetime, dict[int, dict]]:
    """Per snapshot t and phase: waits measured before the phase (n, seconds), phases ended, busy seconds over (t - days, t];
    the waits over (t - wait_days, t] (wait_n, wait_seconds).

    One query for all snapshots; only rows known at t (started by t; ends after t are unknown then)."""
    out: dict[datetime, dict[int, dict]] = {t: {} for t in snapshots}
    lookback = max(days, wait_days) + FLOW_LOOKBACK_DAYS
    sql = _FLOW_SQL.format(phases=phases_since("%(earliest)s"))
    rows = _fetch(sql, {"snaps": list(snapshots), "days": days, "wait_days": wait_days, "lookback": lookback,
                        "earliest": min(snapshots) - timedelta(days=lookback)}) if snapshots else []
    for row in rows:
        out.setdefault(row["t"], {})[row["phase_id"]] = row
    return out


def _peak_concurrency(*, as_of: datetime, days: int) -> dict[int, int]:
    """The most order phases of each phase in progress at once over the window (observed capacity)."""
    rows = _fetch(
        """
        WITH spans AS (
            SELECT phase_id, greatest(started_at, %(start)s) AS s, least(coalesce(ended_at, %(as_of)s), %(as_of)s) AS e
            FROM {phases} p
            WHERE started_at <= %(as_of)s AND phase_id IS NOT NULL
              AND coalesce(ended_at, %(as_of)s) > %(start)s
        ), edges AS (
            SELECT phase_id, s AS at, 1 AS delta FROM spans UNION ALL SELECT phase_id, e, -1 FROM spans
        )
        SELECT phase_id, max(running) AS peak FROM (
            SELECT phase_id, sum(delta) OVER (PARTITION BY phase_id ORDER BY at, delta ROWS UNBOUNDED PRECEDING) AS running
            FROM edges) x
        GROUP BY phase_id
        """.format(phases=phases_since("%(start)s")),
        {"as_of": as_of, "start": as_of - timedelta(days=days)},
    )
    return {r["phase_id"]: int(r["peak"]) for r in rows}


@versioned_cache("orders.standard_routes", in_process=True)
def standard_routes() -> dict[int, list[int]]:
    """Each catalogued product's standard route: its phase ids in step order (one query; cached per data version)."""
    routes: dict[int, list[int]] = defaultdict(list)
    for product_id, phase_id in RouteStep.objects.order_by("product_id", "sequence", "phase_id").values_list(
            "product_id", "phase_id"):
        routes[product_id].append(phase_id)
    return dict(routes)


def _next_steps(product_id, phase_id: int, routes: dict[int, list[int]], successors: dict, k: int) -> tuple[list[int], str]:
    """The k phases after phase_id: on the product's standard route when the phase is on it, else the chain of the
    phases that usually followed (stall_thresholds' next_phase); with the basis used."""
    route = routes.get(product_id)
    if route and phase_id in route:
        i = route.index(phase_id)
        return route[i + 1:i + 1 + k], "standard_route"
    steps: list[int] = []
    phase = phase_id
    while len(steps) < k:
        phase = successors.get(str(phase))
        if phase is None or phase in steps or phase == phase_id:
            break
        steps.append(int(phase))
    return steps, "usual_next_phase" if steps else "none"


def expected_visits(*, active: list[dict], routes: dict[int, list[int]] | None,
                    successors: dict | None, steps: int = BOTTLENECK_ROUTE_STEPS) -> tuple[dict, Counter]:
    """Per phase, the active orders that will visit it soon: waiting for it now, or having it among the next `steps`
    steps after the phase they wait for or work at (BOTTLENECK_RULE); and how many orders' next steps came from
    the standard route, the usual next phases, or nowhere."""
    visits: dict[int, Counter] = defaultdict(Counter)
    basis: Counter = Counter()
    for r in active:
        phase_id = r["phase_id"]
        if phase_id is None:
            continue
        if r["state"] != OrderState.IN_PROGRESS:
            visits[phase_id]["waiting"] += 1
        following, how = _next_steps(r.get("product_id"), phase_id, routes or {}, successors or {}, steps)
        basis[how] += 1
        for q in following:
            visits[q]["upstream"] += 1
    return visits, basis


def rank_bottlenecks(*, flow: dict[int, dict], active: list[dict], as_of: datetime,
                     peaks: dict[int, int] | None = None, days: int = BOTTLENECK_WINDOW_DAYS,
                     routes: dict[int, list[int]] | None = None, successors: dict | None = None) -> list[dict]:
    """Phases ranked by the queue forecast for the next 4 weeks at as_of (BOTTLENECK_RULE); flow from measured_flow,
    active orders from active_orders_at, routes from standard_routes, successors from stall_thresholds'
    next_phase (without them only the orders waiting now count as visits). Pure: the backtest ranks past dates
    with the same code. queue_score_hours is the queue measured over the window (the backtest's truth)."""
    window_start = as_of - timedelta(days=days)
    visits, _ = expected_visits(active=active, routes=routes, successors=successors)
    waiting: dict = defaultdict(list)
    in_progress: Counter = Counter()
    for r in active:
        if r["phase_id"] is None:
            continue
        if r["state"] == OrderState.IN_PROGRESS:
            in_progress[r["phase_id"]] += 1
        elif r["since"] is not None:  # waiting or not started: its wait so far, the part inside the window
            waiting[r["phase_id"]].append((as_of - max(r["since"], window_start)).total_seconds())
    table = []
    for phase_id in set(flow) | set(waiting) | set(in_progress) | set(visits):
        f = flow.get(phase_id, {})
        queue_n = int(f.get("queue_n") or 0) + len(waiting.get(phase_id, []))
        measured = float(f.get("queue_overlap_seconds") or 0.0)
        waiting_now = sum(waiting.get(phase_id, []))
        peak = (peaks or {}).get(phase_id)
        busy = float(f.get("busy_seconds") or 0.0)
        wait_n = int(f.get("wait_n") or 0)
        mean_wait = float(f["wait_seconds"]) / wait_n / 3600.0 if wait_n else None
        coming = visits.get(phase_id, Counter())
        n_visits = coming["waiting"] + coming["upstream"]
        from_visits = n_visits * (mean_wait or 0.0)
        from_recent = BOTTLENECK_RECENT_WEIGHT * (measured + waiting_now) / 3600.0
        table.append({
            "phase_id": phase_id,
            "queue_events": queue_n,
            "measured_queue_seconds": measured,
            "waiting_orders": len(waiting.get(phase_id, [])),
            "waiting_seconds": waiting_now,
            "queue_score_hours": (measured + waiting_now) / 3600.0,
            "mean_wait_hours": float(f["queue_seconds"]) / f["queue_n"] / 3600.0 if f.get("queue_n") else None,
            "in_progress": in_progress.get(phase_id, 0),
            "throughput_per_day": int(f.get("done") or 0) / days,
            "utilisation": busy / (days * DAY * peak) if peak else None,
            "peak_concurrency": peak,
            "enough_volume": queue_n >= BOTTLENECK_MIN_QUEUE_EVENTS,
            "visits_waiting": coming["waiting"],
            "visits_upstream": coming["upstream"],
            "forecast_mean_wait_hours": mean_wait,
            "forecast_waits_measured": wait_n,
            "forecast_from_visits_hours": from_visits,
            "forecast_from_recent_hours": from_recent,
            "forecast_hours": from_visits + from_recent,
        })
    table.sort(key=lambda r: (not r["enough_volume"], -r["forecast_hours"], r["phase_id"]))
    for rank, row in enumerate(table, start=1):
        row["rank"] = rank
    return table


@versioned_cache("orders.bottleneck_table")
def bottleneck_table(*, as_of: datetime) -> list[dict]:
    """Phases ranked by the queue forecast at as_of (numbers only; cached)."""
    flow = measured_flow(snapshots=[as_of])[as_of]
    return rank_bottlenecks(flow=flow, active=active_orders_at(as_of=as_of), as_of=as_of,
                            peaks=_peak_concurrency(as_of=as_of, days=BOTTLENECK_WINDOW_DAYS),
                            routes=standard_routes(), successors=stall_thresholds(as_of=as_of)["next_phase"])


def bottleneck_backtest(*, start: datetime, weeks: int, horizon_days: int = BOTTLENECK_BACKTEST_HORIZON_DAYS) -> list[dict]:
    """Rank the bottlenecks at start + k weeks (k < weeks) with only what was known then, and find the phase with
    the most queue time measured over the next horizon_days (waits of the phases started in it): one row per week.

    Weeks whose horizon passes the data's last event cannot be scored (actual None). Two flow queries in all."""
    names = phase_names()
    dates = [start + timedelta(days=7 * k) for k in range(weeks)]
    flows = measured_flow(snapshots=dates)
    ahead = measured_flow(snapshots=[t + timedelta(days=horizon_days) for t in dates], days=horizon_days)
    naive_flows = measured_flow(snapshots=dates, days=horizon_days)
    last = data_as_of()
    routes = standard_routes()
    out = []
    for t in dates:
        ranked = rank_bottlenecks(flow=flows.get(t, {}), active=active_orders_at(as_of=t), as_of=t, routes=routes,
                                  successors=stall_thresholds(as_of=t)["next_phase"])
        top = ranked[0]["phase_id"] if ranked and ranked[0]["forecast_hours"] > 0 else None
        end = t + timedelta(days=horizon_days)
        # The truth: the queue measured over the next horizon_days, by the same measure, from the data at t + horizon.
        measured = sorted(rank_bottlenecks(flow=ahead.get(end, {}), active=active_orders_at(as_of=end), as_of=end,
                                           days=horizon_days), key=lambda r: (-r["queue_score_hours"], r["phase_id"]))
        scorable = (last is None or end <= last) and measured and measured[0]["queue_score_hours"] > 0
        actual = measured[0]["phase_id"] if scorable else None
        # Naive forecast: the phase whose phases started in the last horizon_days waited longest in total.
        window = naive_flows.get(t, {})
        naive = max(window, key=lambda p: (float(window[p]["queue_seconds"]), -p)) if window else None
        out.append({
            "date": t, "predicted": top, "predicted_name": names.get(top), "actual": actual,
            "actual_name": names.get(actual), "hit": None if actual is None or top is None else top == actual,
            "naive_last_window": naive, "naive_hit": None if actual is None or naive is None else naive == actual,
            "actual_queue_hours": _r(measured[0]["queue_score_hours"], 2) if actual is not None else None,
            "predicted_queue_hours_next": next((_r(r["queue_score_hours"], 2) for r in measured if r["phase_id"] == top), None),
            "forecast_hours": _r(ranked[0]["forecast_hours"], 2) if top is not None else None,
        })
    return out


def bottleneck_backtest_score() -> dict | None:
    """The latest stored bottleneck backtest: how often #1 was the phase with the most measured queue next."""
    from orders.models import BottleneckBacktest

    latest = BottleneckBacktest.objects.order_by("-created_at", "-id").first()
    if latest is None:
        return None
    return {"id": latest.id, "created_at": latest.created_at, "start": latest.start, "weeks": latest.weeks,
            "scored_weeks": latest.scored_weeks, "hits": latest.hits,
            "hit_rate": _r(ratio(latest.hits, latest.scored_weeks), 4),
            "horizon_days": latest.horizon_days, "data_as_of": latest.data_as_of}


@versioned_cache("orders.bottlenecks", warm=True)
def bottlenecks(*, as_of: datetime) -> dict:
    """Phases ranked by the queue forecast for the next 4 weeks with its components; the #1 phase week by week
    (12 weeks)."""
    names = phase_names()
    table = bottleneck_table(as_of=as_of)
    weeks = [as_of - timedelta(days=7 * k) for k in range(TREND_WEEKS - 1, -1, -1)]
    flows = measured_flow(snapshots=weeks)
    routes = standard_routes()
    trend = []
    for t in weeks:
        ranked = rank_bottlenecks(flow=flows.get(t, {}), active=active_orders_at(as_of=t), as_of=t, routes=routes,
                                  successors=stall_thresholds(as_of=t)["next_phase"])
        top = ranked[0] if ranked and ranked[0]["forecast_hours"] > 0 else None
        trend.append({
            "week_ending": t,
            "top_phase": None if top is None else {"id": top["phase_id"], "name": names.get(top["phase_id"])},
            "queue_hours": _r(top and top["queue_score_hours"], 2),
            "forecast_hours": _r(top and top["forecast_hours"], 2),
        })
    summary = state_summary(as_of=as_of)
    active_n = sum(summary["states"][s] for s in ACTIVE_STATES)
    active = active_orders_at(as_of=as_of)
    placed_active = sum(1 for r in active if r["phase_id"] is not None)
    _, route_basis = expected_visits(active=active, routes=routes, successors=stall_thresholds(as_of=as_of)["next_phase"])
    phases = [{
        "rank": row["rank"],
        "phase": {"id": row["phase_id"], "name": names.get(row["phase_id"])},
        "forecast_queue_hours": figure(
            {"total": _r(row["forecast_hours"], 3), "from_expected_visits": _r(row["forecast_from_visits_hours"], 3),
             "from_recent_queue": _r(row["forecast_from_recent_hours"], 3),
             "expected_visits": {"waiting_now": row["visits_waiting"], "on_route_next_steps": row["visits_upstream"]},
             "mean_wait": _r(row["forecast_mean_wait_hours"], 3)},
            basis=THEORETICAL, coverage=_r(ratio(placed_active, active_n), 4), n=row["forecast_waits_measured"],
            horizon_days=BOTTLENECK_BACKTEST_HORIZON_DAYS, mean_wait_window_days=BOTTLENECK_WAIT_DAYS,
            route_steps=BOTTLENECK_ROUTE_STEPS, recent_weight=BOTTLENECK_RECENT_WEIGHT),
        "queue_time_hours": figure(
            {"total": _r(row["queue_score_hours"], 3), "measured_in_window": _r(row["measured_queue_seconds"] / 3600.0, 3),
             "waiting_now": _r(row["waiting_seconds"] / 3600.0, 3), "mean_wait": _r(row["mean_wait_hours"], 3)},
            basis=OBSERVED, coverage=1.0, n=row["queue_events"], window_days=BOTTLENECK_WINDOW_DAYS),
        "queue_size": row["waiting_orders"],
        "in_progress": row["in_progress"],
        "throughput_per_day": figure(_r(row["throughput_per_day"], 4), basis=OBSERVED, coverage=1.0,
                                     window_days=BOTTLENECK_WINDOW_DAYS),
        "utilisation": figure(_r(row["utilisation"], 4), basis=OBSERVED,
                              coverage=1.0 if row["peak_concurrency"] else 0.0,
                              capacity_observed=row["peak_concurrency"],
                              note="busy time over the window times the most orders seen in the phase at once"),
        "enough_volume": row["enough_volume"],
    } for row in table]
    return {
        "as_of": as_of,
        "rule": bottleneck_rule(),
        "basis": OBSERVED,
        "coverage": _r(ratio(placed_active, active_n), 4),
        # Where the orders' next steps came from (the expected visits): their product's standard route, the phases
        # that usually followed, or nowhere (those orders count only where they wait).
        "next_steps_basis": {how: route_basis.get(how, 0) for how in ("standard_route", "usual_next_phase", "none")},
        "active_orders": active_n,
        "stalled_orders": summary["states"][OrderState.STALLED],
        "placement": summary["placement"],
        "phases": phases,
        "top_bottleneck_by_week": trend,
        "backtest": bottleneck_backtest_score(),
    }


# --- risk ------------------------------------------------------------------------------------------------


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
        age_c = min(1.0, age / late) if late else 0.0
        rank = ranks.get(o["phase_id"])
        bottleneck_c = BOTTLENECK_RANK_SCORE.get(rank, 0.0)
        reworks = o["reworks"]
        rework_c = min(1.0, reworks / REWORK_SATURATION)
        defect_c = defects.get(o["product_id"], 0.0)
        score = (RISK_WEIGHTS["age"] * age_c + RISK_WEIGHTS["bottleneck"] * bottleneck_c
                 + RISK_WEIGHTS["rework"] * rework_c + RISK_WEIGHTS["defects"] * defect_c)
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


# --- KPIs ------------------------------------------------------------------------------------------------


def _finished_rows(*, start: datetime, end: datetime, as_of: datetime) -> list[dict]:
    """Orders finished in [start, min(end, as_of)] with lead time, the p75 known at as_of, and rework flag (one query)."""
    thresholds = lead_time_thresholds(as_of=as_of)
    rows = _fetch(
        """
        WITH finished AS MATERIALIZED (
            SELECT o.id, o.product_id, o.lead_time_days FROM orders_manufacturingorder o
            WHERE o.finished_at >= %(start)s AND o.finished_at < %(end)s AND o.finished_at <= %(as_of)s
        )
        SELECT f.id, f.product_id, f.lead_time_days, EXISTS (
            -- a rework pass started by as_of (orders_op_order_seq_idx in each partition)
            SELECT 1 FROM orders_orderphase p WHERE p.order_id = f.id AND p.is_rework AND p.started_at <= %(as_of)s
        ) AS reworked
        FROM finished f
        """,
        {"start": start, "end": end, "as_of": as_of},
    )
    glob = thresholds["global"]
    for r in rows:
        r["p75"] = thresholds["product"].get(r["product_id"], glob)["p75"]
    return rows


def _wip_rows(*, t: datetime) -> list[dict]:
    """The active orders at t (the order state: stalled and abandoned orders are not WIP)."""
    return active_orders_at(as_of=t)


def _kpi_block(finished: list[dict], wip: list[dict], weeks: float, stalled: int) -> dict:
    valid = [r["lead_time_days"] for r in finished if r["lead_time_days"] is not None and r["lead_time_days"] >= 0]
    judged = [r for r in finished if r["p75"] is not None and r["lead_time_days"] is not None and r["lead_time_days"] >= 0]
    ages = [float(r["age_days"]) for r in wip if r["age_days"] is not None]
    n = len(finished)
    return {
        "finished_orders": n,
        "lead_time_days": figure({"p50": _r(percentile(valid, 0.5)), "p90": _r(percentile(valid, 0.9)), "mean": _r(_mean(valid))},
                                 basis=OBSERVED, coverage=ratio(len(valid), n), n=len(valid)),
        "throughput_per_week": figure(_r(n / weeks) if weeks else None, basis=OBSERVED, coverage=1.0),
        "wip": figure({"count": len(wip), "age_days_p50": _r(percentile(ages, 0.5)), "age_days_p90": _r(percentile(ages, 0.9)),
                       "age_days_mean": _r(_mean(ages))}, basis=OBSERVED, coverage=1.0, stalled_orders_excluded=stalled,
                      note="active orders (the order state): stalled and abandoned orders are not WIP"),
        "on_time_rate": figure(_r(ratio(sum(1 for r in judged if r["lead_time_days"] <= r["p75"]), len(judged))),
                               basis=THEORETICAL, coverage=ratio(len(judged), n),
                               note="against the product's p75 lead time of the orders finished by as_of (no due date in the data)"),
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


@versioned_cache("orders.kpi_overview", warm=True)
def kpi_overview(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    """Lead time, throughput, WIP (at the window's end, capped at as_of), on-time and rework rates."""
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    stalled = state_summary(as_of=wip_at)["states"][OrderState.STALLED]
    return {"from": start, "to": end, "wip_at": wip_at,
            **_kpi_block(_finished_rows(start=start, end=end, as_of=as_of), _wip_rows(t=wip_at), weeks, stalled)}


@versioned_cache("orders.kpi_by_product")
def kpi_by_product(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    finished = defaultdict(list)
    wip = defaultdict(list)
    for r in _finished_rows(start=start, end=end, as_of=as_of):
        finished[r["product_id"]].append(r)
    for r in _wip_rows(t=wip_at):
        wip[r["product_id"]].append(r)
    stalled = Counter(r["product_id"] for r in open_orders_at(as_of=wip_at) if r["state"] == OrderState.STALLED)
    products = {p["id"]: p for p in Product.objects.filter(id__in=[k for k in set(finished) | set(wip) if k is not None])
                .values("id", "name", "family")}
    rows = []
    for pid in sorted(set(finished) | set(wip), key=lambda k: (k is None, k or 0)):
        prod = products.get(pid)
        rows.append({"product": _product_payload(pid, prod and prod["name"], prod and prod["family"]),
                     **_kpi_block(finished.get(pid, []), wip.get(pid, []), weeks, stalled.get(pid, 0))})
    rows.sort(key=lambda r: -r["finished_orders"])
    return {"from": start, "to": end, "wip_at": wip_at, "products": rows}


@versioned_cache("orders.kpi_by_phase")
def kpi_by_phase(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    """Per phase: duration (start → end) p50/p90/mean of phases ended in the window, throughput, WIP, rework share."""
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

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
          AND ended_at <= %(as_of)s AND started_at <= %(as_of)s AND phase_id IS NOT NULL
        GROUP BY phase_id
        """, {"start": start, "end": end, "as_of": as_of})}
    per_phase: dict[int, list] = defaultdict(list)
    for r in _wip_rows(t=wip_at):
        if r["phase_id"] is not None and r["since"] is not None:
            per_phase[r["phase_id"]].append((wip_at - r["since"]).total_seconds() / DAY)
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


# --- per employee (gated) -----------------------------------------------------------------------------


@versioned_cache("orders.employee_match_rate")
def employee_match_rate() -> dict:
    """The assignment → order-phase match rate (prodplan.gates.MATCH_RATE_RULE), the one every gate and page uses."""
    with connection.cursor() as cursor:
        cursor.execute(reference_match_sql(table="orders_phaseassignment", column="order_phase_id",
                                           known_values_sql="SELECT DISTINCT id AS value FROM orders_orderphase"))
        distinct, matched, orphan_rows, _, rows = cursor.fetchone()
    rows, orphan_rows = int(rows), int(orphan_rows)
    return {"values": distinct, "matched_values": matched, "rows": rows, "matched_rows": rows - orphan_rows,
            "rate": ratio(matched, distinct), "definition": MATCH_RATE_RULE,
            # the former names, kept for the API's clients
            "assignments": rows, "matched": rows - orphan_rows}


@versioned_cache("orders.kpi_by_employee")
def _employee_rows() -> list[dict]:
    """Phases worked, led and their elapsed hours per employee id (names apart: they never enter the cache)."""
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


def kpi_by_employee(*, include_names: bool) -> dict:
    """Per-employee phases worked and elapsed hours of those phases — only when assignments match order phases.

    NOT_SUPPORTED_BY_DATA (HTTP 200) while the measured match rate is under settings.EMPLOYEE_MATCH_RATE_GATE."""
    gate = settings.EMPLOYEE_MATCH_RATE_GATE
    match = employee_match_rate()
    rate = match["rate"] or 0.0
    if rate < gate:
        return not_supported(
            feature="kpis.by_employee",
            reason=(f"Only {rate:.1%} of the order-phase ids named by employee assignments exist "
                    f"(gate {gate:.0%}): per-employee figures would describe a biased minority."),
            measured=rate, threshold=gate, assignments=match["assignments"], matched=match["matched"],
            match_rate_definition=MATCH_RATE_RULE, values=match["values"], matched_values=match["matched_values"],
        )

    rows = _employee_rows()
    names = dict(Employee.objects.values_list("id", "name")) if include_names else {}
    return {
        "status": "OK",
        "match_rate": figure(_r(rate), basis=OBSERVED, coverage=1.0, threshold=gate, definition=MATCH_RATE_RULE,
                             values=match["values"], matched_values=match["matched_values"], rows=match["rows"],
                             matched_rows=match["matched_rows"]),
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
    if not (q.isascii() and q.isdecimal()) or len(q) > 18:  # '²'.isdigit() is True but int('²') raises
        return Q(pk__in=[])
    return Q(id=int(q)) | Q(id_text__startswith=q)


def annotate_id_text(qs: QuerySet) -> QuerySet:
    return qs.annotate(id_text=Cast("id", CharField()))
